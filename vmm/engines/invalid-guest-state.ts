/**
 * Guest states VMX cannot enter: without "unrestricted guest" (the first
 * generations of VT-x, and `hw` mode with `--ept off` here) VM entry
 * requires CR0.PE = 1 and CR0.PG = 1 (SDM Vol. 3C 27.3.1.1 and appendix
 * A.7, CR0 fixed bits). Protected mode with paging off is still entered: the
 * pCPU runs with PG = 1 on the shadow identity map (vmx-shadow-paging.ts).
 * Real mode cannot be: a guest in real mode (the INIT/SIPI state of an
 * application processor, a firmware ROM at the reset vector, a boot sector)
 * is run here, in the VM's instruction emulator, one instruction per call,
 * until it sets CR0.PE -- what KVM does on such hosts with
 * `emulate_invalid_guest_state` (vmx.c handle_invalid_guest_state) instead of
 * its older virtual-8086 trick.
 *
 * Each call is one "emulated entry": the event in the VMCS VM-entry
 * interruption field is delivered first, as VM entry would (SDM 3C 27.6),
 * then one instruction runs. Unlike the exit handlers' single steps (which
 * return every event to the VMM to inject), events here go through the
 * guest's own IVT as on the CPU (hostTraps off for the step), so INT n,
 * exceptions and a triple fault are the interpreter's exact real-mode
 * semantics. Returning to the vCPU loop after every instruction means the
 * VM's devices, interrupt injection, A20, IPIs, a reset or the end of the VM
 * are seen at once, as after a VM exit. The emulator works on guest-physical
 * memory, so the guest's A20 gate is honoured here.
 *
 * Not modelled: single-stepping (EFLAGS.TF) in emulated real mode.
 */
import type { Cpu } from "../../hw/cpu/cpu.ts"
import { FAULT } from "../../hw/cpu/fault.ts"
import { deliver, dispatchFault, eventKindOf } from "../../hw/cpu/interrupts.ts"
import { RunExit } from "../../hw/cpu/state.ts"
import { INTR_INFO_ERROR_CODE, INTR_INFO_VALID, InterruptionType } from "../../hw/cpu/vmx/exit-reasons.ts"
import { ActivityState, Interruptibility, type Vmcs } from "../../hw/cpu/vmx/vmcs.ts"
import type { InstructionEmulator } from "../emulator.ts"

export interface EmulatedStep {
  /** How it ended: the instruction ran, the guest is halted (HLT), or it shut down (triple fault). */
  readonly exit: "ran" | "halted" | "shutdown"
  /** Emulator cycles the step took. */
  readonly cycles: number
  /** Guest instructions retired (0 or 1). */
  readonly instructions: number
}

/**
 * Deliver the pending VM-entry event (if any) and execute one instruction of
 * the guest whose state is `vmcs.guest`, in `emulator`. The registers,
 * activity state and STI/MOV SS blocking are updated in the VMCS; nothing is
 * written back if a device reset the vCPU meanwhile (new registers).
 */
export function stepInvalidGuestState(emulator: InstructionEmulator, vmcs: Vmcs): EmulatedStep {
  const cpu = emulator.cpu
  const regs = vmcs.guest.regs
  const cycles = cpu.cycles
  const instructions = cpu.instructions
  cpu.loadRegisters(regs)
  cpu.tscOffset = regs.tsc - cpu.cycles
  cpu.isShutdown = false
  cpu.exitCode = -1
  cpu.halted = vmcs.guest.activityState === ActivityState.Hlt
  cpu.intShadow =
    (vmcs.guest.interruptibility & (Interruptibility.BlockingBySti | Interruptibility.BlockingByMovSs)) !== 0
  cpu.nmiBlocked = (vmcs.guest.interruptibility & Interruptibility.BlockingByNmi) !== 0
  cpu.flushTlb(false)
  cpu.hostTraps = false
  let exit: RunExit
  try {
    injectEntryEvent(cpu, vmcs)
    exit = cpu.isShutdown ? RunExit.Shutdown : cpu.run(1)
  } finally {
    cpu.hostTraps = true
    cpu.flushTlb(false) // the emulators' shared TLB is left empty (emulator.ts)
  }
  const step = {
    exit: exit === RunExit.Shutdown ? "shutdown" : cpu.halted ? "halted" : "ran",
    cycles: cpu.cycles - cycles,
    instructions: cpu.instructions - instructions
  } as const
  if (vmcs.guest.regs !== regs) return step // the instruction reset the VM (port 0x92, PS/2): its new state stands
  cpu.storeRegisters(regs)
  vmcs.guest.activityState = cpu.halted ? ActivityState.Hlt : ActivityState.Active
  vmcs.guest.interruptibility =
    (cpu.intShadow ? Interruptibility.BlockingBySti : 0) | (cpu.nmiBlocked ? Interruptibility.BlockingByNmi : 0)
  return step
}

/**
 * SDM 3C 27.6: the VM-entry interruption field's event, delivered through the guest's IVT/IDT on `cpu`
 * (hostTraps off), its registers the guest's; the field is cleared. Also the `emu` engine's (emu.ts).
 */
export function injectEntryEvent(cpu: Cpu, vmcs: Vmcs): void {
  const entry = vmcs.entry
  const info = entry.interruptionInfo >>> 0
  if ((info & INTR_INFO_VALID) === 0) return
  entry.interruptionInfo = 0
  const vector = info & 0xff
  const type = (info >>> 8) & 7
  const error = (info & INTR_INFO_ERROR_CODE) !== 0 ? entry.exceptionErrorCode : -1
  const rip = cpu.eip
  if (
    type === InterruptionType.SoftwareInterrupt ||
    type === InterruptionType.SoftwareException ||
    type === InterruptionType.PrivilegedSoftwareException
  ) {
    cpu.eip = (cpu.eip + entry.instructionLength) | 0
  }
  const kind = eventKindOf(type)
  cpu.halted = false
  if (type === InterruptionType.Nmi) cpu.nmiBlocked = true
  cpu.startEip = rip
  try {
    deliver(cpu, vector, error, kind)
  } catch (e) {
    if (e !== FAULT) throw e
    cpu.resetPrefixes()
    cpu.eip = rip // as vmx.ts's injection: the fault is the instruction's (INT n re-executes after the handler)
    dispatchFault(cpu) // a fault while delivering it: handled as in the guest, #DF and shutdown included
  }
}
