/**
 * The exits that need no emulation: HLT (12) puts the vCPU to sleep until an
 * interrupt is pending; the interrupt window (7) and an external interrupt
 * (1) just re-enter (the vCPU loop injects what is pending); the preemption
 * timer (52) ends the quantum; a triple fault (2) ends the VM (QEMU with
 * -no-reboot does the same); VMCALL (18) has no hypercalls in `hw` mode, so
 * the guest gets #UD as on bare metal; an exception in the bitmap (0) is
 * reflected back; a failed VM entry (33 | bit 31) ends the VM with the reason.
 */
import { exitReasonName } from "../../hw/cpu/vmx/exit-reasons.ts"
import { End, type ExitAction, type ExitContext, Halt, Resume, Yield } from "./types.ts"

export function handleHlt(ctx: ExitContext): ExitAction {
  ctx.counters.exit_hlt++
  const regs = ctx.vmcs.guest.regs
  regs.eip = (regs.eip + ctx.vmcs.exit.instructionLength) >>> 0
  return Halt
}

export function handleInterruptWindow(ctx: ExitContext): ExitAction {
  ctx.counters.exit_interrupt_window++
  return Resume
}

export function handleExternalInterrupt(ctx: ExitContext): ExitAction {
  ctx.counters.exit_external_interrupt++
  return Yield
}

export function handlePreemptionTimer(ctx: ExitContext): ExitAction {
  ctx.counters.exit_preemption_timer++
  return Yield
}

export function handleTripleFault(_ctx: ExitContext): ExitAction {
  return End({ _tag: "TripleFault" })
}

export function handleVmcall(ctx: ExitContext): ExitAction {
  ctx.counters.exit_other++
  ctx.injectException(6, -1)
  return Resume
}

export function handleException(ctx: ExitContext): ExitAction {
  ctx.counters.exit_exception++
  const info = ctx.vmcs.exit.interruptionInfo
  ctx.injectException(info & 0xff, (info & 0x800) !== 0 ? ctx.vmcs.exit.interruptionErrorCode : -1)
  return Resume
}

export function handleUnexpected(ctx: ExitContext): ExitAction {
  ctx.counters.exit_other++
  return End({ _tag: "Failed", message: `unexpected VM exit: ${exitReasonName(ctx.vmcs.exit.reason)}` })
}
