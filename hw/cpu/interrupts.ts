/**
 * Interrupt and exception delivery (Intel SDM Vol. 3A ch. 6): the real-mode
 * IVT (20.1.4), the protected-mode IDT with interrupt/trap gates, privilege
 * checks and the TSS stack switch (6.12), error codes (6.13), the
 * double-fault rules (6.15, table 6-5) and triple-fault shutdown; plus the
 * between-instructions event check (NMI, INTR, single-step #DB, interrupt
 * shadow after STI / MOV SS) and IRET (Vol. 2 IRET "Operation").
 *
 * In VMX non-root operation an exception goes to the exception bitmap first
 * (SDM Vol. 3C 26.2); one raised while an event is being delivered is looked
 * up as itself, before the double-fault rules, and its exit carries that
 * event as IDT-vectoring information (28.2.4, with the instruction length of
 * INT n, 28.2.5): what a VMM without EPT needs to re-deliver an interrupt
 * after a hidden page fault on the guest's stack or IDT.
 *
 * Task gates in the IDT need hardware task switching, which is not modelled
 * yet: they raise #GP(vector*8+2). Virtual-8086 mode is not modelled.
 */
import type { Cpu } from "./cpu.ts"
import { FAULT } from "./fault.ts"
import {
  AR_ACCESSED,
  AR_DB,
  CS,
  DB,
  DE,
  DF,
  ESP,
  F_AC,
  F_ID,
  F_IF,
  F_IOPL,
  F_NT,
  F_RF,
  F_TF,
  F_VM,
  GP,
  NMI,
  NP,
  PF,
  SS,
  TS,
  TYPE_CODE,
  TYPE_CONFORMING
} from "./regs.ts"
import {
  checkReturnCode,
  checkReturnStack,
  checkTssStackSegment,
  desc,
  descAccess,
  descBase,
  descDpl,
  descIsSystem,
  descLimit,
  descPresent,
  descType,
  dropInaccessibleSegments,
  markAccessed,
  readDescriptor,
  stackScratch,
  tssStack,
  writeStack
} from "./segmentation.ts"
import { RunExit } from "./state.ts"
import { ExitReason, InterruptionType, interruptionInfo } from "./vmx/exit-reasons.ts"
import { ExitControls, PinControls, ProcControls } from "./vmx/vmcs.ts"
import { recordVmExit } from "./vmx/vmx.ts"

/** `excVector` of a VM exit raised inside an instruction or a delivery (cpu.ts VMEXIT). */
const VMEXIT_VECTOR = 256

/** Exceptions that push an error code (SDM table 6-1). */
const hasErrorCode = (vector: number): boolean =>
  vector === DF || (vector >= TS && vector <= PF) || vector === 17 || vector === 21

/** Fault-class exceptions (SDM table 6-1): #DE #BR #UD #NM #TS #NP #SS #GP #PF #MF #AC #XM. (#DB is a fault only for instruction breakpoints, which push RF = 0.) */
const isFaultClass = (vector: number): boolean =>
  vector === DE ||
  (vector >= 5 && vector <= 7) ||
  (vector >= TS && vector <= PF) ||
  vector === 16 ||
  vector === 17 ||
  vector === 19

/** Contributory exceptions (SDM table 6-4). */
const contributory = (vector: number): boolean => vector === DE || (vector >= TS && vector <= GP)

/** SDM table 6-5: which first/second exception pairs make a double fault. */
export function makesDoubleFault(first: number, second: number): boolean {
  if (first === PF) return second === PF || contributory(second)
  return contributory(first) && contributory(second)
}

/** The kind of event being delivered: decides gate-DPL checks and the EXT bit of error codes. */
export const EventKind = {
  /** a hardware interrupt (INTR, NMI): EXT = 1 */
  External: 0,
  /** a CPU exception: EXT = 1 */
  Exception: 1,
  /** INT n / INT3 / INTO: gate DPL checked against CPL, EXT = 0 */
  Software: 2
} as const

