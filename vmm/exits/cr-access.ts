/** Control-register access exits (reason 28): not requested by this VMM's controls; if one comes, the instruction is carried out as written. */
import { emulateInstruction } from "./emulate-instruction.ts"
import type { ExitAction, ExitContext } from "./types.ts"

export function handleCrAccess(ctx: ExitContext): ExitAction {
  ctx.counters.exit_other++
  return emulateInstruction(ctx)
}
