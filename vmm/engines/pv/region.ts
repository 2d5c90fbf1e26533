/**
 * The hypervisor's part of every `pv` guest address space: the top 4 MiB
 * (0xFFC00000, PDE 1023 of every shadow page directory; Xen's
 * HYPERVISOR_VIRT_START hole), in machine frames charged to the VM's pool.
 * The flat guest segments end below it (segments.ts), so neither ring 1
 * nor ring 3 can reach it (Intel SDM Vol. 3A 5.3 limit checking).
 *
 *   FFC00000  GDT, 15 pages: the guest's flat selectors 0xe019, 0xe021,
 *             0xe02b, 0xe033 in page 14 (Xen reserves GDT entries from
 *             14 * 512 for itself); pages 0-13 are one shared zero frame,
 *             so loading any other selector faults into the hypervisor,
 *             which gives the guest its #GP
 *   FFC10000  IDT: only the direct system-call gate (vector 0x80 to the
 *             guest's ring-1 handler, when its trap table allows ring 3);
 *             every other event returns to the hypervisor (`hostTraps`)
 *   FFC11000  TSS, one per vCPU: SS1:ESP1 = the guest's kernel stack
 *             (stack_switch), used by the pCPU for ring 3 -> 1 transitions;
 *             I/O map base past the limit (no port is reachable)
 */

import type { AllocationError } from "../../../kernel/memory/errors.ts"
import { MONITOR_BASE, MONITOR_PDE_INDEX, type MonitorFrames } from "../bt/monitor-region.ts"
import { flatDescriptors } from "./segments.ts"

export { MONITOR_PDE_INDEX }
export const PV_GDT_LINEAR = MONITOR_BASE
export const PV_GDT_LIMIT = 0xe037
export const PV_IDT_LINEAR = MONITOR_BASE + 0x10000
export const PV_IDT_LIMIT = 0x7ff
const TSS_LINEAR = MONITOR_BASE + 0x11000
const TSS_STRIDE = 0x80
const FRAME = 4096

export class PvRegion {
  /** The PDE every shadow root carries for the region. */
  readonly pde: number
  private readonly pages: Array<number> = []
  private readonly dv: DataView

  private constructor(frames: MonitorFrames, pt: number) {
    this.dv = new DataView(frames.ram.buffer, frames.ram.byteOffset, frames.ram.byteLength)
    this.pde = (pt * FRAME) | 0x3
  }

  static create(frames: MonitorFrames, vcpus: number): PvRegion | AllocationError {
    const pt = frames.allocateTable()
    if (typeof pt !== "number") return pt
    const region = new PvRegion(frames, pt)
    const zero = frames.allocateTable()
    if (typeof zero !== "number") return zero
    const map = (linear: number, frame: number, writable: boolean) => {
      const index = (linear - MONITOR_BASE) >>> 12
      region.pages[index] = frame * FRAME
      region.dv.setUint32(pt * FRAME + index * 4, (frame * FRAME) | 0x1 | (writable ? 0x2 : 0) | 0x20 | 0x40, true)
    }
    for (let page = 0; page < 14; page++) map(PV_GDT_LINEAR + page * FRAME, zero, false)
    const own = [PV_GDT_LINEAR + 14 * FRAME, PV_IDT_LINEAR]
    for (let i = 0; i < Math.ceil((vcpus * TSS_STRIDE) / FRAME); i++) own.push(TSS_LINEAR + i * FRAME)
    for (const linear of own) {
      const frame = frames.allocateTable()
      if (typeof frame !== "number") return frame
      map(linear, frame, true)
    }
    for (const d of flatDescriptors()) {
      region.write32(PV_GDT_LINEAR + d.index * 8, d.low)
      region.write32(PV_GDT_LINEAR + d.index * 8 + 4, d.high)
    }
    for (let i = 0; i < vcpus; i++) region.write32(region.tss(i) + 100, 0xffff << 16)
    return region
  }

  private write32(linear: number, value: number): void {
    const page = this.pages[(linear - MONITOR_BASE) >>> 12]
    if (page === undefined) throw new Error(`pv region: 0x${(linear >>> 0).toString(16)} is not mapped`)
    this.dv.setUint32(page + (linear & 0xfff), value >>> 0, true)
  }

  /** Linear base of vCPU `index`'s TSS. */
  tss(index: number): number {
    return TSS_LINEAR + index * TSS_STRIDE
  }

  /** The ring-1 stack of vCPU `index`'s TSS (SDM 3A 7.2.1: ESP1 at 12, SS1 at 16). */
  setRing1Stack(index: number, ss: number, esp: number): void {
    this.write32(this.tss(index) + 12, esp)
    this.write32(this.tss(index) + 16, ss & 0xffff)
  }

  /**
   * The direct system-call gate: vector `vector` to cs:eip as a 32-bit trap
   * gate of DPL 3 (SDM 3A 6.11 figure 6-2), or nothing (`eip` undefined).
   */
  setDirectGate(vector: number, gate: { readonly cs: number; readonly eip: number } | undefined): void {
    const at = PV_IDT_LINEAR + vector * 8
    if (gate === undefined) {
      this.write32(at, 0)
      this.write32(at + 4, 0)
      return
    }
    this.write32(at, ((gate.cs & 0xffff) << 16) | (gate.eip & 0xffff))
    this.write32(at + 4, (gate.eip & 0xffff0000) | 0xef00)
  }
}
