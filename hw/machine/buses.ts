/**
 * The physical address map and the port-I/O bus (STYLE.md: "the bus owns
 * addresses; devices see offsets; overlapping ranges are an error when the
 * machine is wired; unmapped reads return all-ones and are counted").
 *
 * Machine-physical layout (a PC-like 32-bit map, documented here because the
 * firmware table is generated from the same wiring):
 *
 *   0x00000000 .. RAM size      RAM (at most 3.5 GiB: the MMIO hole starts at 0xE0000000)
 *   0xFEB00000 .. +4 KiB        fvblk block controller (MMIO)
 *   0xFEB01000 .. +4 KiB        fvnic NIC (MMIO)
 *   0xFEE00000 .. +4 KiB        local APIC (each pCPU sees its own)
 *   0xFFFF0000 .. 0xFFFFFFFF    firmware ROM (the FVFW table at its start)
 *
 * Ports: 0x20-21 / 0xA0-A1 PIC pair, 0x40-43 PIT, 0x3F8-3FF COM1 UART,
 * 0x4D0-4D1 ELCR.
 */
import type { AccessSize, BusDevice } from "./device.ts"

export interface Mapping {
  readonly base: number
  readonly length: number
  readonly device: BusDevice
}

const allOnes = (size: AccessSize): number => (size === 4 ? 0xffffffff : size === 2 ? 0xffff : 0xff)

/** Raised when the machine is wired with overlapping ranges: a configuration bug, reported in full. */
export class WiringError extends Error {
  override readonly name = "WiringError"
}

/** A bus of non-overlapping ranges; lookups by address; unmapped accesses counted. */
export class Bus {
  readonly name: string
  private readonly mappings: Array<Mapping> = []
  unmappedReads = 0
  unmappedWrites = 0
  /** Every read and write, mapped or not (a VM's device-model work is charged per access). */
  accesses = 0

  constructor(name: string) {
    this.name = name
  }

  /** Map `device` at [base, base + length); throws WiringError listing every overlap. */
  map(base: number, length: number, device: BusDevice): void {
    const end = base + length
    const clashes = this.mappings.filter((m) => base < m.base + m.length && m.base < end)
    if (length <= 0 || clashes.length > 0) {
      const hex = (n: number) => `0x${n.toString(16)}`
      const detail = clashes.map((m) => `${m.device.name} at ${hex(m.base)}-${hex(m.base + m.length - 1)}`).join(", ")
      throw new WiringError(
        `${this.name}: cannot map ${device.name} at ${hex(base)}-${hex(end - 1)}: ${length <= 0 ? "empty range" : `overlaps ${detail}`}`
      )
    }
    this.mappings.push({ base, length, device })
    this.mappings.sort((a, b) => a.base - b.base)
  }

  find(address: number): Mapping | undefined {
    for (const m of this.mappings) if (address >= m.base && address < m.base + m.length) return m
    return undefined
  }

  read(address: number, size: AccessSize): number {
    this.accesses++
    const m = this.find(address)
    if (m === undefined) {
      this.unmappedReads++
      return allOnes(size)
    }
    return m.device.read(address - m.base, size) >>> 0
  }

  write(address: number, size: AccessSize, value: number): void {
    this.accesses++
    const m = this.find(address)
    if (m === undefined) this.unmappedWrites++
    else m.device.write(address - m.base, size, value)
  }

  get ranges(): ReadonlyArray<Mapping> {
    return this.mappings
  }
}

/** A read-only memory device (writes are ignored, as on a real ROM). */
export const romDevice = (name: string, bytes: Uint8Array): BusDevice => ({
  name,
  read: (offset, size) => {
    let v = 0
    for (let i = 0; i < size; i++) v |= (bytes[offset + i] ?? 0xff) << (8 * i)
    return v >>> 0
  },
  write: () => {}
})
