/**
 * Shadow page tables (vmm/shadow/shadow-mmu.ts) against Intel SDM Vol. 3A
 * ch. 4: hidden vs true faults (Adams & Agesen 2006), the #PF error code
 * (4.7), U/S, R/W and CR0.WP (4.6), A/D bits written back to the guest's
 * tables (4.8), 4 MiB pages (4.3, CR4.PSE), tracing of guest page-table
 * writes, the per-CR3 shadow cache, INVLPG (4.10.4). The shadow itself is
 * checked by walking it with hw/cpu/paging.ts, as a pCPU would.
 */
import { describe, expect, it } from "@effect/vitest"
import { noPorts, PageKind, type PhysicalMemory } from "../../../hw/cpu/bus.ts"
import { Cpu } from "../../../hw/cpu/cpu.ts"
import { MemoryManager } from "../../../kernel/memory/memory-manager.ts"
import { GuestPhysical } from "../../../vmm/guest-memory.ts"
import {
  guestPhysicalShadow,
  PFEC_P,
  PFEC_U,
  PFEC_W,
  PTE_A,
  PTE_D,
  PTE_P,
  PTE_PS,
  PTE_RW,
  PTE_US,
  ShadowMmu
} from "../../../vmm/shadow/shadow-mmu.ts"
import { Rig, walk } from "./harness.ts"

const PD = 0x1000
const PT = 0x2000
const PRW = PTE_P | PTE_RW
const PRWU = PTE_P | PTE_RW | PTE_US

/** PD at 0x1000, PDE 0 -> PT at 0x2000 (P RW US), PTE `index` = `pte`. */
function rig(ptes: Record<number, number>, pdeFlags = PRWU, options: { rootCacheSize?: number } = {}): Rig {
  const r = new Rig(options)
  r.write32(PD, PT | pdeFlags)
  for (const [i, v] of Object.entries(ptes)) r.write32(PT + Number(i) * 4, v)
  r.mmu.setControls({ cr0Wp: true, cr4Pse: false })
  r.mmu.switchCr3(PD)
  return r
}

describe("hidden faults", () => {
  it("an empty shadow faults on the pCPU; handlePageFault fills it (hidden) and the retry reaches the guest frame's machine address", () => {
    const r = rig({ 5: 0x7000 | PRWU | PTE_A | PTE_D })
    expect(r.hwWalk(0x5123)).toEqual({ fault: 0 })
    expect(r.mmu.handlePageFault(0x5123, {})).toEqual({ kind: "hidden" })
    expect(r.hwWalk(0x5123)).toEqual({ machine: r.machineOf(0x7123) })
    expect(r.hwWalk(0x5123, { write: true, user: true })).toEqual({ machine: r.machineOf(0x7123) })
    expect(r.mmu.stats.hiddenFaults).toBe(1)
    expect(r.mmu.stats.trueFaults).toBe(0)
  })

  it("a guest page outside guest RAM is reported as mmio and not shadowed", () => {
    const r = rig({ 1: 0x10000000 | PRWU })
    expect(r.mmu.handlePageFault(0x1010, {})).toEqual({ kind: "mmio", gpa: 0x10000010 })
    expect(r.hwWalk(0x1010)).toEqual({ fault: 0 })
  })
})

