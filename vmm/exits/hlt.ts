/** HLT exits (reason 12): the vCPU sleeps (activity state HLT) until an interrupt is pending; RIP moves past HLT. */
import { type ExitAction, type ExitContext, Halt } from "./types.ts"

export function handleHlt(ctx: ExitContext): ExitAction {
  ctx.counters.exit_hlt++
  const regs = ctx.vmcs.guest.regs
  regs.eip = (regs.eip + ctx.vmcs.exit.instructionLength) >>> 0
  return Halt
}
