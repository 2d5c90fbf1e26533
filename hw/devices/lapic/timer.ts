/**
 * The local APIC timer as a function of virtual time (Intel SDM Vol. 3A
 * 11.5.4 "APIC Timer"; 10.5.4 in older editions).
 *
 * The counter runs at busHz / divisor. Nothing is decremented per tick: a
 * running countdown is the record {start, base, fired}, meaning "at virtual
 * time `start` the counter held `base` and counted down from there; `fired`
 * expiries have been signalled since". Then, with t = timer ticks elapsed
 * since `start` and P = the initial count:
 *
 *   one-shot:  current = max(0, base - t)
 *   periodic:  current = base - t                  while t < base
 *              current = P - ((t - base) mod P)    afterwards (reload at 0)
 *
 * and expiry k (k = 0, 1, ... ; only k = 0 in one-shot) happens at tick
 * base + k*P, i.e. at the first nanosecond where that many ticks have
 * elapsed: start + ceil((base + k*P) * divisor * 1e9 / busHz). Deadlines are
 * computed from `start` each time (never accumulated), so no rounding drift
 * builds up, and with BigInt so 2^32 counts x 128 x 1e9 stay exact.
 *
 * A change of divisor or mode re-bases the countdown at the current count
 * (start = now, base = current), which is what the SDM's "the timer continues
 * from the current count" amounts to; writing the initial count restarts it.
 */

const NS_PER_SECOND = 1_000_000_000n

export interface TimerCountdown {
  /** Virtual time (ns) at which the counter held `base`. */
  start: number
  /** Count at `start` (>= 1). */
  base: number
  /** Expiries already signalled since `start`. */
  fired: number
}

/**
 * Ticks of the divided clock elapsed in `ns` nanoseconds (floor). NaN and
 * negative spans are 0; spans past 2^53 ns (+Infinity included, which
 * BigInt() would throw on) count as 2^53 - 1, the virtual-time horizon the
 * PIT's `pitTicks` and the RTC clamp to as well: never a host exception.
 */
export const ticksIn = (ns: number, busHz: number, divisor: number): number => {
  if (!(ns > 0)) return 0
  const whole = BigInt(Math.floor(Math.min(ns, Number.MAX_SAFE_INTEGER)))
  return Number((whole * BigInt(busHz)) / (BigInt(divisor) * NS_PER_SECOND))
}

/** Nanoseconds until `ticks` ticks of the divided clock have elapsed (ceil). */
export const nsFor = (ticks: bigint, busHz: number, divisor: number): number => {
  const num = ticks * BigInt(divisor) * NS_PER_SECOND
  const den = BigInt(busHz)
  return Number((num + den - 1n) / den)
}

/** Current count of a countdown at `now` (the register at offset 0x390). */
export const currentCount = (
  c: TimerCountdown,
  now: number,
  initial: number,
  periodic: boolean,
  busHz: number,
  divisor: number
): number => {
  const t = ticksIn(now - c.start, busHz, divisor)
  if (t < c.base) return c.base - t
  if (!periodic || initial === 0) return 0
  return initial - ((t - c.base) % initial)
}

/** Virtual time of expiry number `k` of a countdown (k > 0 only when periodic). */
export const expiryTime = (c: TimerCountdown, k: number, initial: number, busHz: number, divisor: number): number =>
  c.start + nsFor(BigInt(c.base) + BigInt(k) * BigInt(initial), busHz, divisor)

/**
 * How many expiries (counted from 0) have happened by `now`: 0 if the first
 * is still ahead. In one-shot mode at most 1.
 */
export const expiriesBy = (
  c: TimerCountdown,
  now: number,
  initial: number,
  periodic: boolean,
  busHz: number,
  divisor: number
): number => {
  const t = ticksIn(now - c.start, busHz, divisor)
  if (t < c.base) return 0
  if (!periodic || initial === 0) return 1
  return Math.floor((t - c.base) / initial) + 1
}