describe("true faults carry the SDM 4.7 error code and CR2 = the linear address", () => {
  const U = { user: true }
  const W = { write: true }
  const UW = { user: true, write: true }
  const cases: ReadonlyArray<{
    name: string
    pde?: number
    pte: number
    wp?: boolean
    access: { write?: boolean; user?: boolean; fetch?: boolean }
    expected: number | "hidden"
  }> = [
    { name: "read, PTE not present", pte: 0, access: {}, expected: 0 },
    { name: "write, PTE not present", pte: 0, access: W, expected: PFEC_W },
    { name: "user read, PTE not present", pte: 0, access: U, expected: PFEC_U },
    { name: "user write, PTE not present", pte: 0, access: UW, expected: PFEC_U | PFEC_W },
    { name: "fetch, not present (no I/D bit without NX)", pte: 0, access: { fetch: true }, expected: 0 },
    { name: "read, PDE not present", pde: 0, pte: PRWU, access: {}, expected: 0 },
    { name: "user write, PDE not present", pde: 0, pte: PRWU, access: UW, expected: PFEC_U | PFEC_W },
    { name: "user read of a supervisor page", pte: PRW, access: U, expected: PFEC_P | PFEC_U },
    { name: "user read through a supervisor PDE", pde: PRW, pte: PRWU, access: U, expected: PFEC_P | PFEC_U },
    {
      name: "user fetch of a supervisor page",
      pte: PRW,
      access: { user: true, fetch: true },
      expected: PFEC_P | PFEC_U
    },
    { name: "user write to read-only", pte: PTE_P | PTE_US, access: UW, expected: PFEC_P | PFEC_W | PFEC_U },
    { name: "user write through a read-only PDE", pde: PTE_P | PTE_US, pte: PRWU, access: UW, expected: 7 },
    { name: "supervisor write to read-only, WP = 1", pte: PTE_P, access: W, expected: PFEC_P | PFEC_W },
    { name: "supervisor write to read-only, WP = 0: allowed", pte: PTE_P, wp: false, access: W, expected: "hidden" },
    { name: "user write to read-only, WP = 0: still faults", pte: PTE_P | PTE_US, wp: false, access: UW, expected: 7 },
    { name: "supervisor read of a user page", pte: PTE_P | PTE_US, access: {}, expected: "hidden" }
  ]
  for (const c of cases)
    it(c.name, () => {
      const target = 0x9000
      const r = rig({ 3: c.pte === 0 ? 0 : target | c.pte }, c.pde ?? PRWU)
      r.mmu.setControls({ cr0Wp: c.wp ?? true, cr4Pse: false })
      const linear = 0x3abc
      const out = r.mmu.handlePageFault(linear, c.access)
      if (c.expected === "hidden") {
        expect(out).toEqual({ kind: "hidden" })
        expect(r.mmu.stats.trueFaults).toBe(0)
      } else {
        expect(out).toEqual({ kind: "true", cr2: linear, errorCode: c.expected })
        expect(r.mmu.stats.trueFaults).toBe(1)
        // a true fault installs nothing and touches no A/D bit
        expect(r.hwWalk(linear, c.access)).toHaveProperty("fault")
        expect(r.read32(PD) & PTE_A).toBe(0)
      }
    })
})

describe("accessed and dirty bits (SDM 4.8)", () => {
  it("a read sets A in the guest PDE and PTE, not D; the shadow leaf is read-only until the first write", () => {
    const r = rig({ 2: 0x8000 | PRWU })
    expect(r.mmu.handlePageFault(0x2004, {})).toEqual({ kind: "hidden" })
    expect(r.read32(PD) & (PTE_A | PTE_D)).toBe(PTE_A)
    expect(r.read32(PT + 8) & (PTE_A | PTE_D)).toBe(PTE_A)
    expect(r.hwWalk(0x2004)).toEqual({ machine: r.machineOf(0x8004) })
    // clean page: the write faults on the shadow although the guest allows it ...
    expect(r.hwWalk(0x2004, { write: true })).toEqual({ fault: PFEC_P | PFEC_W })
    // ... a hidden fault that sets D in the guest PTE
    expect(r.mmu.handlePageFault(0x2004, { write: true })).toEqual({ kind: "hidden" })
    expect(r.read32(PT + 8) & (PTE_A | PTE_D)).toBe(PTE_A | PTE_D)
    expect(r.read32(PD) & PTE_D).toBe(0) // D is not defined for a PDE that references a PT
    expect(r.hwWalk(0x2004, { write: true })).toEqual({ machine: r.machineOf(0x8004) })
    expect(r.mmu.stats.hiddenFaults).toBe(2)
  })

  it("a first write sets A and D together; an already dirty page is installed writable on a read fault", () => {
    const r = rig({ 1: 0x8000 | PRWU, 2: 0x9000 | PRWU | PTE_D })
    r.mmu.handlePageFault(0x1000, { write: true })
    expect(r.read32(PT + 4) & (PTE_A | PTE_D)).toBe(PTE_A | PTE_D)
    r.mmu.handlePageFault(0x2000, {})
    expect(r.hwWalk(0x2000, { write: true })).toEqual({ machine: r.machineOf(0x9000) })
  })
})

