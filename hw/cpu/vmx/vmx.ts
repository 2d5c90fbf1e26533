/**
 * VM entry and VM exit (Intel SDM Vol. 3C ch. 27 "VM Entries" and ch. 28
 * "VM Exits" (26/27 in older editions)): `vmenter(cpu, vmcs, budget)` runs
 * a guest in VMX non-root operation until a VM exit, and returns a small
 * RunExit code; the exit's details are in the VMCS exit-information fields,
 * as on hardware. Nothing is allocated per entry or exit.
 *
 * Entry: check the guest state (a subset of SDM 27.3.1: CR0 fixed bits
 * unless "unrestricted guest", EPTP validity), switch to the TLB set tagged
 * (VPID, EPTP) (flushed on every entry when VPID is off, as SDM 29.4.3
 * says for VPID 0000), load the guest registers, inject the pending event
 * (SDM 27.6 "Event Injection"), arm the VMX-preemption timer (SDM 26.5.1).
 *
 * Exit: instruction exits are raised by the handlers (vmExitNow), event
 * exits by the event logic (recordVmExit); here the guest state is saved
 * back (activity state, STI/MOV SS blocking) and the root TLB set restored.
 */
import type { Cpu } from "../cpu.ts"
import { FAULT } from "../fault.ts"
import { deliver, dispatchFault, eventKindOf } from "../interrupts.ts"
import { CR0_PE, CR0_PG } from "../regs.ts"
import { RunExit } from "../state.ts"
import { eptPointerValid } from "./ept.ts"
import {
  EXIT_REASON_ENTRY_FAILURE,
  ExitReason,
  INTR_INFO_ERROR_CODE,
  INTR_INFO_VALID,
  InterruptionType
} from "./exit-reasons.ts"
import {
  ActivityState,
  ExitControls,
  Interruptibility,
  PinControls,
  PREEMPTION_TIMER_RATE,
  Proc2Controls,
  ProcControls,
  type Vmcs
} from "./vmcs.ts"

/** Tag of a (VPID, EPTP) address space in the TLB (root mode is 0). */
const tlbTag = (vpid: number, eptp: number): number => (vpid & 0xffff) * 2 ** 32 + (eptp >>> 0) + 1

/**
 * INVVPID, single-context type (SDM 3C 30.3 "INVVPID"; 29.4.3.3): drop every
 * translation this pCPU cached for VPID `vpid`, under any EPTP. A VMM does
 * it when a vCPU comes to a pCPU other than the one it last ran on: this
 * pCPU may still hold translations of the vCPU's address spaces from
 * before, which its page-table changes on the other pCPU never reached
 * (KVM's vmx_vcpu_load).
 */
export function invvpidSingleContext(c: Cpu, vpid: number): void {
  const want = vpid & 0xffff
  c.flushTlbSets((tag) => tag !== 0 && Math.floor((tag - 1) / 2 ** 32) === want)
}

/**
 * Raise a VM exit from inside an instruction: the instruction does not
 * complete; RIP stays at its first byte; the instruction length is what has
 * been decoded so far.
 */
export function vmExitNow(c: Cpu, reason: number, qualification = 0): never {
  recordInstructionExit(c, reason, qualification)
  throw FAULT
}

/** The exit fields of an exit an instruction causes (SDM 3C 27.2.1, 27.2.4), and the VM-exit marker. */
function recordInstructionExit(c: Cpu, reason: number, qualification: number): void {
  const v = c.vmcs!
  v.exit.reason = reason
  v.exit.qualification = qualification >>> 0
  v.exit.instructionLength = (c.eip - c.startEip) >>> 0
  v.exit.interruptionInfo = 0
  v.exit.idtVectoringInfo = c.vectoringInfo >>> 0
  v.exit.idtVectoringErrorCode = c.vectoringError >>> 0
  c.vectoringInfo = 0
  c.excVector = 256
}

/**
 * Raise a VM exit from an instruction that has had no effect yet, without a
 * throw (V8 walks the stack to build a message for every throw, which would
 * dominate an I/O- or CPUID-heavy guest's exits): the same exit fields as
 * vmExitNow, and the same rewind as the run loop's fault path (prefixes
 * reset, RIP at the first byte, the instruction not retired); `run` returns
 * VmExit at the next check. The caller returns at once and changes nothing
 * else.
 */
export function vmExitBeforeEffect(c: Cpu, reason: number, qualification = 0): void {
  recordInstructionExit(c, reason, qualification)
  c.resetPrefixes()
  c.eip = c.startEip
  c.instructions-- // the instruction exits instead of executing (SDM 3C 26.1): `run` counted it when it started
  c.exitCode = RunExit.VmExit
  c.eventPending = true
}

