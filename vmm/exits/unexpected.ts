/** Any other exit: this VMM never asked for it, so the VM ends with the reason named (a VMM bug must not loop). */
import { exitReasonName } from "../../hw/cpu/vmx/exit-reasons.ts"
import { End, type ExitAction, type ExitContext } from "./types.ts"

export function handleUnexpected(ctx: ExitContext): ExitAction {
  ctx.counters.exit_other++
  return End({ _tag: "Failed", message: `unexpected VM exit: ${exitReasonName(ctx.vmcs.exit.reason)}` })
}
