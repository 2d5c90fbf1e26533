/**
 * Machine set-ups shared by the CPU property tests and the `cpu` fuzz suite: a real-mode state and a
 * flat 32-bit protected-mode state (Intel SDM Vol. 3A 3.2.1 "basic flat
 * model"), the descriptor tables they need, and a memory whose non-RAM
 * accesses are recorded.
 *
 *   0x0000  real-mode IVT (256 x 4 bytes)
 *   0x0500  GDT: null, 0x08 flat code (32-bit, DPL 0), 0x10 flat data
 *   0x0600  IDT (32-bit interrupt gates)
 *   0x1000  code under test
 *   0x2000  exception handler (a HLT)
 *   0x3000  data operand
 *   0x8000  top of the stack
 *   0x20000 page directory, 0x21000 its first page table (robustness runs with paging)
 */
import { type AccessSize, PageKind, type PhysicalMemory } from "../../../hw/cpu/bus.ts"
import type { CpuState, SegmentState } from "../../../hw/cpu/state.ts"

export const GDT = 0x500
export const IDT = 0x600
export const CODE = 0x1000
export const HANDLER = 0x2000
export const DATA = 0x3000
export const STACK = 0x8000

export type Mode = "real" | "pm32"

export const CODE_SELECTOR = 0x08
export const DATA_SELECTOR = 0x10

// Access rights in the state record's VMX layout (state.ts): type | S<<4 | DPL<<5 | P<<7 | D/B<<14 | G<<15.
const REAL_CODE = 0x9b
const REAL_DATA = 0x93
const FLAT_CODE = 0xc09b
const FLAT_DATA = 0xc093

const seg = (selector: number, base: number, limit: number, access: number): SegmentState => ({
  selector,
  base,
  limit,
  access
})

/** Real-address mode, CS = DS = ES = SS = FS = GS = 0, IVT at 0 (SDM Vol. 3A 20.1). */
export function realModeState(reset: CpuState, eip: number, esp: number, eflags: number): CpuState {
  const data = seg(0, 0, 0xffff, REAL_DATA)
  return {
    ...reset,
    eip,
    esp,
    eflags,
    cs: seg(0, 0, 0xffff, REAL_CODE),
    ds: data,
    es: data,
    ss: data,
    fs: data,
    gs: data,
    idtr: { base: 0, limit: 0x3ff },
    halted: false
  }
}

/** Flat 32-bit protected mode at CPL 0, paging off, GDT and IDT as in the memory map. */
export function flatProtectedState(
  reset: CpuState,
  eip: number,
  esp: number,
  eflags: number,
  idtLimit = 8 * 32 - 1
): CpuState {
  const data = seg(DATA_SELECTOR, 0, 0xffffffff, FLAT_DATA)
  return {
    ...reset,
    eip,
    esp,
    eflags,
    cr0: (reset.cr0 & ~0x60000000) | 1, // PE, caches on
    cs: seg(CODE_SELECTOR, 0, 0xffffffff, FLAT_CODE),
    ds: data,
    es: data,
    ss: data,
    fs: data,
    gs: data,
    gdtr: { base: GDT, limit: 3 * 8 - 1 },
    idtr: { base: IDT, limit: idtLimit },
    halted: false
  }
}

export const modeState = (mode: Mode, reset: CpuState, eip: number, esp: number, eflags: number): CpuState =>
  mode === "real" ? realModeState(reset, eip, esp, eflags) : flatProtectedState(reset, eip, esp, eflags)

export const put32 = (ram: Uint8Array, at: number, v: number): void => {
  for (let i = 0; i < 4; i++) ram[at + i] = (v >>> (8 * i)) & 0xff
}

/** The flat GDT (SDM Vol. 3A 3.4.5: base 0, limit FFFFF with G = 1, code 9A+accessed, data 92+accessed). */
export function writeFlatGdt(ram: Uint8Array): void {
  put32(ram, GDT, 0)
  put32(ram, GDT + 4, 0)
  put32(ram, GDT + 8, 0x0000ffff)
  put32(ram, GDT + 12, 0x00cf9b00)
  put32(ram, GDT + 16, 0x0000ffff)
  put32(ram, GDT + 20, 0x00cf9300)
}

/** A 32-bit interrupt gate, DPL 0, present (SDM Vol. 3A figure 6-2). */
export function writeIdtGate(ram: Uint8Array, vector: number, offset: number): void {
  put32(ram, IDT + vector * 8, (CODE_SELECTOR << 16) | (offset & 0xffff))
  put32(ram, IDT + vector * 8 + 4, ((offset & 0xffff0000) | 0x8e00) >>> 0)
}

/** A real-mode IVT entry: offset then segment (SDM Vol. 3A 20.1.4). */
export function writeIvt(ram: Uint8Array, vector: number, cs: number, ip: number): void {
  ram[vector * 4] = ip & 0xff
  ram[vector * 4 + 1] = (ip >>> 8) & 0xff
  ram[vector * 4 + 2] = cs & 0xff
  ram[vector * 4 + 3] = (cs >>> 8) & 0xff
}

export interface BusAccess {
  readonly write: boolean
  readonly address: number
  readonly size: AccessSize
  readonly value: number
}

export interface RecordingMemory extends PhysicalMemory {
  /** Bytes of RAM; when guarded, `ram` is twice as long and its upper half a guard the CPU must reach only through the bus. */
  readonly ramSize: number
  readonly accesses: Array<BusAccess>
  /** Bus accesses past the log's capacity. */
  dropped: number
}

/** Unmapped reads float high (bus.ts). */
const allOnes = (size: AccessSize): number => (size === 4 ? 0xffffffff : size === 2 ? 0xffff : 0xff)

/**
 * RAM of `ramSize` bytes and everything above it unmapped: every access
 * there goes through `read`/`write`, which record it (capped at `maxLog`
 * entries, and counted past that). `guarded`: the backing array is
 * `2 * ramSize` long, its upper half declared MMIO, so a CPU that honours
 * `pageKind` never touches it directly and a test can check it still holds
 * its fill. Unguarded, the array is exactly the RAM, so a stray access
 * past it reads `undefined` or throws a RangeError (DataView).
 */
export function recordingMemory(ramSize: number, guarded: boolean, maxLog = 256): RecordingMemory {
  const ram = new Uint8Array(guarded ? 2 * ramSize : ramSize)
  const pages = ramSize >>> 12
  const accesses: Array<BusAccess> = []
  const memory: RecordingMemory = {
    ram,
    ramSize,
    accesses,
    dropped: 0,
    pageKind: (page: number): PageKind => (page < pages ? PageKind.Ram : PageKind.Mmio),
    read: (address: number, size: AccessSize): number => {
      if (accesses.length < maxLog) accesses.push({ write: false, address, size, value: allOnes(size) })
      else memory.dropped++
      return allOnes(size)
    },
    write: (address: number, size: AccessSize, value: number): void => {
      if (accesses.length < maxLog) accesses.push({ write: true, address, size, value })
      else memory.dropped++
    }
  }
  return memory
}
