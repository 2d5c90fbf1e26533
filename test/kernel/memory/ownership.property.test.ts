/**
 * The ownership invariant of the machine memory manager (DESIGN.md kernel/:
 * "every frame has exactly one owner"), as a fast-check property over
 * random sequences of create-VM / touch-page (the EPT-violation path, which
 * also allocates page-table frames) / unback-page / release-VM / kernel
 * allocate and free / wrongful frees (double free, freeing another owner's
 * frame), on a machine whose memory map has a hole. After every step:
 *
 *   - no frame has two owners: the frames each VM records (guest frames and
 *     EPT tables) and the kernel's are pairwise disjoint, and each is owned,
 *     in the allocator's table, by exactly that owner;
 *   - free + owned = total usable frames;
 *   - every VM owns at most its limit, and the free frames cover every
 *     unused reservation (admission control keeps its promises);
 *   - every refusal is the right one (limit vs out of memory vs admission);
 *
 * and after every VM is released and the kernel's frames given back, no frame
 * has leaked, page-table frames included.
 */
import { describe, expect, it } from "@effect/vitest"
import fc from "fast-check"
import { EPT_RWX, EptBuilder } from "../../../kernel/memory/ept-builder.ts"
import { FRAME_SIZE } from "../../../kernel/memory/frames.ts"
import { MemoryManager } from "../../../kernel/memory/memory-manager.ts"

const BOOT_KERNEL = 8
const VMS = ["vm0", "vm1", "vm2"] as const
/** Spread over PTs, PDs and PDPT slots so table allocation varies. */
const GFNS = [0, 1, 2, 3, 4, 5, 0x1ff, 0x200, 0x201, 0x202, 0x400, 0x3ffff, 0x40000, 0x40001, 0x80001, 0xfffff]

const vm = fc.nat(VMS.length - 1)
const gfn = fc.nat(GFNS.length - 1)
const op = fc.oneof(
  {
    weight: 3,
    arbitrary: fc.record({ kind: fc.constant("create" as const), vm, reservation: fc.nat(24), extra: fc.nat(30) })
  },
  { weight: 10, arbitrary: fc.record({ kind: fc.constant("touch" as const), vm, gfn }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant("unback" as const), vm, gfn }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("release" as const), vm }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("kernelAlloc" as const) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("kernelFree" as const), pick: fc.nat() }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant("wrongFree" as const), frame: fc.nat(63), as: vm }) }
)

/** 64 frames: usable 0..23 and 32..63, a reserved hole at 24..31; the first 8 are the kernel's (48 left). */
const machine = () => {
  const ram = new Uint8Array(64 * FRAME_SIZE).fill(0x5a)
  const mm = new MemoryManager(
    ram,
    [
      { base: 0, length: 24 * FRAME_SIZE, type: "usable" },
      { base: 24 * FRAME_SIZE, length: 8 * FRAME_SIZE, type: "reserved" },
      { base: 32 * FRAME_SIZE, length: 32 * FRAME_SIZE, type: "usable" }
    ],
    { firstFrames: BOOT_KERNEL }
  )
  return { ram, mm }
}

/** The independent check: who each recorded frame belongs to, from the pools' own records. */
const checkOwnership = (mm: MemoryManager, kernelFrames: ReadonlySet<number>) => {
  const holder = new Map<number, string>()
  // plain throws, not expect: this runs for every frame after every step
  const claim = (frame: number, owner: string) => {
    if (holder.has(frame)) throw new Error(`frame ${frame} claimed by ${holder.get(frame)} and ${owner}`)
    holder.set(frame, owner)
    const actual = mm.frames.ownerOf(frame)
    if (actual !== owner) throw new Error(`frame ${frame}: recorded for ${owner}, the allocator says ${actual}`)
  }
  for (let f = 0; f < BOOT_KERNEL; f++) claim(f, "kernel")
  for (const f of kernelFrames) claim(f, "kernel")
  let promised = 0
  for (const id of VMS) {
    if (!mm.hasPool(id)) continue
    for (const g of GFNS) {
      const f = mm.guestFrame(id, g)
      if (f !== undefined) claim(f, id)
    }
    const e = mm.existingEpt(id)
    if (e instanceof EptBuilder) for (const t of e.tableFrames()) claim(t, id)
    const u = mm.usage(id) as { owned: number; limit: number; reservedUnused: number }
    expect(u.owned).toBeLessThanOrEqual(u.limit)
    expect(mm.frames.ownedCount(id)).toBe(u.owned)
    promised += u.reservedUnused
  }
  expect(holder.size + mm.frames.freeFrames).toBe(mm.frames.usableFrames)
  expect(mm.frames.freeFrames).toBeGreaterThanOrEqual(promised)
  expect(mm.checkInvariants()).toEqual([])
}

