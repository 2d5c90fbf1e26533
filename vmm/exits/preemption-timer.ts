/** VMX-preemption-timer exits (reason 52): the vCPU's quantum is over. */
import { type ExitAction, type ExitContext, Yield } from "./types.ts"

export function handlePreemptionTimer(ctx: ExitContext): ExitAction {
  ctx.counters.exit_preemption_timer++
  return Yield
}
