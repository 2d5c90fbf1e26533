/**
 * INVLPG exits (reason 14; SDM 3C 26.1.3, qualification = the linear address,
 * 28.2.1). With EPT none is requested (the guest's TLB is its own); if one
 * comes, the instruction is carried out. Without EPT (`ctx.shadow`) the
 * shadow drops its translation of that page (SDM 3A 4.10.4.1; the pCPU's TLB
 * is flushed at the next entry anyway) and RIP moves past the instruction.
 */
import { F_TF } from "../../hw/cpu/regs.ts"
import { emulateInstruction } from "./emulate-instruction.ts"
import { type ExitAction, type ExitContext, Resume } from "./types.ts"

export function handleInvlpg(ctx: ExitContext): ExitAction {
  ctx.counters.exit_invlpg++
  if (ctx.shadow === undefined) return emulateInstruction(ctx)
  ctx.shadow.invlpg(ctx.vmcs.exit.qualification >>> 0)
  // single-stepping: the emulator runs INVLPG (on its own TLB: nothing more) and raises the #DB
  if ((ctx.vmcs.guest.regs.eflags & F_TF) !== 0) return emulateInstruction(ctx)
  ctx.skipInstruction()
  return Resume
}
