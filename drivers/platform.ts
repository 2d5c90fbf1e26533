/**
 * What a vmkernel driver sees of the machine: the two buses, machine RAM
 * (for descriptor rings and DMA buffers) and virtual time. `Machine`
 * (hw/machine/machine.ts) satisfies `Platform` structurally, and a test can
 * hand a driver anything with the same shape.
 *
 * The vmkernel is TypeScript code, so "the CPU executes an OUT" is a call to
 * `ports.write`, and "wait for the interrupt" is: advance virtual time from
 * one device deadline to the next (`advanceDevices`) and poll the device's
 * interrupt status after each step (`stepTime`, `advanceTo`). Time only
 * moves forward and only in virtual nanoseconds: nothing here reads a clock.
 *
 * Driver results are plain data (`Result`), never exceptions and never
 * Effect: the kernel services above turn them into typed Effect errors.
 */
import type { AccessSize } from "../hw/machine/device.ts"

export type { AccessSize }

/** A bus of registers: port I/O or MMIO, addressed absolutely. */
export interface RegisterBus {
  read(address: number, size: AccessSize): number
  write(address: number, size: AccessSize, value: number): void
}

export interface Platform {
  readonly ports: RegisterBus
  readonly mmio: RegisterBus
  /** Machine RAM, machine-physical address = index. */
  readonly ram: Uint8Array
  /** Machine virtual time in ns. */
  readonly now: number
  /** Bring every device to `now` (never backwards); returns the earliest next deadline (Infinity: none). */
  advanceDevices(now: number): number
}

/** The outcome of a driver operation: a value, or a typed error (plain data). */
export type Result<A, E> = { readonly ok: true; readonly value: A } | { readonly ok: false; readonly error: E }

export const ok = <A>(value: A): { readonly ok: true; readonly value: A } => ({ ok: true, value })
export const err = <E>(error: E): { readonly ok: false; readonly error: E } => ({ ok: false, error })

/** Size of a machine frame (what `allocFrame` callbacks hand out). */
export const FRAME_SIZE = 4096

/**
 * A frame from the kernel's allocator (`allocFrame`: a frame number, as
 * kernel/memory hands them out; address = frame x 4096): its
 * machine-physical address, or undefined if the frame is not wholly in RAM.
 */
export const frameAddress = (ram: Uint8Array, frame: number): number | undefined =>
  Number.isSafeInteger(frame) && frame >= 0 && (frame + 1) * FRAME_SIZE <= ram.length ? frame * FRAME_SIZE : undefined

/**
 * One step of virtual time: bring the devices to `now`, then to their
 * earliest deadline if it is at most `limit`. Returns false (time left at
 * `now`) when no deadline falls at or before `limit`.
 */
export const stepTime = (platform: Platform, limit: number): boolean => {
  const next = platform.advanceDevices(platform.now)
  if (!(next <= limit)) return false
  // a deadline at or before `now` was just served by the tick above: move at least 1 ns
  platform.advanceDevices(Math.max(next, platform.now + 1))
  return true
}

/**
 * Advance virtual time to `until`, stopping at every device deadline on the
 * way and calling `afterEach` after each stop (and once at `until`), so a
 * polling driver sees every interrupt edge.
 */
export const advanceTo = (platform: Platform, until: number, afterEach?: () => void): void => {
  while (platform.now < until && stepTime(platform, until)) afterEach?.()
  platform.advanceDevices(until)
  afterEach?.()
}
