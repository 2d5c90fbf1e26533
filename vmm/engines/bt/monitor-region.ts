/**
 * The monitor's own part of every guest address space in `bt` mode: the top
 * 4 MiB of the linear space (PDE 1023 of every shadow page directory, as
 * VMware's monitor kept the top of the address space; Adams & Agesen 2006
 * section 3.1), in machine frames charged to the VM's pool:
 *
 *   FFC00000  GDT   the monitor's descriptors in its last slots; every other
 *                   slot is empty, so a guest segment load at ring 1 or 3
 *                   faults into the monitor, which emulates it against the
 *                   guest's own GDT (VMware kept a shadow GDT to make these
 *                   loads fast; not modelled)
 *   FFC01000  IDT   interrupt gates to the monitor's entry stubs; the pCPU
 *                   runs with `hostTraps` (hw/cpu/cpu.ts): every event it
 *                   raises returns to the monitor, which is TypeScript
 *   FFC02000  entry stubs (HLT): what the gates point at
 *   FFC03000  TSS   one per vCPU: ring-0 stack in the monitor, and an I/O
 *                   map base past the TSS limit so every port access at
 *                   CPL > IOPL = 0 faults (SDM 3A 16.5.2, 8.2.1)
 *   FFC20000  translation cache (size chosen per VM)
 *
 * Protection from the guest (SDM 3A 5.3, 5.5 "privilege levels"): the
 * region's pages are supervisor-only, so guest user code (ring 3) cannot
 * touch them; guest kernel code runs at ring 1 (supervisor for paging), so
 * its data segments are truncated to end below FFC00000 (segment-limit
 * truncation, VMware's choice): an access beyond the truncated limit faults
 * into the monitor, which emulates the access against the guest's own
 * mapping of those addresses.
 */
import type { AllocationError } from "../../../kernel/memory/errors.ts"

export const MONITOR_BASE = 0xffc00000
export const MONITOR_PDE_INDEX = 1023
/** Largest linear address a truncated guest segment may reach. */
export const GUEST_LINEAR_TOP = MONITOR_BASE - 1
export const GDT_LINEAR = MONITOR_BASE
export const GDT_LIMIT = 0xfff
export const IDT_LINEAR = MONITOR_BASE + 0x1000
export const IDT_LIMIT = 0x7ff
const STUBS_LINEAR = MONITOR_BASE + 0x2000
const TSS_LINEAR = MONITOR_BASE + 0x3000
export const TC_LINEAR = MONITOR_BASE + 0x20000
export const MAX_TC_BYTES = 0x400000 - 0x20000

/** The monitor's selectors (the last four GDT slots). */
export const TC_CODE_SELECTOR = (508 << 3) | 1
export const MONITOR_CODE_SELECTOR = 509 << 3
export const MONITOR_DATA_SELECTOR = 510 << 3
export const TSS_SELECTOR_BASE = 511 << 3

/** Access rights (VMX format, hw/cpu/state.ts SegmentState) of the translation cache's code segment: 32-bit, DPL 1. */
export const TC_CODE_ACCESS = 0xc0bb

export interface MonitorFrames {
  readonly ram: Uint8Array
  allocateTable(): number | AllocationError
}

const FRAME = 4096

export class MonitorRegion {
  readonly pde: number
  /** Machine address of each monitor page, by page index in the region. */
  private readonly pages: Array<number> = []
  private readonly dv: DataView
  readonly tcBytes: number

  private constructor(frames: MonitorFrames, ptFrame: number, tcBytes: number) {
    this.dv = new DataView(frames.ram.buffer, frames.ram.byteOffset, frames.ram.byteLength)
    this.pde = (ptFrame * FRAME) | 0x3 // present, writable, supervisor
    this.tcBytes = tcBytes
  }