/** The delivery kind of an event of VMX interruption type `type` (SDM 3C table 25-16: VM-entry injection). */
export function eventKindOf(type: number): number {
  if (type === InterruptionType.External || type === InterruptionType.Nmi) return EventKind.External
  return type === InterruptionType.HardwareException ? EventKind.Exception : EventKind.Software
}

/**
 * Deliver the fault recorded in excVector/excError, escalating to #DF and
 * to shutdown per SDM 6.15 when delivering it faults in turn.
 */
export function dispatchFault(c: Cpu): void {
  deliverException(c, c.excVector, c.excError)
}

export function deliverException(c: Cpu, vector: number, error: number): void {
  let v = vector
  let e = hasErrorCode(v) ? Math.max(error, 0) : -1
  for (;;) {
    if (c.vmcs !== null && exceptionExits(c, v, e)) {
      exceptionExit(c, v, e)
      return
    }
    if (v === PF && !c.hostTraps) c.cr2 = c.faultAddress
    const savedEsp = c.r32[ESP]!
    try {
      deliver(c, v, e, EventKind.Exception)
      return
    } catch (x) {
      if (x !== FAULT) throw x
      c.r32[ESP] = savedEsp
      if (c.excVector === VMEXIT_VECTOR) {
        c.vectoringInfo = 0
        exitRaised(c)
        return
      }
      const second = c.excVector
      const secondError = hasErrorCode(second) ? Math.max(c.excError, 0) : -1
      if (v === DF) {
        c.vectoringInfo = 0
        shutdown(c)
        return
      }
      if (c.vmcs !== null && exceptionExits(c, second, secondError)) {
        // in VMX non-root operation the nested exception is looked up in the exception bitmap as itself, before
        // any double-fault conversion: it exits "during event delivery", c.vectoringInfo still naming v (SDM 3C
        // 26.2, 28.2.4; KVM's shadow MMU relies on it: a hidden #PF while delivering an injected #PF)
        v = second
        e = secondError
        continue
      }
      // otherwise the pair is resolved as on bare metal; a #DF that exits does so directly, not during delivery
      c.vectoringInfo = 0
      if (makesDoubleFault(v, second)) {
        v = DF
        e = 0
      } else {
        v = second
        e = secondError
      }
    }
  }
}

/**
 * An exception that the exception bitmap turns into a VM exit (SDM 3C 26.2, 28.2.2): reason 0, the
 * interruption information and error code, qualification = the #PF linear address or the #DB DR6 bits. If it
 * arose while an event was being delivered (an interrupt, an injected event, INT n, or an exception whose
 * delivery faulted), that event is the IDT-vectoring information, so the VMM can re-inject it once the cause
 * is gone (SDM 3C 28.2.4); for a software interrupt or exception the VM-exit instruction length is that of
 * the instruction (28.2.5).
 */
function exceptionExit(c: Cpu, v: number, e: number): void {
  recordVmExit(
    c,
    ExitReason.ExceptionOrNmi,
    v === PF ? c.faultAddress : v === DB ? c.dr[6]! & 0x600f : 0,
    interruptionInfo(v, InterruptionType.HardwareException, e >= 0),
    Math.max(e, 0)
  )
  const vectoring = c.vectoringInfo >>> 0
  if (vectoring === 0) return
  const exit = c.vmcs!.exit
  exit.idtVectoringInfo = vectoring
  exit.idtVectoringErrorCode = c.vectoringError >>> 0
  const type = (vectoring >>> 8) & 7
  if (
    type === InterruptionType.SoftwareInterrupt ||
    type === InterruptionType.SoftwareException ||
    type === InterruptionType.PrivilegedSoftwareException
  )
    exit.instructionLength = c.faultLength
  c.vectoringInfo = 0
}