describe("ownership invariant (property)", () => {
  it("holds across random create / touch / unback / release / free sequences, and nothing leaks at the end", () => {
    fc.assert(
      fc.property(fc.array(op, { minLength: 10, maxLength: 80, size: "max" }), (ops) => {
        const { ram, mm } = machine()
        const kernelFrames = new Set<number>()
        for (const o of ops) {
          if (o.kind === "create") {
            const id = VMS[o.vm]!
            const spec = { reservation: o.reservation, limit: o.reservation + o.extra, shares: 1000 }
            const available = mm.unreservedFree()
            const r = mm.createPool(id, spec)
            if (!("_tag" in r)) expect(o.reservation).toBeLessThanOrEqual(available)
            else if (r._tag === "AdmissionRefused") expect(o.reservation).toBeGreaterThan(available)
            else expect(r._tag).toBe("VmAlreadyExists")
          } else if (o.kind === "touch") {
            const id = VMS[o.vm]!
            const r = mm.mapGuestPage(id, GFNS[o.gfn]!)
            if (typeof r === "number") {
              // a touched page reads as zeros (nothing here writes guest pages), never the 0x5a garbage
              expect(ram.subarray(r * FRAME_SIZE, (r + 1) * FRAME_SIZE).every((b) => b === 0)).toBe(true)
              expect((mm.existingEpt(id) as EptBuilder).lookup(GFNS[o.gfn]!)).toMatchObject({
                frame: r,
                perms: EPT_RWX
              })
            } else if (r._tag === "UnknownVm") expect(mm.hasPool(id)).toBe(false)
            else {
              const u = mm.usage(id) as { owned: number; limit: number; reservation: number }
              if (r._tag === "MemoryLimitExceeded") expect(u.owned + 1).toBeGreaterThan(u.limit)
              else {
                expect(u.owned).toBeGreaterThanOrEqual(u.reservation)
                expect(mm.unreservedFree()).toBe(0)
              }
            }
          } else if (o.kind === "unback") {
            const id = VMS[o.vm]!
            const f = mm.guestFrame(id, GFNS[o.gfn]!)
            const r = mm.unbackGuestPage(id, GFNS[o.gfn]!)
            if (mm.hasPool(id)) expect(r).toBe(f)
            if (f !== undefined) expect(mm.frames.stateOf(f)).toEqual({ _tag: "Free" })
          } else if (o.kind === "release") {
            const id = VMS[o.vm]!
            const owned = mm.frames.ownedCount(id)
            const r = mm.release(id)
            if (typeof r === "number") expect(r).toBe(owned)
            expect(mm.frames.ownedCount(id)).toBe(0)
          } else if (o.kind === "kernelAlloc") {
            const r = mm.allocateKernelFrame()
            if (typeof r === "number") kernelFrames.add(r)
            else expect(mm.unreservedFree()).toBe(0)
          } else if (o.kind === "kernelFree") {
            const list = [...kernelFrames]
            if (list.length === 0) continue
            const f = list[o.pick % list.length]!
            expect(mm.freeKernelFrame(f)).toBeUndefined()
            kernelFrames.delete(f)
          } else {
            // a wrongful free is refused and changes nothing
            const owner = mm.frames.ownerOf(o.frame)
            const as = owner === VMS[o.as] ? "intruder" : VMS[o.as]!
            const state = mm.frames.stateOf(o.frame)._tag
            const r = mm.frames.free(o.frame, as)
            expect(r?._tag).toBe(state === "Free" ? "DoubleFree" : "NotFrameOwner")
          }
          checkOwnership(mm, kernelFrames)
        }
        for (const id of VMS) if (mm.hasPool(id)) mm.release(id)
        for (const f of kernelFrames) mm.freeKernelFrame(f)
        expect(mm.frames.freeFrames).toBe(mm.frames.usableFrames - BOOT_KERNEL)
        expect(mm.frames.owners()).toEqual([{ owner: "kernel", frames: BOOT_KERNEL }])
        expect(mm.stats()).toMatchObject({ reservedUnused: 0, vms: [] })
        expect(mm.checkInvariants()).toEqual([])
      }),
      { seed: 20261126, numRuns: 300 }
    )
  })
})
