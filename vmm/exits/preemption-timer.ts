/**
 * VMX-preemption-timer exits (reason 52, SDM 3C 26.5.1): the timer was set to
 * the earlier of the quantum's end and the next device deadline. Either way
 * the vCPU loop goes on: it ticks the devices (injecting a due interrupt) and
 * yields the pCPU itself once the quantum's budget is spent.
 */
import { type ExitAction, type ExitContext, Resume } from "./types.ts"

export function handlePreemptionTimer(ctx: ExitContext): ExitAction {
  ctx.counters.exit_preemption_timer++
  return Resume
}
