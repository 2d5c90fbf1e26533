/** INVLPG exits (reason 14): not requested with EPT (the guest's TLB is its own); if one comes, carry it out. */
import { emulateInstruction } from "./emulate-instruction.ts"
import type { ExitAction, ExitContext } from "./types.ts"

export function handleInvlpg(ctx: ExitContext): ExitAction {
  ctx.counters.exit_other++
  return emulateInstruction(ctx)
}