/** Record a VM exit caused by an event (exception, interrupt, window, timer): `run` returns VmExit next. */
export function recordVmExit(c: Cpu, reason: number, qualification = 0, interruptionInfo = 0, errorCode = 0): void {
  const v = c.vmcs!
  v.exit.reason = reason
  v.exit.qualification = qualification >>> 0
  v.exit.interruptionInfo = interruptionInfo >>> 0
  v.exit.interruptionErrorCode = errorCode >>> 0
  v.exit.instructionLength = 0
  v.exit.idtVectoringInfo = 0
  c.exitCode = RunExit.VmExit
  c.eventPending = true
}

function entryFailure(vmcs: Vmcs): RunExit {
  vmcs.exit.reason = (ExitReason.EntryFailGuestState | EXIT_REASON_ENTRY_FAILURE) >>> 0
  vmcs.exit.qualification = 0
  return RunExit.VmExit
}

/** A subset of the guest-state checks of SDM 27.3.1 that this model relies on. */
function guestStateValid(vmcs: Vmcs): boolean {
  const g = vmcs.guest.regs
  // the secondary controls are in effect only when "activate secondary controls" is 1 (SDM 3C 25.6.2): otherwise
  // "unrestricted guest" and "enable EPT" are 0 for these checks too
  const proc2 = (vmcs.controls.proc & ProcControls.ActivateSecondaryControls) !== 0 ? vmcs.controls.proc2 : 0
  const unrestricted = (proc2 & Proc2Controls.UnrestrictedGuest) !== 0
  const ept = (proc2 & Proc2Controls.EnableEpt) !== 0
  if (unrestricted && !ept) return false
  if (!unrestricted && ((g.cr0 & CR0_PE) === 0 || (g.cr0 & CR0_PG) === 0)) return false
  if ((g.cr0 & CR0_PG) !== 0 && (g.cr0 & CR0_PE) === 0) return false
  if (ept && !eptPointerValid(vmcs.controls.eptPointer)) return false
  if (vmcs.guest.activityState !== ActivityState.Active && vmcs.guest.activityState !== ActivityState.Hlt) return false
  return true
}

/**
 * VMLAUNCH/VMRESUME: run the guest of `vmcs` on `c` for up to `budget`
 * instructions. Returns VmExit (details in vmcs.exit), Budget, Halt (the
 * guest executed HLT without HLT exiting and nothing woke it) or Stopped.
 */
