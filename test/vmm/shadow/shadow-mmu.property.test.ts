/**
 * Property: for random guest page tables (4 KiB and 4 MiB pages, random
 * P/RW/US/A/D, tables that map themselves), random CR0.WP / CR4.PSE, and a
 * random sequence of accesses, traced guest page-table edits and CR3
 * switches, running on the shadow (hw/cpu/paging.ts walking the shadow root,
 * hidden faults resolved by handlePageFault) gives the same result as the
 * same walker on the guest's own tables (SDM 3A ch. 4) composed with
 * guest-physical -> machine: the same machine address, or a true fault with
 * the same error code and CR2; and the guest's tables end with the same
 * contents (A/D bits, and the stores the accesses made, some of which land
 * in page tables through mappings of them: the write-protection trap).
 */
import { describe, expect, it } from "@effect/vitest"
import fc from "fast-check"
import { flatMemory, noPorts } from "../../../hw/cpu/bus.ts"
import { Cpu } from "../../../hw/cpu/cpu.ts"
import { GUEST_BYTES, Rig, type WalkResult, walk } from "./harness.ts"

const PDS = [0x1000, 0x6000]
const PT_GFNS = [1, 2, 3, 4, 5, 6]
const SLOTS = 4 // PTE indices used per PT, PDE indices used per PD

// P RW US A D; present 7 times in 8 so that walks get far enough to matter
const flags = fc
  .tuple(fc.integer({ min: 0, max: 0x7f }), fc.integer({ min: 0, max: 7 }))
  .map(([f, p]) => (f & 0x66) | (p === 0 ? 0 : 1))
// targets: mostly the page tables themselves and two data pages (aliasing), sometimes anywhere in RAM
const target = fc.oneof(
  { weight: 4, arbitrary: fc.constantFrom(...PT_GFNS, 0x10, 0x11) },
  { weight: 1, arbitrary: fc.integer({ min: 0x10, max: 0x7ff }) }
)
const pte = fc.tuple(target, flags).map(([gfn, f]) => ((gfn << 12) | f) >>> 0)
const pde = fc.oneof(
  fc.tuple(fc.constantFrom(...PT_GFNS), flags).map(([gfn, f]) => ((gfn << 12) | f) >>> 0),
  fc.tuple(fc.constantFrom(0, 0x400000), flags).map(([base, f]) => (base | f | 0x80) >>> 0),
  fc.constant(0)
)
const linear = fc
  .tuple(
    fc.integer({ min: 0, max: SLOTS - 1 }),
    fc.integer({ min: 0, max: SLOTS - 1 }),
    fc.oneof(fc.integer({ min: 0, max: 15 }), fc.integer({ min: 0, max: 0xfff }))
  )
  .map(([d, t, o]) => ((d << 22) | (t << 12) | (o & ~3)) >>> 0)
const op = fc.oneof(
  {
    weight: 6,
    arbitrary: fc.record({
      kind: fc.constant("access" as const),
      linear,
      write: fc.boolean(),
      user: fc.boolean(),
      fetch: fc.boolean(),
      /** what a write stores: page-table-entry-like, so writes into tables through mappings change translations */
      value: pte
    })
  },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant("edit-pte" as const),
      gfn: fc.constantFrom(...PT_GFNS),
      index: fc.integer({ min: 0, max: SLOTS - 1 }),
      value: pte
    })
  },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant("edit-pde" as const),
      pd: fc.constantFrom(...PDS),
      index: fc.integer({ min: 0, max: SLOTS - 1 }),
      value: pde
    })
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("cr3" as const), pd: fc.constantFrom(...PDS) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("invlpg" as const), linear }) }
)

const world = fc.record({
  wp: fc.boolean(),
  pse: fc.boolean(),
  pdes: fc.array(fc.array(pde, { minLength: SLOTS, maxLength: SLOTS }), { minLength: 2, maxLength: 2 }),
  ptes: fc.array(fc.array(pte, { minLength: SLOTS, maxLength: SLOTS }), {
    minLength: PT_GFNS.length,
    maxLength: PT_GFNS.length
  }),
  ops: fc.array(op, { minLength: 10, maxLength: 60, size: "max" })
})

describe("shadow paging equals guest paging composed with guest-physical -> machine", () => {
  it("for random tables and accesses (property)", () => {
    fc.assert(
      fc.property(world, (w) => {
        const refMem = flatMemory(GUEST_BYTES)
        const refDv = new DataView(refMem.ram.buffer)
        const ref = new Cpu(refMem, noPorts)
        const r = new Rig({ rootCacheSize: 2 })
        const put = (gpa: number, v: number): void => {
          refDv.setUint32(gpa, v >>> 0, true)
          r.write32(gpa, v)
        }
        // PT entries first, then the PDs (a PD may also be used as a PT: the PD wins its slots)
        for (const [i, gfn] of PT_GFNS.entries()) for (const [j, v] of w.ptes[i]!.entries()) put(gfn * 4096 + j * 4, v)
        for (const [i, pd] of PDS.entries()) for (const [j, v] of w.pdes[i]!.entries()) put(pd + j * 4, v)
        r.mmu.setControls({ cr0Wp: w.wp, cr4Pse: w.pse })
        let cr3 = PDS[0]!
        r.mmu.switchCr3(cr3)
        for (const o of w.ops) {
          if (o.kind === "cr3") {
            cr3 = o.pd
            r.mmu.switchCr3(cr3)
          } else if (o.kind === "edit-pte" || o.kind === "edit-pde") {
            const gpa = (o.kind === "edit-pte" ? o.gfn * 4096 : o.pd) + o.index * 4
            put(gpa, o.value)
            r.mmu.guestTableWrite(gpa)
          } else if (o.kind === "invlpg") {
            r.mmu.invlpg(o.linear)
          } else {
            const access = { write: o.write, user: o.user, fetch: o.fetch && !o.write }
            const got = walk(ref, cr3, w.wp, w.pse, o.linear, access)
            const expected: WalkResult = "machine" in got ? { machine: r.machineOf(got.machine) } : got
            if ("machine" in got && access.write) refDv.setUint32(got.machine, o.value, true)
            let actual: WalkResult | undefined
            for (let tries = 0; tries < 3 && actual === undefined; tries++) {
              const hw = r.hwWalk(o.linear, access)
              if ("machine" in hw) {
                actual = hw
                if (access.write) r.dv.setUint32(hw.machine, o.value, true) // the pCPU's store
                break
              }
              const out = r.mmu.handlePageFault(o.linear, access)
              if (out.kind === "true") {
                expect(out.cr2).toBe(o.linear)
                actual = { fault: out.errorCode }
              } else if (out.kind === "traced") {
                // the monitor emulates the store, then reports it
                actual = { machine: r.machineOf(out.gpa) }
                r.write32(out.gpa, o.value)
                r.mmu.guestTableWrite(out.gpa)
              } else if (out.kind !== "hidden") throw new Error(`unexpected ${out.kind}`)
            }
            expect(actual, `access ${JSON.stringify(o)}`).toEqual(expected)
          }
        }
        for (const gfn of PT_GFNS)
          for (let j = 0; j < SLOTS; j++) {
            const gpa = gfn * 4096 + j * 4
            expect(r.read32(gpa) >>> 0, `guest entry at ${gpa.toString(16)}`).toBe(refDv.getUint32(gpa, true))
          }
      }),
      { numRuns: 500 }
    )
  })
})
