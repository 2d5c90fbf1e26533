/**
 * The contract between the machine and its physical devices (STYLE.md:
 * "devices are state machines with read(offset, size), write(offset, size,
 * value) and tick(now) -> nextDeadline").
 *
 * - The bus owns addresses: a device is mapped at a base on the port-I/O bus
 *   or the MMIO bus and only ever sees offsets from that base.
 * - Time is virtual: `now` is the machine's virtual time in nanoseconds (an
 *   integer-valued double), never the wall clock. `tick(now)` brings the
 *   device up to `now` and returns the next virtual time at which it needs a
 *   tick (Infinity for never); the machine jumps straight there when every
 *   pCPU is idle.
 * - Interrupts: a device drives `IrqLine`s it is given at construction; the
 *   machine wires them to the PIC / local APIC.
 * - DMA: devices that do DMA get a `DmaMemory` view of machine RAM, where
 *   every access is bounds-checked (a bad descriptor is a device error, never
 *   a host exception or an access outside RAM).
 * - Guest- or driver-reachable paths must never throw: garbage in gives a
 *   defined result (ignored write, all-ones read, error status).
 */
import type { AccessSize } from "../cpu/bus.ts"

export type { AccessSize }

export interface BusDevice {
  readonly name: string
  /** Read `size` bytes at `offset` from the device's base; returns the value zero-extended. */
  read(offset: number, size: AccessSize): number
  write(offset: number, size: AccessSize, value: number): void
}

export interface TimedDevice {
  /** Advance to virtual time `now` (ns); return the next time a tick is needed, or Infinity. */
  tick(now: number): number
}

/** An interrupt request line from a device to an interrupt controller. */
export interface IrqLine {
  /** Drive the line (level-triggered view; an edge-triggered sink reacts to 0 -> 1). */
  set(level: boolean): void
}

/** Machine RAM as a DMA engine sees it: every access is checked against the RAM size. */
export interface DmaMemory {
  readonly size: number
  /** Copy `length` bytes of machine RAM at `address` into a new array; undefined if out of range. */
  read(address: number, length: number): Uint8Array | undefined
  /** Copy `data` into machine RAM at `address`; false (and nothing written) if out of range. */
  write(address: number, data: Uint8Array): boolean
  read32(address: number): number | undefined
  write32(address: number, value: number): boolean
}

/** A DMA view over a RAM array (bounds-checked, never throws). */
export const dmaMemory = (ram: Uint8Array): DmaMemory => {
  const view = new DataView(ram.buffer, ram.byteOffset, ram.byteLength)
  const inRange = (address: number, length: number) =>
    Number.isInteger(address) &&
    Number.isInteger(length) &&
    address >= 0 &&
    length >= 0 &&
    address + length <= ram.length
  return {
    size: ram.length,
    read: (address, length) => (inRange(address, length) ? ram.slice(address, address + length) : undefined),
    write: (address, data) => {
      if (!inRange(address, data.length)) return false
      ram.set(data, address)
      return true
    },
    read32: (address) => (inRange(address, 4) ? view.getUint32(address, true) : undefined),
    write32: (address, value) => {
      if (!inRange(address, 4)) return false
      view.setUint32(address, value >>> 0, true)
      return true
    }
  }
}

/** An IrqLine that records its level (tests, unconnected lines). */
export const recordingIrq = (): IrqLine & { level: boolean; raises: number } => {
  const line = {
    level: false,
    raises: 0,
    set(level: boolean) {
      if (level && !line.level) line.raises++
      line.level = level
    }
  }
  return line
}
