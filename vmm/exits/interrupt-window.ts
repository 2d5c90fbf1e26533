/** Interrupt-window exits (reason 7): the guest can take an interrupt now; the vCPU loop injects it on re-entry. */
import { type ExitAction, type ExitContext, Resume } from "./types.ts"

export function handleInterruptWindow(ctx: ExitContext): ExitAction {
  ctx.counters.exit_interrupt_window++
  return Resume
}
