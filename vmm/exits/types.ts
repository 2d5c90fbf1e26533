/**
 * The contract of the exit handlers (one module per exit reason, as Bochs'
 * VMexit_* and Firecracker's vCPU exit loop): a handler gets the exiting
 * vCPU's context and returns what the vCPU loop does next. Handlers are
 * synchronous and allocation-light; they never throw for anything a guest
 * can cause (those end or reset the VM through `End`).
 */
import type { IoPorts } from "../../hw/cpu/bus.ts"
import type { Vmcs } from "../../hw/cpu/vmx/vmcs.ts"
import type { EmulationResult } from "../emulator.ts"
import type { GuestPhysical } from "../guest-memory.ts"
import type { VcpuShadowPaging } from "../shadow/vmx-shadow-paging.ts"

/** Why a VM ended (a guest-caused condition is data, not a host error). */
export type VmEnd =
  | { readonly _tag: "DebugExit"; readonly code: number }
  | { readonly _tag: "TripleFault" }
  | { readonly _tag: "Reset" }
  | { readonly _tag: "Failed"; readonly message: string }

export type ExitAction =
  /** re-enter the guest */
  | { readonly _tag: "Resume" }
  /** the vCPU executed HLT: it sleeps until an interrupt is pending */
  | { readonly _tag: "Halt" }
  /** the quantum is over: give the pCPU back */
  | { readonly _tag: "Yield" }
  | { readonly _tag: "End"; readonly end: VmEnd }

export const Resume: ExitAction = { _tag: "Resume" }
export const Halt: ExitAction = { _tag: "Halt" }
export const Yield: ExitAction = { _tag: "Yield" }
export const End = (end: VmEnd): ExitAction => ({ _tag: "End", end })

/** Exit counters, named as Firecracker's vCPU metrics are. */
export interface ExitCounters {
  exit_io_in: number
  exit_io_out: number
  exit_mmio_read: number
  exit_mmio_write: number
  exit_ept_backing: number
  exit_cpuid: number
  exit_hlt: number
  exit_msr_read: number
  exit_msr_write: number
  exit_interrupt_window: number
  exit_preemption_timer: number
  exit_external_interrupt: number
  exit_exception: number
  exit_cr_access: number
  exit_invlpg: number
  exit_other: number
}

export const newExitCounters = (): ExitCounters => ({
  exit_io_in: 0,
  exit_io_out: 0,
  exit_mmio_read: 0,
  exit_mmio_write: 0,
  exit_ept_backing: 0,
  exit_cpuid: 0,
  exit_hlt: 0,
  exit_msr_read: 0,
  exit_msr_write: 0,
  exit_interrupt_window: 0,
  exit_preemption_timer: 0,
  exit_external_interrupt: 0,
  exit_exception: 0,
  exit_cr_access: 0,
  exit_invlpg: 0,
  exit_other: 0
})

export interface ExitContext {
  readonly vmcs: Vmcs
  readonly vcpu: number
  readonly guest: GuestPhysical
  readonly counters: ExitCounters
  /** Execute the instruction at the guest's RIP in the emulator (registers updated in the VMCS). */
  readonly emulate: () => EmulationResult
  /**
   * The handler has carried out the exiting instruction itself: RIP moves past it (the VM-exit instruction
   * length), and it counts as retired in the guest (the CPU does not count an instruction that exits).
   */
  readonly skipInstruction: () => void
  /** The VM's port bus, as the emulator reaches it (IN/OUT exits go straight to it, as KVM's fast PIO). */
  readonly ports: IoPorts
  /** CPUID as the emulator's CPU answers it, for this vCPU: EAX-EDX of the VMCS's guest registers; RIP is the handler's. */
  readonly cpuid: () => void
  /** Queue an exception for injection at the next VM entry. */
  readonly injectException: (vector: number, error: number) => void
  /**
   * `hw` mode without EPT: the vCPU's shadow paging (vmm/shadow/vmx-shadow-paging.ts). The VMCS guest state
   * holds the guest's own CR0/CR3/CR4 while handlers run; CR-access, INVLPG and #PF exits act on the shadow.
   */
  readonly shadow?: VcpuShadowPaging
}