  /** Build the region: page table, GDT, IDT, stubs, `vcpus` TSSs and `tcBytes` of translation cache. */
  static create(frames: MonitorFrames, vcpus: number, tcBytes: number): MonitorRegion | AllocationError {
    const bytes = Math.min(MAX_TC_BYTES, Math.max(FRAME, Math.ceil(tcBytes / FRAME) * FRAME))
    const pt = frames.allocateTable()
    if (typeof pt !== "number") return pt
    const region = new MonitorRegion(frames, pt, bytes)
    const map = (linear: number): AllocationError | undefined => {
      const frame = frames.allocateTable()
      if (typeof frame !== "number") return frame
      const index = (linear - MONITOR_BASE) >>> 12
      region.pages[index] = frame * FRAME
      region.dv.setUint32(pt * FRAME + index * 4, (frame * FRAME) | 0x3 | 0x20 | 0x40, true)
      return undefined
    }
    const pages = [GDT_LINEAR, IDT_LINEAR, STUBS_LINEAR]
    for (let i = 0; i < Math.ceil((vcpus * 0x80) / FRAME); i++) pages.push(TSS_LINEAR + i * FRAME)
    for (let off = 0; off < bytes; off += FRAME) pages.push(TC_LINEAR + off)
    for (const linear of pages) {
      const failed = map(linear)
      if (failed !== undefined) return failed
    }
    region.fill(vcpus)
    return region
  }

  /** The machine address of monitor linear address `linear` (mapped pages only). */
  machine(linear: number): number {
    const page = this.pages[(linear - MONITOR_BASE) >>> 12]
    if (page === undefined) throw new Error(`monitor region: 0x${(linear >>> 0).toString(16)} is not mapped`)
    return page + (linear & 0xfff)
  }

  write8(linear: number, value: number): void {
    this.dv.setUint8(this.machine(linear), value)
  }

  read8(linear: number): number {
    return this.dv.getUint8(this.machine(linear))
  }

  write32(linear: number, value: number): void {
    // monitor structures never straddle a page
    this.dv.setUint32(this.machine(linear), value >>> 0, true)
  }

  /** The TSS of vCPU `index`: linear base and selector. */
  tss(index: number): { readonly base: number; readonly selector: number } {
    return { base: TSS_LINEAR + index * 0x80, selector: TSS_SELECTOR_BASE }
  }

  private descriptor(index: number, base: number, limit: number, type: number, dpl: number, flags: number): void {
    const lo = ((base & 0xffff) << 16) | (limit & 0xffff)
    const hi =
      (base & 0xff000000) |
      (flags << 20) |
      (limit & 0xf0000) |
      (0x80 << 8) |
      (dpl << 13) |
      (type << 8) |
      ((base >>> 16) & 0xff)
    this.write32(GDT_LINEAR + index * 8, lo)
    this.write32(GDT_LINEAR + index * 8 + 4, hi)
  }

  private fill(vcpus: number): void {
    // GDT: TC code (ring 1), monitor code and data (ring 0), the first vCPU's TSS (each vCPU's TR caches its own)
    this.descriptor(508, 0, 0xfffff, 0x1b, 1, 0xc)
    this.descriptor(509, 0, 0xfffff, 0x1b, 0, 0xc)
    this.descriptor(510, 0, 0xfffff, 0x13, 0, 0xc)
    this.descriptor(511, TSS_LINEAR, 0x67, 0x0b, 0, 0)
    // IDT: 32-bit interrupt gates, DPL 0, to the stub of each vector
    for (let v = 0; v < 256; v++) {
      const target = STUBS_LINEAR + v * 8
      this.write32(IDT_LINEAR + v * 8, (MONITOR_CODE_SELECTOR << 16) | (target & 0xffff))
      this.write32(IDT_LINEAR + v * 8 + 4, (target & 0xffff0000) | 0x8e00)
    }
    for (let off = 0; off < FRAME; off++) this.write8(STUBS_LINEAR + off, 0xf4)
    // TSSs: ring-0 stack at the top of the stub page (never used: hostTraps), I/O map base past the limit
    for (let i = 0; i < vcpus; i++) {
      const base = TSS_LINEAR + i * 0x80
      this.write32(base + 4, STUBS_LINEAR + FRAME - 16)
      this.write32(base + 8, MONITOR_DATA_SELECTOR)
      this.write32(base + 100, 0xffff << 16)
    }
  }
}
