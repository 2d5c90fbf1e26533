/** Exception exits (reason 0): an exception in the bitmap is reflected into the guest unchanged (none are intercepted today). */
import { type ExitAction, type ExitContext, Resume } from "./types.ts"

export function handleException(ctx: ExitContext): ExitAction {
  ctx.counters.exit_exception++
  const info = ctx.vmcs.exit.interruptionInfo
  ctx.injectException(info & 0xff, (info & 0x800) !== 0 ? ctx.vmcs.exit.interruptionErrorCode : -1)
  return Resume
}