export function vmenter(c: Cpu, vmcs: Vmcs, budget: number): RunExit {
  if (!guestStateValid(vmcs)) return entryFailure(vmcs)
  const ctl = vmcs.controls
  c.cycles += c.vmEntryCost
  c.vmcs = vmcs
  c.vmPin = ctl.pin
  c.vmProc = ctl.proc
  c.vmProc2 = (ctl.proc & ProcControls.ActivateSecondaryControls) !== 0 ? ctl.proc2 : 0
  c.vmEpt = (c.vmProc2 & Proc2Controls.EnableEpt) !== 0
  c.vmEptp = c.vmEpt ? ctl.eptPointer >>> 0 : 0
  const vpidOn = (c.vmProc2 & Proc2Controls.EnableVpid) !== 0 && ctl.vpid !== 0
  c.switchTlb(tlbTag(vpidOn ? ctl.vpid : 0, c.vmEptp))
  if (!vpidOn) c.flushTlb(false)
  c.loadRegisters(vmcs.guest.regs)
  c.halted = vmcs.guest.activityState === ActivityState.Hlt
  c.intShadow =
    (vmcs.guest.interruptibility & (Interruptibility.BlockingBySti | Interruptibility.BlockingByMovSs)) !== 0
  c.nmiBlocked = (vmcs.guest.interruptibility & Interruptibility.BlockingByNmi) !== 0
  c.exitCode = -1
  c.vectoringInfo = 0
  vmcs.launched = true
  vmcs.exit.reason = 0

  let result: RunExit = RunExit.Budget
  if (injectEvent(c, vmcs)) result = RunExit.VmExit
  const timerOn = (c.vmPin & PinControls.PreemptionTimer) !== 0
  const deadline = c.cycles + ctl.preemptionTimer * 2 ** PREEMPTION_TIMER_RATE
  if (result !== RunExit.VmExit && timerOn && ctl.preemptionTimer === 0) {
    // a zero timer exits before the first guest instruction (SDM 26.5.1.1)
    recordVmExit(c, ExitReason.PreemptionTimer)
    c.exitCode = -1
    result = RunExit.VmExit
  }
  // The timer exit comes at the first instruction boundary at or after the deadline (SDM 3C 26.5.1.1), whatever
  // instructions cost: chunks hold at most (cycles left) / (dearest opcode) instructions, shrinking to single
  // instructions near the deadline. Only a chunk whose instructions average more than the dearest opcode (mostly
  // TLB misses, event deliveries, long REP chunks) can pass the deadline, by that excess.
  const perInstruction = timerOn ? maxOpcodeCost(c) : 1
  let left = budget
  while (result !== RunExit.VmExit && left > 0) {
    const chunk = timerOn ? Math.max(1, Math.min(left, Math.floor((deadline - c.cycles) / perInstruction))) : left
    result = c.run(chunk)
    // a chunk that ends on its budget started all `chunk` instructions (those that faulted included: the
    // budget bounds instructions started, so a guest looping on a fault still reaches the timer or the end)
    left -= chunk
    if (result === RunExit.Budget && timerOn && c.cycles >= deadline) {
      recordVmExit(c, ExitReason.PreemptionTimer)
      c.exitCode = -1
      result = RunExit.VmExit
    } else if (result === RunExit.Halt && timerOn) {
      // the timer keeps counting in the HLT activity state (SDM 26.5.1.1)
      c.cycles = Math.max(c.cycles, deadline)
      recordVmExit(c, ExitReason.PreemptionTimer)
      c.exitCode = -1
      result = RunExit.VmExit
    }
    if (result !== RunExit.Budget) break
  }
  if (timerOn && (ctl.exit & ExitControls.SavePreemptionTimer) !== 0) {
    ctl.preemptionTimer = Math.max(0, Math.ceil((deadline - c.cycles) / 2 ** PREEMPTION_TIMER_RATE))
  }
  leaveGuest(c, vmcs)
  if (result === RunExit.VmExit) c.cycles += c.vmExitCost
  return result
}

/** The cycles of the dearest opcode in the cost profile (at least 1). */
function maxOpcodeCost(c: Cpu): number {
  return c.maxOpCycles
}

/** Save the guest state into the VMCS and return the pCPU to root operation. */
function leaveGuest(c: Cpu, vmcs: Vmcs): void {
  c.storeRegisters(vmcs.guest.regs)
  vmcs.guest.activityState = c.halted ? ActivityState.Hlt : ActivityState.Active
  vmcs.guest.interruptibility =
    (c.intShadow ? Interruptibility.BlockingBySti : 0) | (c.nmiBlocked ? Interruptibility.BlockingByNmi : 0)
  c.exitCode = -1
  c.vmcs = null
  c.vmEpt = false
  c.vmEptp = 0
  c.halted = false
  c.switchTlb(0)
}

/** SDM 27.6: deliver the event in the VM-entry interruption-information field. Returns true if that caused a VM exit. */
function injectEvent(c: Cpu, vmcs: Vmcs): boolean {
  const info = vmcs.entry.interruptionInfo >>> 0
  if ((info & INTR_INFO_VALID) === 0) return false
  vmcs.entry.interruptionInfo = 0
  const vector = info & 0xff
  const type = (info >> 8) & 7
  const error = (info & INTR_INFO_ERROR_CODE) !== 0 ? vmcs.entry.exceptionErrorCode : -1
  const rip = c.eip
  if (
    type === InterruptionType.SoftwareInterrupt ||
    type === InterruptionType.SoftwareException ||
    type === InterruptionType.PrivilegedSoftwareException
  ) {
    c.eip = (c.eip + vmcs.entry.instructionLength) | 0
  }
  const kind = eventKindOf(type)
  c.halted = false
  if (type === InterruptionType.Nmi) c.nmiBlocked = true
  // a VM exit during the delivery saves the RIP of the entry and, for a software event, the VM-entry
  // instruction length as the VM-exit one (SDM 3C 28.2.5), so the VMM can inject the event again as it was
  c.startEip = rip
  c.faultLength = (c.eip - rip) >>> 0
  try {
    deliver(c, vector, error, kind)
  } catch (e) {
    if (e !== FAULT) throw e
    c.resetPrefixes()
    c.eip = rip
    if (c.excVector === 256) return true
    // a fault while delivering the injected event is handled as in the guest, #DF rules included (SDM 27.6.1.1)
    dispatchFault(c)
  }
  if (c.exitCode === RunExit.VmExit) {
    c.exitCode = -1
    return true
  }
  return false
}
