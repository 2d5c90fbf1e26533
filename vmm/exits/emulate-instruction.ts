/**
 * The shared step of the exits whose instruction the VMM carries out itself:
 * execute it in the emulator (vmm/emulator.ts) against the VM's own devices
 * and memory; an exception it raises is injected into the guest.
 */
import { type ExitAction, type ExitContext, Halt, Resume } from "./types.ts"

export function emulateInstruction(ctx: ExitContext): ExitAction {
  const result = ctx.emulate()
  if (result._tag === "Trap") ctx.injectException(result.vector, result.error)
  return result._tag === "Halted" ? Halt : Resume
}