describe("4 MiB pages (CR4.PSE, SDM 4.3)", () => {
  it("a PS PDE maps 4 MiB, split into 4 KiB shadow leaves; A/D go to the guest PDE", () => {
    const r = rig({})
    r.write32(PD + 2 * 4, 0x400000 | PRWU | PTE_PS) // linear 0x800000 -> gpa 0x400000
    r.mmu.setControls({ cr0Wp: true, cr4Pse: true })
    expect(r.mmu.handlePageFault(0x8ab123, { user: true })).toEqual({ kind: "hidden" })
    expect(r.hwWalk(0x8ab123, { user: true })).toEqual({ machine: r.machineOf(0x4ab123) })
    expect(r.read32(PD + 8) & (PTE_A | PTE_D)).toBe(PTE_A)
    // another 4 KiB piece of the same large page: its own hidden fault
    expect(r.hwWalk(0x9ff000)).toEqual({ fault: 0 })
    expect(r.mmu.handlePageFault(0x9ff000, { write: true })).toEqual({ kind: "hidden" })
    expect(r.read32(PD + 8) & PTE_D).toBe(PTE_D)
    expect(r.hwWalk(0x9ff000, { write: true })).toEqual({ machine: r.machineOf(0x5ff000) })
  })

  it("without CR4.PSE the PS bit is ignored: the PDE references a page table", () => {
    const r = rig({})
    r.write32(PD + 4, PT | PRWU | PTE_PS)
    r.write32(PT + 4 * 4, 0x6000 | PRWU)
    expect(r.mmu.handlePageFault(0x404000, {})).toEqual({ kind: "hidden" })
    expect(r.hwWalk(0x404000)).toEqual({ machine: r.machineOf(0x6000) })
  })

  it("a user write to a read-only 4 MiB page is a true fault", () => {
    const r = rig({})
    r.write32(PD + 4, 0x400000 | PTE_P | PTE_US | PTE_PS)
    r.mmu.setControls({ cr0Wp: true, cr4Pse: true })
    expect(r.mmu.handlePageFault(0x400010, { user: true, write: true })).toEqual({
      kind: "true",
      cr2: 0x400010,
      errorCode: 7
    })
  })
})

