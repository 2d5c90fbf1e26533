/** VMCALL exits (reason 18): `hw` mode offers no hypercalls, so the guest gets #UD as on bare metal. */
import { type ExitAction, type ExitContext, Resume } from "./types.ts"

export function handleVmcall(ctx: ExitContext): ExitAction {
  ctx.counters.exit_other++
  ctx.injectException(6, -1)
  return Resume
}