/** SDM 3C 26.2: does exception `vector` (error code `error`) exit, per the exception bitmap and the #PF mask/match? */
function exceptionExits(c: Cpu, vector: number, error: number): boolean {
  const ctl = c.vmcs!.controls
  const bit = ((ctl.exceptionBitmap >>> vector) & 1) !== 0
  if (vector !== PF) return bit
  const match = (error & ctl.pageFaultErrorCodeMask) >>> 0 === ctl.pageFaultErrorCodeMatch >>> 0
  return match ? bit : !bit
}

/** A VM exit was raised (vmExitNow) while delivering an event: `run` returns VmExit at the next check. */
function exitRaised(c: Cpu): void {
  c.resetPrefixes()
  c.exitCode = RunExit.VmExit
  c.eventPending = true
}

/** Triple fault: the processor enters shutdown (SDM 6.15, interrupt 8). */
export function shutdown(c: Cpu): void {
  if (c.vmcs !== null) {
    // a triple fault in VMX non-root operation is a VM exit, not a shutdown (SDM 3C 26.2)
    recordVmExit(c, ExitReason.TripleFault)
    return
  }
  c.isShutdown = true
  c.halted = true
  c.eventPending = true
}

/**
 * Software interrupt INT n / INT3 / INTO from the instruction that just
 * executed (EIP already points past it). Faults during delivery are the
 * instruction's faults.
 */
export function softwareInterrupt(c: Cpu, vector: number): void {
  deliver(c, vector, -1, EventKind.Software)
}

/** handleEvents' answer "execute exactly one instruction, then check again" (an interrupt shadow is active). */
export const STEP_ONE = -2

/**
 * Check for and take pending events between instructions. Returns a RunExit
 * to stop, -1 to go on, or STEP_ONE when the next instruction is in an
 * interrupt shadow (STI, MOV SS: SDM Vol. 2 STI, 3C table 25-3) and must run
 * before any interrupt is recognized.
 */
export function handleEvents(c: Cpu): number {
  if (c.isShutdown) return RunExit.Shutdown
  if (c.exitCode >= 0) {
    const code = c.exitCode
    c.exitCode = -1
    return code
  }
  if (c.stopRequested) {
    c.stopRequested = false
    return RunExit.Stopped
  }
  if (c.vmcs !== null && nonRootEventExit(c)) return RunExit.VmExit
  // an emulating VMM's interrupt window (cpu.ts stopAtInterruptWindow): it injects the pending interrupt itself
  if (c.stopAtInterruptWindow && (c.flags & F_IF) !== 0 && !c.intShadow) return RunExit.Stopped
  let stepOne = false
  try {
    if (c.tfTrap) {
      c.tfTrap = false
      c.dr[6] = c.dr[6]! | (1 << 14) // DR6.BS: single step
      deliverException(c, DB, -1)
    }
    if (c.intShadow) {
      c.intShadow = false
      stepOne = true
    } else if (c.nmiPending && !c.nmiBlocked) {
      c.nmiPending = false
      c.nmiBlocked = true
      c.halted = false
      deliver(c, NMI, -1, EventKind.External)
    } else if (c.intrLine && (c.flags & F_IF) !== 0) {
      c.halted = false
      const vector = c.acknowledge() & 0xff
      deliver(c, vector, -1, EventKind.External)
    }
  } catch (x) {
    if (x !== FAULT) throw x
    if (c.excVector === VMEXIT_VECTOR) exitRaised(c)
    else deliverException(c, c.excVector, c.excError)
  }
  if (c.exitCode >= 0) {
    const code = c.exitCode
    c.exitCode = -1
    return code
  }
  if (c.isShutdown) return RunExit.Shutdown
  if (stepOne) {
    if ((c.flags & F_TF) !== 0) c.tfTrap = true
    return STEP_ONE
  }
  if (c.halted) return RunExit.Halt
  if ((c.flags & F_TF) !== 0) c.tfTrap = true
  c.eventPending =
    c.tfTrap ||
    c.intShadow ||
    c.nmiPending ||
    (c.intrLine && ((c.flags & F_IF) !== 0 || (c.vmPin & PinControls.ExternalInterruptExiting) !== 0)) ||
    (c.vmcs !== null && (c.vmProc & ProcControls.InterruptWindowExiting) !== 0 && (c.flags & F_IF) !== 0) ||
    (c.stopAtInterruptWindow && (c.flags & F_IF) !== 0)
  return -1
}

