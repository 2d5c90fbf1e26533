/**
 * The exit dispatcher: one pure switch from exit reason (SDM 3C appendix C)
 * to its handler module, one module per reason. Tested with fabricated
 * exits (test/vmm/exits.test.ts).
 */
import { EXIT_REASON_ENTRY_FAILURE, ExitReason } from "../../hw/cpu/vmx/exit-reasons.ts"
import { handleCpuid } from "./cpuid.ts"
import { handleCrAccess } from "./cr-access.ts"
import { handleEptViolation } from "./ept-violation.ts"
import { handleException } from "./exception.ts"
import { handleExternalInterrupt } from "./external-interrupt.ts"
import { handleHlt } from "./hlt.ts"
import { handleInterruptWindow } from "./interrupt-window.ts"
import { handleInvlpg } from "./invlpg.ts"
import { handleIo } from "./io.ts"
import { handleMsr } from "./msr.ts"
import { handlePreemptionTimer } from "./preemption-timer.ts"
import { handleTripleFault } from "./triple-fault.ts"
import { End, type ExitAction, type ExitContext } from "./types.ts"
import { handleUnexpected } from "./unexpected.ts"
import { handleVmcall } from "./vmcall.ts"

export function dispatchExit(ctx: ExitContext): ExitAction {
  const reason = ctx.vmcs.exit.reason >>> 0
  if ((reason & EXIT_REASON_ENTRY_FAILURE) !== 0) {
    return End({ _tag: "Failed", message: `VM entry failed: invalid guest state (reason ${reason & 0xffff})` })
  }
  switch (reason & 0xffff) {
    case ExitReason.IoInstruction:
      return handleIo(ctx)
    case ExitReason.EptViolation:
      return handleEptViolation(ctx)
    case ExitReason.Cpuid:
      return handleCpuid(ctx)
    case ExitReason.Hlt:
      return handleHlt(ctx)
    case ExitReason.CrAccess:
      return handleCrAccess(ctx)
    case ExitReason.Rdmsr:
    case ExitReason.Wrmsr:
      return handleMsr(ctx)
    case ExitReason.Invlpg:
      return handleInvlpg(ctx)
    case ExitReason.Vmcall:
      return handleVmcall(ctx)
    case ExitReason.ExceptionOrNmi:
      return handleException(ctx)
    case ExitReason.ExternalInterrupt:
      return handleExternalInterrupt(ctx)
    case ExitReason.InterruptWindow:
      return handleInterruptWindow(ctx)
    case ExitReason.PreemptionTimer:
      return handlePreemptionTimer(ctx)
    case ExitReason.TripleFault:
      return handleTripleFault(ctx)
    default:
      return handleUnexpected(ctx)
  }
}
