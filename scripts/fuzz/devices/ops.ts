/**
 * The ops of the fuzz suite `devices` (scripts/fuzz/suites/devices.ts) and
 * what the per-device files share: random sequences of port / MMIO reads and
 * writes with random sizes (legal and not: 0, 3, 8), offsets (in range, out
 * of range, negative, fractional, NaN, +-Infinity, 2^32, 2^53) and values
 * (any double), interleaved with virtual-time steps, ticks (late, early and
 * garbage `now`s), input lines, INTAs and EOIs; then the driver side: bus
 * access with garbage sizes and the per-step checks of hw/machine/device.ts
 * ("guest- or driver-reachable paths must never throw: garbage in gives a
 * defined result"): reads are unsigned 32-bit integers that fit the access,
 * deadlines returned by `tick(now)` are Infinity or an integer after `now`.
 */
import fc from "fast-check"
import type { AccessSize, BusDevice } from "../../../hw/machine/device.ts"

// ------------------------------------------------------------------ ops

/** One step of a case. `port` names the register block on multi-block devices ("" otherwise). */
export type DeviceOp =
  | { readonly kind: "read"; readonly port: string; readonly offset: number; readonly size: number }
  | {
      readonly kind: "write"
      readonly port: string
      readonly offset: number
      readonly size: number
      readonly value: number
    }
  /** The virtual clock moves forward by `ns`. */
  | { readonly kind: "advance"; readonly ns: number }
  /** `tick(at)`, an absolute time independent of the clock (the RTC's garbage-time robustness). */
  | { readonly kind: "tickAt"; readonly at: number }
  /** `tick(clock + dt)`; a non-negative integer `dt` moves the clock there first (the machine ticks at its now). */
  | { readonly kind: "tick"; readonly dt: number }
  | { readonly kind: "irq"; readonly pin: number; readonly level: boolean }
  | { readonly kind: "eoi"; readonly vector: number }
  | { readonly kind: "inta" }
  | { readonly kind: "rx"; readonly bytes: ReadonlyArray<number> }
  | { readonly kind: "modem"; readonly bits: number }
  | { readonly kind: "gate"; readonly channel: number; readonly level: boolean }
  | { readonly kind: "out"; readonly channel: number }
  | { readonly kind: "accept"; readonly vector: number; readonly level: boolean }
  | { readonly kind: "lint"; readonly pin: 0 | 1; readonly level: boolean }
  | {
      readonly kind: "ipi"
      readonly vector: number
      readonly mode: number
      readonly levelTriggered: boolean
      readonly assert: boolean
    }
  | { readonly kind: "take" }

export type Ops = ReadonlyArray<DeviceOp>

// ----------------------------------------------------------- arbitraries

export const weird = fc.constantFrom(
  Number.NaN,
  Number.POSITIVE_INFINITY,
  Number.NEGATIVE_INFINITY,
  -0,
  1.5,
  2 ** 32,
  2 ** 53
)
export const offsetArb = (span: number, hot: ReadonlyArray<number> = []) =>
  fc.oneof(
    { weight: 4, arbitrary: fc.integer({ min: -4, max: span }) },
    { weight: 2, arbitrary: fc.integer({ min: 0, max: 7 }) },
    ...(hot.length > 0 ? [{ weight: 3, arbitrary: fc.constantFrom(...hot) }] : []),
    { weight: 1, arbitrary: weird }
  )
export const sizeArb = fc.constantFrom(1, 2, 4, 1, 2, 4, 0, 3, 8)
export const valueArb = fc.oneof(
  fc.integer({ min: 0, max: 0xff }),
  fc.integer({ min: 0, max: 0xffffffff }),
  fc.integer({ min: -(2 ** 31), max: 2 ** 31 }),
  weird
)
export const lineArb = (max: number) => fc.oneof(fc.integer({ min: -2, max }), weird)

export type Weighted = fc.WeightedArbitrary<DeviceOp>
export const w = (weight: number, arbitrary: fc.Arbitrary<DeviceOp>): Weighted => ({ weight, arbitrary })

