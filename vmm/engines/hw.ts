/**
 * The `hw` execution engine: hardware-assisted trap-and-emulate (KVM-like).
 * One slice is one VM entry (SDM 3C ch. 27) with the VMX-preemption timer
 * bounding it (SDM 3C 26.5.1) and TSC offsetting making the guest's TSC
 * follow the VM's clock (SDM 3C 26.3); the VM exit is dispatched to its
 * handler (exits/dispatch.ts). An exit during event delivery gives the
 * event back to the next entry (SDM 3C 28.2.4, 27.6; KVM's
 * vmx_complete_interrupts).
 *
 * Without EPT (the context has `shadow`: vmm/shadow/vmx-shadow-paging.ts)
 * the same loop runs first-generation VT-x: around each vmenter the guest's
 * CR0/CR3/CR4 in the VMCS are swapped for what the pCPU runs with (the
 * shadow root, PE/PG/WP set) and back, and a guest in real mode, which VM
 * entry refuses without "unrestricted guest", is stepped in the instruction
 * emulator instead (invalid-guest-state.ts).
 */
import type { Cpu } from "../../hw/cpu/cpu.ts"
import { CR0_PE } from "../../hw/cpu/regs.ts"
import { RunExit } from "../../hw/cpu/state.ts"
import { INTR_INFO_VALID } from "../../hw/cpu/vmx/exit-reasons.ts"
import { PREEMPTION_TIMER_RATE, type Vmcs } from "../../hw/cpu/vmx/vmcs.ts"
import { invvpidSingleContext, vmenter } from "../../hw/cpu/vmx/vmx.ts"
import { dispatchExit } from "../exits/dispatch.ts"
import { End, type ExitAction, type ExitContext, Halt } from "../exits/types.ts"
import type { VcpuShadowPaging } from "../shadow/vmx-shadow-paging.ts"
import type { ExecutionEngine } from "./engine.ts"
import type { EmulatedStep } from "./invalid-guest-state.ts"

export interface HwEngineHost {
  /** Guest instructions retired on the pCPU. */
  readonly retired: (count: number) => void
  /** Every VM exit, before it is handled (tracing). */
  readonly observeExit: (vmcs: Vmcs) => void
  /** After every handled exit (IPIs between vCPUs, A20). */
  readonly afterExit: () => void
  /**
   * Run one instruction of a guest state VM entry refuses (real mode without unrestricted guest) in the
   * VM's emulator, the pending entry event first (invalid-guest-state.ts). Absent: such a state ends the VM.
   */
  readonly emulateGuest?: () => EmulatedStep
}

export class HwEngine implements ExecutionEngine {
  private readonly vmcs: Vmcs
  private readonly context: ExitContext
  private readonly host: HwEngineHost
  private readonly shadow: VcpuShadowPaging | undefined
  /** Guest instructions run in the emulator because VM entry could not run them (real mode without EPT). */
  private emulatedInstructions = 0
  /** The pCPU this vCPU last entered on (a move to another one invalidates its VPID there). */
  private lastCpu: Cpu | undefined = undefined

  constructor(context: ExitContext, host: HwEngineHost) {
    this.vmcs = context.vmcs
    this.context = context
    this.host = host
    this.shadow = context.shadow
  }

  stats(): Readonly<Record<string, number>> {
    return this.shadow === undefined ? {} : { realmode_emulated_instructions: this.emulatedInstructions }
  }

  run(cpu: Cpu, cycles: number, guestTsc: number): ExitAction | undefined {
    const vmcs = this.vmcs
    const shadow = this.shadow
    if (shadow !== undefined) {
      if ((vmcs.guest.regs.cr0 & CR0_PE) === 0) return this.emulateInvalidState(cpu, guestTsc)
      const failed = shadow.enter()
      if (failed !== undefined)
        return End({ _tag: "Failed", message: `no machine memory for shadow page tables: ${failed.message}` })
    }
    if (cpu !== this.lastCpu) {
      // a different pCPU than last time: what it cached for this VPID is stale (KVM's vmx_vcpu_load)
      if (this.lastCpu !== undefined && vmcs.controls.vpid !== 0) invvpidSingleContext(cpu, vmcs.controls.vpid)
      this.lastCpu = cpu
    }
    vmcs.controls.preemptionTimer = Math.max(1, Math.floor(cycles / 2 ** PREEMPTION_TIMER_RATE))
    vmcs.controls.tscOffset = guestTsc - cpu.cycles
    vmcs.guest.regs.tsc = guestTsc
    const before = cpu.instructions
    const exit = vmenter(cpu, vmcs, cycles)
    shadow?.leave()
    this.host.retired(cpu.instructions - before)
    if (exit !== RunExit.VmExit) return undefined
    this.host.observeExit(vmcs)
    this.reinjectInterruptedEvent()
    const action = dispatchExit(this.context)
    this.host.afterExit()
    return action
  }

  /**
   * Real mode without unrestricted guest: one instruction in the emulator (invalid-guest-state.ts), charged
   * to the pCPU as a VM round trip on top of the instruction's own cycles (the VMM does the work).
   */
  private emulateInvalidState(cpu: Cpu, guestTsc: number): ExitAction | undefined {
    const emulate = this.host.emulateGuest
    if (emulate === undefined)
      return End({ _tag: "Failed", message: "VM entry failed: real mode needs 'unrestricted guest' (EPT)" })
    this.vmcs.guest.regs.tsc = guestTsc
    const step = emulate()
    cpu.cycles += step.cycles + cpu.vmEntryCost + cpu.vmExitCost
    this.emulatedInstructions += step.instructions
    this.host.retired(step.instructions)
    this.host.afterExit()
    if (step.exit === "shutdown") return End({ _tag: "TripleFault" })
    return step.exit === "halted" ? Halt : undefined
  }

  private reinjectInterruptedEvent(): void {
    const exit = this.vmcs.exit
    if ((exit.idtVectoringInfo & INTR_INFO_VALID) === 0) return
    const entry = this.vmcs.entry
    entry.interruptionInfo = exit.idtVectoringInfo >>> 0
    entry.exceptionErrorCode = exit.idtVectoringErrorCode
    entry.instructionLength = exit.instructionLength
    exit.idtVectoringInfo = 0
  }
}
