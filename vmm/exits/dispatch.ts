/**
 * The exit dispatcher: one pure switch from exit reason (SDM 3C appendix C)
 * to its handler module. Tested with fabricated exits (test/vmm/exits).
 */
import { EXIT_REASON_ENTRY_FAILURE, ExitReason } from "../../hw/cpu/vmx/exit-reasons.ts"
import { handleEmulated } from "./emulated.ts"
import { handleEptViolation } from "./ept-violation.ts"
import {
  handleException,
  handleExternalInterrupt,
  handleHlt,
  handleInterruptWindow,
  handlePreemptionTimer,
  handleTripleFault,
  handleUnexpected,
  handleVmcall
} from "./simple.ts"
import { End, type ExitAction, type ExitContext } from "./types.ts"

export function dispatchExit(ctx: ExitContext): ExitAction {
  const reason = ctx.vmcs.exit.reason >>> 0
  if ((reason & EXIT_REASON_ENTRY_FAILURE) !== 0) {
    return End({ _tag: "Failed", message: `VM entry failed: invalid guest state (reason ${reason & 0xffff})` })
  }
  switch (reason & 0xffff) {
    case ExitReason.IoInstruction:
    case ExitReason.Rdmsr:
    case ExitReason.Wrmsr:
    case ExitReason.Cpuid:
      return handleEmulated(ctx)
    case ExitReason.EptViolation:
      return handleEptViolation(ctx)
    case ExitReason.Hlt:
      return handleHlt(ctx)
    case ExitReason.InterruptWindow:
      return handleInterruptWindow(ctx)
    case ExitReason.ExternalInterrupt:
      return handleExternalInterrupt(ctx)
    case ExitReason.PreemptionTimer:
      return handlePreemptionTimer(ctx)
    case ExitReason.TripleFault:
      return handleTripleFault(ctx)
    case ExitReason.Vmcall:
      return handleVmcall(ctx)
    case ExitReason.ExceptionOrNmi:
      return handleException(ctx)
    default:
      return handleUnexpected(ctx)
  }
}