export const accesses = (offsets: fc.Arbitrary<number>, ports: ReadonlyArray<string> = [""]): Array<Weighted> => {
  const port = fc.constantFrom(...ports)
  return [
    w(4, fc.record({ kind: fc.constant("read" as const), port, offset: offsets, size: sizeArb })),
    w(6, fc.record({ kind: fc.constant("write" as const), port, offset: offsets, size: sizeArb, value: valueArb }))
  ]
}
export const advance = w(
  1,
  fc.record({
    kind: fc.constant("advance" as const),
    ns: fc.oneof(fc.integer({ min: 0, max: 3_000_000_000 }), fc.integer({ min: 0, max: 100_000 }))
  })
)
/**
 * Garbage `now`s. Finite times past 2^53 ns (about 104 days) are left out: it
 * is the horizon of integer-exact virtual time, where the RTC and the PIT
 * clamp (pitTicks), so a device parked there stops keeping time by design.
 * +Infinity is in `garbageTimeInf` only, which the PIT does not get: it also
 * clamps to the horizon and its time never goes back, so one such tick
 * parks it there for good, by design (the machine's now is always finite).
 */
export const garbageTime = fc.constantFrom(Number.NaN, Number.NEGATIVE_INFINITY, 0.5, -0, -1)
export const garbageTimeInf = fc.oneof(garbageTime, fc.constant(Number.POSITIVE_INFINITY))
export const tickAt = w(
  1,
  fc.record({
    kind: fc.constant("tickAt" as const),
    at: fc.oneof(fc.integer({ min: 0, max: 2 ** 40 }), garbageTimeInf)
  })
)
/** Ticks relative to the clock: mostly at or just after now, some late ones, some stale or garbage. */
export const tickArb = (garbage: fc.Arbitrary<number>) =>
  w(
    2,
    fc.record({
      kind: fc.constant("tick" as const),
      dt: fc.oneof(
        { weight: 3, arbitrary: fc.constant(0) },
        { weight: 3, arbitrary: fc.integer({ min: 0, max: 100_000 }) },
        { weight: 2, arbitrary: fc.integer({ min: 0, max: 2 ** 34 }) },
        { weight: 1, arbitrary: fc.integer({ min: -1_000_000, max: -1 }) },
        { weight: 1, arbitrary: garbage }
      )
    })
  )

export const opList = (...arbs: Array<Weighted>) => fc.array(fc.oneof(...arbs), { maxLength: 60, size: "max" })

// ---------------------------------------------------------------- driver

/** Fail the property with a message naming the device and what broke. */
export const must = (condition: boolean, message: string): void => {
  if (!condition) throw new Error(message)
}

export const isU32 = (v: number) => Number.isInteger(v) && v >= 0 && v <= 0xffffffff
export const hex = (v: number) => `0x${v.toString(16)}`

/** Shorthand for bus access with the garbage sizes the ops carry. */
export const rd = (dev: BusDevice, offset: number, size: number) => dev.read(offset, size as AccessSize)
export const wr = (dev: BusDevice, offset: number, size: number, value: number) =>
  dev.write(offset, size as AccessSize, value)

/** A read's result is an unsigned 32-bit integer, zero-extended from a 1- or 2-byte access (hw/machine/device.ts). */
export const checkRead = (device: string, op: { offset: number; size: number }, v: number) => {
  must(isU32(v), `${device}: read ${op.offset}/${op.size} returned ${v}, not an unsigned 32-bit integer`)
  if (op.size === 1 || op.size === 2)
    must(v < 2 ** (8 * op.size), `${device}: read ${op.offset}/${op.size} returned ${hex(v)}, wider than the access`)
}

/** A deadline returned by tick(now) is Infinity or an integer after now. */
export const checkDeadline = (device: string, d: number, now: number) => {
  must(d === Number.POSITIVE_INFINITY || Number.isInteger(d), `${device}: tick(${now}) returned deadline ${d}`)
  if (Number.isFinite(now)) must(d > now, `${device}: tick(${now}) returned deadline ${d}, not after now`)
}

/** Relative ticks: advance the clock to a non-negative integer target, then tick there. */
export const relativeTick = (time: { now: number }, dt: number): number => {
  const at = time.now + dt
  if (Number.isSafeInteger(dt) && dt >= 0) time.now = at
  return at
}