describe("tracing guest page-table writes", () => {
  it("guest page tables are write-protected in the shadow: a write through a mapping of one is 'traced'", () => {
    // PTE 1 maps the guest PT itself (writable, dirty), PTE 0 maps the PD
    const r = rig({ 0: PD | PRWU | PTE_D, 1: PT | PRWU | PTE_D })
    expect(r.mmu.tracedFrames()).toEqual([1]) // only the PD so far
    expect(r.mmu.handlePageFault(0x1008, {})).toEqual({ kind: "hidden" })
    expect(r.mmu.tracedFrames()).toEqual([1, 2])
    expect(r.hwWalk(0x1008)).toEqual({ machine: r.machineOf(0x2008) })
    expect(r.hwWalk(0x1008, { write: true })).toEqual({ fault: PFEC_P | PFEC_W })
    expect(r.mmu.handlePageFault(0x1008, { write: true })).toEqual({ kind: "traced", gpa: 0x2008 })
    expect(r.mmu.handlePageFault(0x0004, { write: true })).toEqual({ kind: "traced", gpa: 0x1004 })
    expect(r.mmu.stats.tracedWrites).toBe(2)
  })

  it("a page already mapped writable loses write access when it becomes a page table", () => {
    const r = rig({ 7: 0x5000 | PRWU | PTE_D })
    r.mmu.handlePageFault(0x7000, { write: true })
    expect(r.hwWalk(0x7000, { write: true })).toEqual({ machine: r.machineOf(0x5000) })
    // the guest points PDE 1 at frame 5 and touches something through it
    r.write32(PD + 4, 0x5000 | PRWU)
    r.mmu.guestTableWrite(PD + 4)
    r.write32(0x5000, 0x9000 | PRWU)
    expect(r.mmu.handlePageFault(0x400000, {})).toEqual({ kind: "hidden" })
    expect(r.hwWalk(0x7000, { write: true })).toEqual({ fault: PFEC_P | PFEC_W })
    expect(r.hwWalk(0x7000)).toEqual({ machine: r.machineOf(0x5000) })
  })

  it("a page already mapped writable loses write access when a CR3 load makes it a page directory", () => {
    const r = rig({ 6: 0x6000 | PRWU | PTE_D })
    r.mmu.handlePageFault(0x6000, { write: true })
    expect(r.hwWalk(0x6000, { write: true })).toEqual({ machine: r.machineOf(0x6000) })
    r.write32(0x6000, PT | PRWU) // a second address space sharing the PT
    r.mmu.switchCr3(0x6000)
    r.mmu.switchCr3(PD)
    expect(r.mmu.tracedFrames()).toEqual([1, 2, 6])
    expect(r.hwWalk(0x6000, { write: true })).toEqual({ fault: PFEC_P | PFEC_W })
    expect(r.mmu.handlePageFault(0x6000, { write: true })).toEqual({ kind: "traced", gpa: 0x6000 })
  })

  it("guestTableWrite on a PTE zaps the leaf derived from it; the next access sees the new mapping", () => {
    const r = rig({ 4: 0x8000 | PRWU })
    r.mmu.handlePageFault(0x4000, {})
    expect(r.hwWalk(0x4000)).toEqual({ machine: r.machineOf(0x8000) })
    r.write32(PT + 16, 0x9000 | PRWU) // the monitor emulated the guest's write ...
    expect(r.mmu.guestTableWrite(PT + 16)).toBe(true) // ... and reports it
    expect(r.hwWalk(0x4000)).toEqual({ fault: 0 })
    expect(r.mmu.handlePageFault(0x4000, {})).toEqual({ kind: "hidden" })
    expect(r.hwWalk(0x4000)).toEqual({ machine: r.machineOf(0x9000) })
    // a PTE cleared by the guest becomes a true fault
    r.write32(PT + 16, 0)
    r.mmu.guestTableWrite(PT + 16)
    expect(r.mmu.handlePageFault(0x4000, {})).toMatchObject({ kind: "true", errorCode: 0 })
  })

  it("guestTableWrite on a PDE unlinks the shadow PT; writes to untraced frames report false", () => {
    const r = rig({ 4: 0x8000 | PRWU })
    r.mmu.handlePageFault(0x4000, {})
    r.write32(PD, 0)
    expect(r.mmu.guestTableWrite(PD)).toBe(true)
    expect(r.hwWalk(0x4000)).toEqual({ fault: 0 })
    expect(r.mmu.handlePageFault(0x4000, {})).toMatchObject({ kind: "true", errorCode: 0 })
    expect(r.mmu.guestTableWrite(0x8000)).toBe(false)
    expect(r.mmu.stats.tablesZapped).toBe(1)
  })
})

describe("supervisor writes under CR0.WP = 0", () => {
  it("a supervisor write to a read-only user page gets a writable supervisor-only leaf; a user access flips it back", () => {
    const r = rig({ 3: 0x8000 | PTE_P | PTE_US })
    r.mmu.setControls({ cr0Wp: false, cr4Pse: false })
    expect(r.mmu.handlePageFault(0x3000, { write: true })).toEqual({ kind: "hidden" })
    expect(r.read32(PT + 12) & PTE_D).toBe(PTE_D)
    expect(r.hwWalk(0x3000, { write: true })).toEqual({ machine: r.machineOf(0x8000) })
    expect(r.hwWalk(0x3000, { user: true })).toEqual({ fault: PFEC_P | PFEC_U })
    expect(r.mmu.handlePageFault(0x3000, { user: true })).toEqual({ kind: "hidden" })
    expect(r.hwWalk(0x3000, { user: true })).toEqual({ machine: r.machineOf(0x8000) })
    expect(r.hwWalk(0x3000, { write: true })).toEqual({ fault: PFEC_P | PFEC_W })
  })
})

