/**
 * Test rig for vmm/shadow: a machine RAM, a guest RAM whose frames are
 * scattered over it (gfn -> machine frame is not the identity, so a shadow
 * that forgot the guest-physical -> machine step is caught), a frame source
 * for shadow tables, and the hw/cpu/paging.ts walker running on the shadow
 * (what a pCPU with CR3 = the shadow root would do).
 */
import { flatMemory, noPorts } from "../../../hw/cpu/bus.ts"
import { Cpu } from "../../../hw/cpu/cpu.ts"
import { FAULT } from "../../../hw/cpu/fault.ts"
import { Access, tlbFill } from "../../../hw/cpu/paging.ts"
import { CR0_PE, CR0_PG, CR0_WP, CR4_PSE } from "../../../hw/cpu/regs.ts"
import { type ShadowGuest, ShadowMmu } from "../../../vmm/shadow/shadow-mmu.ts"

export const MACHINE_BYTES = 32 << 20
export const GUEST_BYTES = 8 << 20
const GUEST_FRAMES = GUEST_BYTES >>> 12
/** Guest frames live at machine frames [0x1000, 0x1800), in reverse order. */
export const machineFrameOf = (gfn: number): number => 0x1000 + (GUEST_FRAMES - 1 - gfn)
/** Shadow tables come from machine frames 0x1800 upward. */
const TABLE_BASE = 0x1800

export type WalkResult = { readonly machine: number } | { readonly fault: number }

export class Rig {
  readonly mem = flatMemory(MACHINE_BYTES)
  readonly dv = new DataView(this.mem.ram.buffer)
  /** The pCPU that walks the shadow. */
  readonly cpu = new Cpu(this.mem, noPorts)
  nextTable = TABLE_BASE
  readonly guest: ShadowGuest
  readonly mmu: ShadowMmu

  constructor(options: { rootCacheSize?: number; tableLimit?: number } = {}) {
    const limit = options.tableLimit ?? 0x800
    this.guest = {
      ramBytes: GUEST_BYTES,
      read32: (gpa) => (gpa + 4 <= GUEST_BYTES ? this.read32(gpa) : 0xffffffff),
      write32: (gpa, v) => {
        if (gpa + 4 <= GUEST_BYTES) this.write32(gpa, v)
      },
      machineFrame: machineFrameOf
    }
    const ram = this.mem.ram
    this.mmu = new ShadowMmu(
      this.guest,
      {
        ram,
        allocateTable: () => {
          if (this.nextTable >= TABLE_BASE + limit) throw new Error("test rig: shadow table frames exhausted")
          const f = this.nextTable++
          ram.fill(0, f * 4096, (f + 1) * 4096)
          return f
        }
      },
      options.rootCacheSize === undefined ? {} : { rootCacheSize: options.rootCacheSize }
    )
  }

  /** Guest-physical u32 access. */
  read32(gpa: number): number {
    return this.dv.getUint32(machineFrameOf(gpa >>> 12) * 4096 + (gpa & 0xfff), true)
  }
  write32(gpa: number, v: number): void {
    this.dv.setUint32(machineFrameOf(gpa >>> 12) * 4096 + (gpa & 0xfff), v >>> 0, true)
  }

  /** Machine address of guest-physical `gpa`. */
  machineOf(gpa: number): number {
    return machineFrameOf(gpa >>> 12) * 4096 + (gpa & 0xfff)
  }

  /** Walk the current shadow as the pCPU would (CR0.WP = 1, as the shadow requires). */
  hwWalk(linear: number, access: { write?: boolean; user?: boolean; fetch?: boolean } = {}): WalkResult {
    const cr3 = this.mmu.shadowCr3
    if (cr3 === undefined) throw new Error("no shadow root")
    return walk(this.cpu, cr3, true, false, linear, access)
  }
}

/** One hw/cpu/paging.ts walk from `cr3` on `cpu`'s memory: the machine address, or the #PF error code. */
export function walk(
  cpu: Cpu,
  cr3: number,
  wp: boolean,
  pse: boolean,
  linear: number,
  access: { write?: boolean; user?: boolean; fetch?: boolean }
): WalkResult {
  cpu.cr0 = CR0_PE | CR0_PG | (wp ? CR0_WP : 0)
  cpu.cr3 = cr3
  cpu.cr4 = pse ? CR4_PSE : 0
  cpu.pg = true
  const kind = access.write === true ? Access.Write : access.fetch === true ? Access.Fetch : Access.Read
  try {
    const entry = tlbFill(cpu, linear, kind, access.user === true)
    return { machine: ((entry & ~0xfff) | (linear & 0xfff)) >>> 0 }
  } catch (e) {
    if (e !== FAULT) throw e
    return { fault: cpu.excError }
  }
}
