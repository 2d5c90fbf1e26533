/**
 * Ports, control-word fields and the input clock of the Intel 8254
 * Programmable Interval Timer (Intel 8254 datasheet, "Programming the 8254":
 * Figure "Control Word Format", "Counter Latch Command Format", "Read-Back
 * Command Format", "Status Byte"), and the PC clock (IBM PC/AT Technical
 * Reference: 14.31818 MHz / 12 = 1.193182 MHz on every counter's CLK).
 *
 * ```
 * offset  read                  write
 *   0-2   counter 0-2 (OL/CE)    counter 0-2 count register (CR)
 *   3     (no-op: floats, 0xFF)  control word / counter latch / read-back
 *
 * control word:  SC1 SC0 | RW1 RW0 | M2 M1 M0 | BCD
 *   SC = 3 is the read-back command:  1 1 | !COUNT !STATUS | CNT2 CNT1 CNT0 | 0
 *   RW = 0 is the counter latch command
 * status byte:   OUT | NULL COUNT | RW1 RW0 M2 M1 M0 BCD
 * ```
 */

export const PIT_PORTS = 4
export const CONTROL = 3
export const COUNTERS = 3

/** CLK frequency on a PC, in Hz. */
export const PIT_HZ = 1_193_182

export const CW_SC_SHIFT = 6
export const CW_RW_SHIFT = 4
export const CW_MODE_SHIFT = 1
export const CW_BCD = 0x01
/** Bits 5-0 of the control word: what the status byte echoes. */
export const CW_PROGRAM_MASK = 0x3f

/** RW field: how the count register is read and written. */
export const RW_LATCH = 0
export const RW_LSB = 1
export const RW_MSB = 2
export const RW_LSB_MSB = 3

/** Read-back command bits. */
export const READBACK_NO_COUNT = 0x20
export const READBACK_NO_STATUS = 0x10
export const READBACK_COUNTER0 = 0x02

/** Status byte bits. */
export const STATUS_OUT = 0x80
export const STATUS_NULL_COUNT = 0x40

const NS_PER_S = 1_000_000_000

/** floor(a / b) for non-negative integers a, b < 2^53, corrected against rounding. */
const divFloor = (a: number, b: number): number => {
  let q = Math.floor(a / b)
  if (q * b > a) q--
  else if ((q + 1) * b <= a) q++
  return q
}

/**
 * The number of CLK pulses that have happened by virtual time `now` (ns):
 * floor(now * PIT_HZ / 1e9), computed exactly without BigInt by splitting
 * `now` into whole seconds and a remainder (every product stays below 2^53
 * for `now` up to 2^53 ns, about 104 days). Negative or non-finite times
 * count as 0.
 */
export const pitTicks = (now: number): number => {
  if (!(now > 0)) return 0
  const ns = Math.floor(Math.min(now, Number.MAX_SAFE_INTEGER))
  const seconds = divFloor(ns, NS_PER_S)
  const rest = ns - seconds * NS_PER_S
  return seconds * PIT_HZ + divFloor(rest * PIT_HZ, NS_PER_S)
}

/** The earliest virtual time (ns) at which pulse `tick` has happened: the inverse of `pitTicks`. */
export const pitTickTime = (tick: number): number => {
  if (!(tick > 0)) return 0
  const seconds = divFloor(tick, PIT_HZ)
  const rest = tick - seconds * PIT_HZ
  const scaled = rest * NS_PER_S
  const q = divFloor(scaled, PIT_HZ)
  return seconds * NS_PER_S + (q * PIT_HZ === scaled ? q : q + 1)
}