describe("the shadow cache per guest CR3", () => {
  it("switching back to a cached CR3 is a hit with the same root and its filled entries", () => {
    const r = rig({ 1: 0x8000 | PRWU })
    const rootA = r.mmu.shadowCr3
    r.mmu.handlePageFault(0x1000, {})
    r.write32(0x3000, 0) // a second, empty address space
    expect(r.mmu.switchCr3(0x3000)).not.toBe(rootA)
    expect(r.hwWalk(0x1000)).toEqual({ fault: 0 })
    expect(r.mmu.switchCr3(PD)).toBe(rootA)
    expect(r.hwWalk(0x1000)).toEqual({ machine: r.machineOf(0x8000) })
    expect(r.mmu.stats).toMatchObject({ cr3Switches: 3, cacheHits: 1, cacheMisses: 2, hiddenFaults: 1 })
  })

  it("the cache is bounded and evicts the least recently used root", () => {
    const r = rig({}, PRWU, { rootCacheSize: 2 })
    r.mmu.switchCr3(0x3000)
    r.mmu.switchCr3(PD) // hit: PD is now most recent
    r.mmu.switchCr3(0x4000) // evicts 0x3000
    expect(r.mmu.cachedRoots()).toEqual([1, 4])
    expect(r.mmu.tracedFrames()).toEqual([1, 4])
    r.mmu.switchCr3(0x3000)
    expect(r.mmu.stats).toMatchObject({ cr3Switches: 5, cacheHits: 1, cacheMisses: 4 })
    // frames are reused, not leaked: an eviction frees the frame the new root takes
    expect(r.mmu.tableFrames().length).toBe(2)
  })

  it("a shadow PT is shared by every root whose guest PDE references the same guest PT", () => {
    const r = rig({ 1: 0x8000 | PRWU })
    r.write32(0x3000, PT | PRWU)
    r.mmu.handlePageFault(0x1000, {})
    r.mmu.switchCr3(0x3000)
    r.mmu.handlePageFault(0x1000, {})
    expect(r.mmu.stats.tablesBuilt).toBe(1)
    r.write32(PT + 4, 0x9000 | PRWU)
    r.mmu.guestTableWrite(PT + 4)
    expect(r.hwWalk(0x1000)).toEqual({ fault: 0 })
    r.mmu.switchCr3(PD)
    expect(r.hwWalk(0x1000)).toEqual({ fault: 0 })
  })
})

describe("invlpg and flushAll", () => {
  it("invlpg drops the leaf for that page only (a stale entry is kept until then, like a TLB)", () => {
    const r = rig({ 1: 0x8000 | PRWU, 2: 0x9000 | PRWU })
    r.mmu.handlePageFault(0x1000, {})
    r.mmu.handlePageFault(0x2000, {})
    // changed behind the tracer's back (not reported): the shadow is stale until INVLPG
    r.write32(PT + 4, 0xa000 | PRWU)
    expect(r.hwWalk(0x1000)).toEqual({ machine: r.machineOf(0x8000) })
    r.mmu.invlpg(0x1000)
    expect(r.hwWalk(0x1000)).toEqual({ fault: 0 })
    expect(r.hwWalk(0x2000)).toEqual({ machine: r.machineOf(0x9000) })
    r.mmu.handlePageFault(0x1000, {})
    expect(r.hwWalk(0x1000)).toEqual({ machine: r.machineOf(0xa000) })
  })

  it("invlpg in a 4 MiB page drops the whole split page", () => {
    const r = rig({})
    r.write32(PD + 4, 0x400000 | PRWU | PTE_PS)
    r.mmu.setControls({ cr0Wp: true, cr4Pse: true })
    r.mmu.handlePageFault(0x400000, {})
    r.mmu.handlePageFault(0x7ff000, {})
    r.mmu.invlpg(0x500000)
    expect(r.hwWalk(0x400000)).toEqual({ fault: 0 })
    expect(r.hwWalk(0x7ff000)).toEqual({ fault: 0 })
  })

  it("flushAll empties every shadow and gives the current CR3 a fresh root", () => {
    const r = rig({ 1: 0x8000 | PRWU })
    r.mmu.handlePageFault(0x1000, {})
    r.mmu.switchCr3(0x3000)
    r.mmu.switchCr3(PD)
    const cr3 = r.mmu.flushAll()
    expect(cr3).toBe(r.mmu.shadowCr3)
    expect(r.mmu.cachedRoots()).toEqual([1])
    expect(r.hwWalk(0x1000)).toEqual({ fault: 0 })
    expect(r.mmu.handlePageFault(0x1000, {})).toEqual({ kind: "hidden" })
    expect(r.hwWalk(0x1000)).toEqual({ machine: r.machineOf(0x8000) })
  })

  it("changing CR0.WP or CR4.PSE flushes", () => {
    const r = rig({ 1: 0x8000 | PRWU })
    r.mmu.handlePageFault(0x1000, {})
    r.mmu.setControls({ cr0Wp: false, cr4Pse: false })
    expect(r.hwWalk(0x1000)).toEqual({ fault: 0 })
  })
})

