/** HLT exits (reason 12): the vCPU sleeps (activity state HLT) until an interrupt is pending; RIP moves past HLT. */
import { type ExitAction, type ExitContext, Halt } from "./types.ts"

export function handleHlt(ctx: ExitContext): ExitAction {
  ctx.counters.exit_hlt++
  ctx.skipInstruction()
  return Halt
}