/**
 * Events that cause VM exits instead of being delivered to the guest
 * (SDM 3C 26.2): NMIs with NMI exiting, INTR with external-interrupt exiting
 * (whatever the guest's IF), and the interrupt window opening with
 * interrupt-window exiting. Returns true when an exit was recorded.
 */
function nonRootEventExit(c: Cpu): boolean {
  // the guest's activity state is saved as it is (a halted guest stays in HLT, SDM 3C 28.1, 28.3.4)
  if (c.nmiPending && (c.vmPin & PinControls.NmiExiting) !== 0) {
    c.nmiPending = false
    recordVmExit(c, ExitReason.ExceptionOrNmi, 0, interruptionInfo(NMI, InterruptionType.Nmi, false))
    c.exitCode = -1
    return true
  }
  // RFLAGS.IF does not hold back an exiting external interrupt, but blocking by STI / MOV SS does (SDM 3C 26.2, table 25-3)
  if (c.intrLine && (c.vmPin & PinControls.ExternalInterruptExiting) !== 0 && !c.intShadow) {
    let info = 0
    if ((c.vmcs!.controls.exit & ExitControls.AcknowledgeInterruptOnExit) !== 0) {
      info = interruptionInfo(c.acknowledge() & 0xff, InterruptionType.External, false)
    }
    recordVmExit(c, ExitReason.ExternalInterrupt, 0, info)
    c.exitCode = -1
    return true
  }
  if ((c.vmProc & ProcControls.InterruptWindowExiting) !== 0 && (c.flags & F_IF) !== 0 && !c.intShadow) {
    recordVmExit(c, ExitReason.InterruptWindow)
    c.exitCode = -1
    return true
  }
  return false
}

/** Deliver vector `vector` with error code `error` (-1: none). */
export function deliver(c: Cpu, vector: number, error: number, kind: number): void {
  c.halted = false
  if (c.hostTraps && c.vmcs === null && (kind !== EventKind.Software || vector !== c.directSoftwareVector)) {
    // the hypervisor-owned IDT: every event goes back to the monitor (cpu.ts hostTraps)
    if (vector === PF) c.cr2 = c.faultAddress
    c.trapVector = vector
    c.trapError = error
    c.trapKind = kind
    c.exitCode = RunExit.Trap
    c.eventPending = true
    return
  }
  c.cycles += c.eventCost
  // if delivery is cut short by a VM exit, the exit reports this event as IDT-vectoring information (SDM 3C 28.2.4)
  c.vectoringInfo = interruptionInfo(
    vector,
    kind === EventKind.Software
      ? vector === 3 || vector === 4
        ? InterruptionType.SoftwareException
        : InterruptionType.SoftwareInterrupt
      : kind === EventKind.External
        ? vector === NMI
          ? InterruptionType.Nmi
          : InterruptionType.External
        : InterruptionType.HardwareException,
    error >= 0
  )
  c.vectoringError = Math.max(error, 0)
  if (!c.pe) deliverReal(c, vector)
  else deliverProtected(c, vector, error, kind)
  c.vectoringInfo = 0
}