describe("over a VM's real guest memory (vmm/guest-memory.ts, kernel/memory)", () => {
  it("guestPhysicalShadow: the shadow maps guest-virtual to the VM's machine frames; its tables are the VM's own frames, charged to its pool and returned with it", () => {
    const MIB = 1 << 20
    const mm = new MemoryManager(new Uint8Array(8 * MIB), [{ base: 0, length: 8 * MIB, type: "usable" }], {
      firstFrames: 16
    })
    expect(typeof mm.createPool("vm", { reservation: 0, limit: 1024, shares: 1000 })).toBe("object")
    const guest = new GuestPhysical(mm, "vm", 2 * MIB)
    guest.writeValue(0x1000, 4, 0x2000 | PRWU) // PDE 0 -> PT 0x2000
    guest.writeValue(0x2000 + 0x30 * 4, 4, 0x30000 | PRWU) // linear 0x30000 -> gpa 0x30000
    const frames = mm.shadowFrames("vm")
    if (!("allocateTable" in frames)) throw new Error("no pool")
    const mmu = new ShadowMmu(guestPhysicalShadow(guest), frames)
    mmu.setControls({ cr0Wp: true, cr4Pse: false })
    const root = mmu.switchCr3(0x1000)
    expect(typeof root).toBe("number")
    expect(mmu.handlePageFault(0x30010, { write: true })).toEqual({ kind: "hidden" })
    expect(guest.readValue(0x2000 + 0x30 * 4, 4) & (PTE_A | PTE_D)).toBe(PTE_A | PTE_D)
    const memory: PhysicalMemory = {
      ram: mm.frames.ram,
      pageKind: () => PageKind.Ram,
      read: () => 0xffffffff,
      write: () => {}
    }
    const frame = guest.frame(0x30, false)!
    expect(walk(new Cpu(memory, noPorts), root as number, true, false, 0x30010, { write: true })).toEqual({
      machine: frame * 4096 + 0x10
    })
    // the shadow tables are the VM's frames, charged to its pool as table frames and returned with it
    const tables = mmu.tableFrames()
    expect(tables.length).toBeGreaterThan(0)
    for (const t of tables) expect(mm.frames.ownerOf(t)).toBe("vm")
    const ept = mm.existingEpt("vm")
    const eptTables = ept !== undefined && "tableFrames" in ept ? ept.tableFrames().length : 0
    expect(mm.usage("vm")).toMatchObject({ tableFrames: eptTables + tables.length })
    expect(mm.checkInvariants()).toEqual([])
    const free = mm.frames.freeFrames
    const owned = mm.frames.ownedCount("vm")
    mm.release("vm")
    expect(mm.frames.freeFrames).toBe(free + owned)
    expect(mm.frames.ownedCount("vm")).toBe(0)
  })
})
