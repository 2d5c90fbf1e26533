/**
 * Extended page tables (Intel SDM Vol. 3C 29.3 (28.2 in older editions)):
 * the second level of address translation, guest-physical -> machine, in
 * machine memory. Intel's 4-level format with 64-bit entries:
 *
 *   EPTP: PML4 address | memory type (bits 2:0, 6 = WB) | walk length - 1 (bits 5:3) | A/D enable (bit 6)
 *   entry: R (0) W (1) X (2) | memory type (5:3, leaf) | page size (7) | A (8) | D (9, leaf) | address (51:12)
 *
 * 4 KiB pages and 2 MiB pages (PS in a PD entry) are supported; 1 GiB pages
 * are not reported as a capability, so PS in a PDPT entry is a
 * misconfiguration. Guest-physical addresses are 32-bit (the guest has no
 * PAE), machine addresses are below 4 GiB: an entry pointing above that is
 * a misconfiguration here.
 *
 * The walk result goes into the `ept` scratch record (no allocation).
 */
import type { PhysicalMemory } from "../bus.ts"
import { PageKind } from "../bus.ts"

export const EPT_READ = 1
export const EPT_WRITE = 2
export const EPT_EXEC = 4

/** Access kinds a walk is made for. */
export const Access = { Read: 0, Write: 1, Fetch: 2 } as const

export const EptOutcome = { Ok: 0, Violation: 1, Misconfig: 2 } as const

/** The last walk's result. */
export const ept = {
  outcome: 0,
  /** machine-physical address (Ok) */
  machine: 0,
  /** R/W/X permissions ANDed over every level (EPT_READ | EPT_WRITE | EPT_EXEC) */
  perms: 0,
  /** for a 2 MiB leaf: true */
  large: false
}

const VALID_LEAF_MEMORY_TYPES = 0b1110011 // UC(0) WC(1) WT(4) WP(5) WB(6)

/** Is `addr..addr+7` in RAM (EPT structures must be)? */
const inRam = (mem: PhysicalMemory, addr: number): boolean =>
  mem.pageKind(addr >>> 12) === PageKind.Ram && addr + 8 <= mem.ram.length

/** Is the EPTP itself usable (SDM 26.2.1.1 VM-entry checks on the EPTP)? */
export function eptPointerValid(eptp: number): boolean {
  const type = eptp & 7
  const walk = (eptp >> 3) & 7
  return (type === 0 || type === 6) && walk === 3 && (eptp & 0xf80) === 0
}

/**
 * Translate guest-physical `gpa` for an access of kind `access` through the
 * EPT rooted at `eptp`. Sets accessed (and, for writes, dirty) flags when
 * EPTP bit 6 enables them.
 */
export function eptWalk(mem: PhysicalMemory, dv: DataView, eptp: number, gpa: number, access: number): number {
  gpa >>>= 0
  const ad = (eptp & 0x40) !== 0
  let table = (eptp & ~0xfff) >>> 0
  let perms = EPT_READ | EPT_WRITE | EPT_EXEC
  ept.large = false
  for (let level = 4; level >= 1; level--) {
    // PML4 index is 0 and the PDPT index is gpa[31:30] for a 32-bit guest-physical space
    const index =
      level === 4 ? 0 : level === 3 ? (gpa >>> 30) & 3 : level === 2 ? (gpa >>> 21) & 0x1ff : (gpa >>> 12) & 0x1ff
    const addr = table + index * 8
    if (!inRam(mem, addr)) return fail(EptOutcome.Misconfig, perms)
    const lo = dv.getUint32(addr, true)
    const hi = dv.getUint32(addr + 4, true)
    const p = lo & 7
    if (p === 0) return fail(EptOutcome.Violation, 0)
    if ((p & 3) === EPT_WRITE) return fail(EptOutcome.Misconfig, perms) // write without read
    if ((hi & 0xfffff) !== 0) return fail(EptOutcome.Misconfig, perms) // machine address >= 4 GiB
    perms &= p
    if (ad && (lo & 0x100) === 0) dv.setUint32(addr, (lo | 0x100) >>> 0, true)
    const large = (lo & 0x80) !== 0
    if (level === 3 && large) return fail(EptOutcome.Misconfig, perms) // 1 GiB pages: not a capability here
    if (level === 1 || (level === 2 && large)) {
      if (((VALID_LEAF_MEMORY_TYPES >> ((lo >> 3) & 7)) & 1) === 0) return fail(EptOutcome.Misconfig, perms)
      const needed = access === Access.Write ? EPT_WRITE : access === Access.Fetch ? EPT_EXEC : EPT_READ
      if ((perms & needed) === 0) return fail(EptOutcome.Violation, perms)
      if (ad && access === Access.Write && (lo & 0x200) === 0) dv.setUint32(addr, (lo | 0x300) >>> 0, true)
      ept.large = level === 2
      ept.machine = level === 2 ? ((lo & 0xffe00000) | (gpa & 0x1fffff)) >>> 0 : ((lo & ~0xfff) | (gpa & 0xfff)) >>> 0
      ept.perms = perms
      ept.outcome = EptOutcome.Ok
      return EptOutcome.Ok
    }
    table = (lo & ~0xfff) >>> 0
  }
  return fail(EptOutcome.Misconfig, perms)
}

function fail(outcome: number, perms: number): number {
  ept.outcome = outcome
  ept.perms = perms
  ept.machine = 0
  return outcome
}