/** Real-address-mode delivery through the IVT (SDM 20.1.4): push FLAGS, CS, IP; clear IF, TF, AC. */
function deliverReal(c: Cpu, vector: number): void {
  const entry = vector * 4
  if (entry + 3 > c.idtrLimit) c.fault(GP, entry + 2)
  const ip = c.sysLd16(c.idtrBase + entry)
  const cs = c.sysLd16(c.idtrBase + entry + 2)
  const flags = c.getFlags()
  const sp1 = c.spPlus(-2)
  const sp2 = c.spPlus(-4)
  const sp3 = c.spPlus(-6)
  const a1 = c.linW(SS, sp1, 2)
  const a2 = c.linW(SS, sp2, 2)
  const a3 = c.linW(SS, sp3, 2)
  c.st16(a1, flags & 0xffff)
  c.st16(a2, c.segSel[CS]!)
  c.st16(a3, c.eip & 0xffff)
  c.setSp(sp3)
  c.flags = flags & ~(F_IF | F_TF | F_AC)
  c.loadSegReal(CS, cs)
  c.eip = ip
}

/** Protected-mode delivery through an interrupt or trap gate (SDM 6.12.1). */
function deliverProtected(c: Cpu, vector: number, error: number, kind: number): void {
  const ext = kind === EventKind.Software ? 0 : 1
  const gateOff = vector * 8
  const gateError = gateOff + 2 + ext
  if (gateOff + 7 > c.idtrLimit) c.fault(GP, gateError)
  const lo = c.sysLd32(c.idtrBase + gateOff)
  const hi = c.sysLd32(c.idtrBase + gateOff + 4)
  const type = descType(hi)
  const isGate = descIsSystem(hi) && (type === 6 || type === 7 || type === 14 || type === 15)
  if (!isGate) c.fault(GP, gateError) // includes task gates (type 5): task switching is not modelled
  if (kind === EventKind.Software && descDpl(hi) < c.cpl) c.fault(GP, gateOff + 2)
  if (!descPresent(hi)) c.fault(NP, gateError)
  const is32 = (type & 8) !== 0
  const trapGate = (type & 1) !== 0
  const selector = lo >>> 16
  const offset = is32 ? (lo & 0xffff) | (hi & 0xffff0000) : lo & 0xffff
  if ((selector & 0xfffc) === 0) c.fault(GP, ext)
  readDescriptor(c, selector, GP, ext)
  const clo = desc.lo
  const chi = desc.hi
  const codeAddr = desc.addr
  const csError = (selector & 0xfffc) | ext
  if (descIsSystem(chi) || (descType(chi) & TYPE_CODE) === 0 || descDpl(chi) > c.cpl) c.fault(GP, csError)
  if (!descPresent(chi)) c.fault(NP, csError)
  const codeLimit = descLimit(clo, chi)
  if (offset >>> 0 > codeLimit) c.fault(GP, ext)
  const dpl = descDpl(chi)
  const size = is32 ? 4 : 2
  const flags = c.getFlags()
  // the EFLAGS image of a fault-class exception has RF = 1, so IRET resumes without re-triggering an instruction breakpoint (SDM 17.3.1.1)
  const pushedFlags = kind === EventKind.Exception && isFaultClass(vector) ? flags | F_RF : flags
  const oldCs = c.segSel[CS]!
  const oldEip = c.eip
  const conforming = (descType(chi) & TYPE_CONFORMING) !== 0
  let n = 0
  if (!conforming && dpl < c.cpl) {
    // inter-privilege: switch to the TSS stack for `dpl`, then push old SS:ESP
    const { ss, esp } = tssStack(c, dpl, ext)
    const stack = checkTssStackSegment(c, ss, dpl, ext)
    stackScratch[n++] = c.segSel[SS]!
    stackScratch[n++] = c.r32[ESP]!
    stackScratch[n++] = pushedFlags
    stackScratch[n++] = oldCs
    stackScratch[n++] = oldEip
    if (error >= 0) stackScratch[n++] = error
    const newSp = writeStack(c, stack.base, stack.limit, stack.access, esp, n, size, (ss & 0xfffc) | ext)
    c.setCpl(dpl)
    c.loadSegCache(SS, ss, stack.base, stack.limit, stack.access)
    if ((stack.access & AR_DB) !== 0) c.r32[ESP] = newSp
    else c.r16[ESP << 1] = newSp
  } else {
    stackScratch[n++] = pushedFlags
    stackScratch[n++] = oldCs
    stackScratch[n++] = oldEip
    if (error >= 0) stackScratch[n++] = error
    const newSp = writeStack(c, c.segBase[SS]!, c.segLimit[SS]!, c.segAccess[SS]!, c.sp, n, size, ext)
    c.setSp(newSp)
  }
  if ((chi & 0x100) === 0) c.sysSt8(codeAddr + 5, ((chi >>> 8) & 0xff) | 1)
  const rpl = !conforming && dpl < c.cpl ? dpl : c.cpl
  c.loadSegCache(CS, (selector & 0xfffc) | rpl, descBase(clo, chi), codeLimit, descAccess(chi) | AR_ACCESSED)
  c.eip = offset | 0
  c.flags = flags & ~(F_TF | F_NT | F_RF | F_VM | (trapGate ? 0 : F_IF))
}

