/** External-interrupt exits (reason 1): a physical interrupt for the vmkernel: give the pCPU back. */
import { type ExitAction, type ExitContext, Yield } from "./types.ts"

export function handleExternalInterrupt(ctx: ExitContext): ExitAction {
  ctx.counters.exit_external_interrupt++
  return Yield
}
