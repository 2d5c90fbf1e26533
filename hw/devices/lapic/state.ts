/**
 * The local APIC's state as a named plain record (snapshots, migration,
 * tests): JSON-safe, no typed arrays, no Infinity. `LocalApic.snapshot()`
 * produces one, `restore()` takes one (masking every field to its register
 * width, so a damaged record cannot break the device's invariants).
 */
import type { LvtName } from "./registers.ts"
import type { TimerCountdown } from "./timer.ts"

export interface LapicState {
  /** APIC ID (ID register bits 31:24). */
  readonly id: number
  readonly tpr: number
  readonly ldr: number
  readonly dfr: number
  readonly svr: number
  /** ESR as last latched by a write (readable), and errors logged since. */
  readonly esr: number
  readonly esrPending: number
  readonly icrLow: number
  readonly icrHigh: number
  /** 8 dwords each; vector v is bit v%32 of dword v/32. */
  readonly irr: ReadonlyArray<number>
  readonly isr: ReadonlyArray<number>
  readonly tmr: ReadonlyArray<number>
  readonly lvt: Readonly<Record<LvtName, number>>
  readonly timerInitial: number
  readonly timerDivide: number
  /** The running countdown (timer.ts), or null when the timer is stopped. */
  readonly countdown: Readonly<TimerCountdown> | null
  /** Levels of the LINT0/LINT1 pins. */
  readonly lint: { readonly lint0: boolean; readonly lint1: boolean }
  /** Events waiting for the core to take them. */
  readonly pending: { readonly nmi: boolean; readonly init: boolean; readonly startupVector: number | null }
}