/** IRET / IRETD (SDM Vol. 2 IRET "Operation"; NT=1 task return and V86 return are not modelled: #GP(0)). */
export function iret(c: Cpu, o32: boolean): void {
  const size = o32 ? 4 : 2
  const eip = c.peek(0, size)
  const cs = c.peek(size, size) & 0xffff
  const popped = c.peek(2 * size, size)
  const oldFlags = c.getFlags()
  if (!c.pe) {
    c.loadSegReal(CS, cs)
    c.eip = o32 ? eip : eip & 0xffff
    const writable = o32 ? 0x257fd5 : 0x7fd5
    c.setFlags((oldFlags & ~writable) | (popped & writable))
    c.setSp(c.spPlus(3 * size))
    c.nmiBlocked = false
    return
  }
  if ((oldFlags & F_NT) !== 0) c.fault(GP, 0)
  if (o32 && (popped & F_VM) !== 0 && c.cpl === 0) c.fault(GP, 0)
  checkReturnCode(c, cs)
  const code = { lo: desc.lo, hi: desc.hi, addr: desc.addr }
  const rpl = cs & 3
  const oldCpl = c.cpl
  let writable = 0x4dd5 | F_RF | F_ID | F_AC // CF PF AF ZF SF TF DF OF NT, plus RF AC ID
  if (oldCpl === 0) writable |= F_IOPL
  if (oldCpl <= (oldFlags & F_IOPL) >> 12) writable |= F_IF
  if (!o32) writable &= 0xffff
  const newFlags = (oldFlags & ~writable) | (popped & writable)
  const target = o32 ? eip : eip & 0xffff
  if (target >>> 0 > descLimit(code.lo, code.hi)) c.fault(GP, 0)
  if (rpl > oldCpl) {
    const esp = c.peek(3 * size, size)
    const ss = c.peek(4 * size, size) & 0xffff
    const stack = checkReturnStack(c, ss, rpl)
    commitCode(c, cs, rpl, code)
    c.eip = target | 0
    c.setFlags(newFlags)
    c.setCpl(rpl)
    c.loadSegCache(SS, ss, stack.base, stack.limit, stack.access)
    c.setSp(esp)
    dropInaccessibleSegments(c)
  } else {
    commitCode(c, cs, oldCpl, code)
    c.eip = target | 0
    c.setFlags(newFlags)
    c.setSp(c.spPlus(3 * size))
  }
  c.nmiBlocked = false
}

function commitCode(c: Cpu, cs: number, rpl: number, code: { lo: number; hi: number; addr: number }): void {
  desc.lo = code.lo
  desc.hi = code.hi
  desc.addr = code.addr
  markAccessed(c)
  c.loadSegCache(
    CS,
    (cs & 0xfffc) | rpl,
    descBase(code.lo, code.hi),
    descLimit(code.lo, code.hi),
    descAccess(desc.hi) | AR_ACCESSED
  )
}
