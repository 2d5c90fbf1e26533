/** I/O instruction exits (reason 30; SDM 3C table 28-5 qualification): IN/OUT/INS/OUTS on the VM's port bus. */
import { emulateInstruction } from "./emulate-instruction.ts"
import type { ExitAction, ExitContext } from "./types.ts"

export function handleIo(ctx: ExitContext): ExitAction {
  if ((ctx.vmcs.exit.qualification & 8) !== 0) ctx.counters.exit_io_in++
  else ctx.counters.exit_io_out++
  return emulateInstruction(ctx)
}
