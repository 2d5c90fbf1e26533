/**
 * Fuzz suite `memory` (issue 8): the ownership invariant of the machine
 * memory manager (DESIGN.md kernel/:
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
import fc from "fast-check"
import { EPT_RWX, EptBuilder } from "../../../kernel/memory/ept-builder.ts"
import { FRAME_SIZE } from "../../../kernel/memory/frames.ts"
import { MemoryManager } from "../../../kernel/memory/memory-manager.ts"
import type { FuzzSuite } from "../campaign.ts"

const BOOT_KERNEL = 8
const VMS = ["vm0", "vm1", "vm2"] as const
/** Spread over PTs, PDs and PDPT slots so table allocation varies. */
const GFNS = [0, 1, 2, 3, 4, 5, 0x1ff, 0x200, 0x201, 0x202, 0x400, 0x3ffff, 0x40000, 0x40001, 0x80001, 0xfffff]

const vmIndex = fc.nat(VMS.length - 1)
const gfn = fc.nat(GFNS.length - 1)
const op = fc.oneof(
  {
    weight: 3,
    arbitrary: fc.record({
      kind: fc.constant("create" as const),
      vm: vmIndex,
      reservation: fc.nat(24),
      extra: fc.nat(30)
    })
  },
  { weight: 10, arbitrary: fc.record({ kind: fc.constant("touch" as const), vm: vmIndex, gfn }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant("unback" as const), vm: vmIndex, gfn }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("release" as const), vm: vmIndex }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("kernelAlloc" as const) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("kernelFree" as const), pick: fc.nat() }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant("wrongFree" as const), frame: fc.nat(63), as: vmIndex }) }
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
    must(u.owned <= u.limit, `${id} owns ${u.owned} frames, over its limit ${u.limit}`)
    must(
      mm.frames.ownedCount(id) === u.owned,
      `${id}: the allocator counts ${mm.frames.ownedCount(id)}, the pool ${u.owned}`
    )
    promised += u.reservedUnused
  }
  must(
    holder.size + mm.frames.freeFrames === mm.frames.usableFrames,
    `owned ${holder.size} + free ${mm.frames.freeFrames} != usable ${mm.frames.usableFrames}`
  )
  must(mm.frames.freeFrames >= promised, `free ${mm.frames.freeFrames} < unused reservations ${promised}`)
  const broken = mm.checkInvariants()
  must(broken.length === 0, `invariants: ${broken.join("; ")}`)
}

export type MemoryOp = typeof op extends fc.Arbitrary<infer T> ? T : never

/** Fail the property with a message naming what broke. */
const must = (condition: boolean, message: string): void => {
  if (!condition) throw new Error(message)
}

/** Run one random operation sequence, checking the invariant after every step and for leaks at the end. */
export const checkOwnershipSequence = (ops: ReadonlyArray<MemoryOp>): void => {
  const { ram, mm } = machine()
  const kernelFrames = new Set<number>()
  for (const o of ops) {
    if (o.kind === "create") {
      const id = VMS[o.vm]!
      const spec = { reservation: o.reservation, limit: o.reservation + o.extra, shares: 1000 }
      const available = mm.unreservedFree()
      const r = mm.createPool(id, spec)
      if (!("_tag" in r))
        must(o.reservation <= available, `${id}: admitted a reservation of ${o.reservation} with ${available} free`)
      else if (r._tag === "AdmissionRefused")
        must(o.reservation > available, `${id}: refused a reservation of ${o.reservation} with ${available} free`)
      else must(r._tag === "VmAlreadyExists", `${id}: create refused with ${r._tag}`)
    } else if (o.kind === "touch") {
      const id = VMS[o.vm]!
      const r = mm.mapGuestPage(id, GFNS[o.gfn]!)
      if (typeof r === "number") {
        // a touched page reads as zeros (nothing here writes guest pages), never the 0x5a garbage
        must(
          ram.subarray(r * FRAME_SIZE, (r + 1) * FRAME_SIZE).every((b) => b === 0),
          `${id}: frame ${r} not zeroed`
        )
        const mapped = (mm.existingEpt(id) as EptBuilder).lookup(GFNS[o.gfn]!)
        must(
          mapped?.frame === r && mapped.perms === EPT_RWX,
          `${id}: EPT maps gfn ${GFNS[o.gfn]} to ${JSON.stringify(mapped)}, not frame ${r} RWX`
        )
      } else if (r._tag === "UnknownVm") must(!mm.hasPool(id), `${id}: UnknownVm while its pool exists`)
      else {
        const u = mm.usage(id) as { owned: number; limit: number; reservation: number }
        if (r._tag === "MemoryLimitExceeded")
          must(u.owned + 1 > u.limit, `${id}: limit refused at ${u.owned} of ${u.limit}`)
        else {
          must(u.owned >= u.reservation, `${id}: out of memory below its reservation (${u.owned} < ${u.reservation})`)
          must(mm.unreservedFree() === 0, `${id}: out of memory with ${mm.unreservedFree()} unreserved frames free`)
        }
      }
    } else if (o.kind === "unback") {
      const id = VMS[o.vm]!
      const f = mm.guestFrame(id, GFNS[o.gfn]!)
      const r = mm.unbackGuestPage(id, GFNS[o.gfn]!)
      if (mm.hasPool(id)) must(r === f, `${id}: unback returned ${r}, expected ${f}`)
      if (f !== undefined) must(mm.frames.stateOf(f)._tag === "Free", `${id}: unbacked frame ${f} is not free`)
    } else if (o.kind === "release") {
      const id = VMS[o.vm]!
      const owned = mm.frames.ownedCount(id)
      const r = mm.release(id)
      if (typeof r === "number") must(r === owned, `${id}: released ${r} frames of ${owned}`)
      must(mm.frames.ownedCount(id) === 0, `${id}: still owns frames after release`)
    } else if (o.kind === "kernelAlloc") {
      const r = mm.allocateKernelFrame()
      if (typeof r === "number") kernelFrames.add(r)
      else must(mm.unreservedFree() === 0, `kernel allocation refused with ${mm.unreservedFree()} unreserved free`)
    } else if (o.kind === "kernelFree") {
      const list = [...kernelFrames]
      if (list.length === 0) continue
      const f = list[o.pick % list.length]!
      const r = mm.freeKernelFrame(f)
      must(r === undefined, `kernel free of ${f}: ${JSON.stringify(r)}`)
      kernelFrames.delete(f)
    } else {
      // a wrongful free is refused and changes nothing
      const owner = mm.frames.ownerOf(o.frame)
      const as = owner === VMS[o.as] ? "intruder" : VMS[o.as]!
      const state = mm.frames.stateOf(o.frame)._tag
      const r = mm.frames.free(o.frame, as)
      const expected = state === "Free" ? "DoubleFree" : "NotFrameOwner"
      must(r?._tag === expected, `wrongful free of frame ${o.frame} as ${as}: ${r?._tag}, expected ${expected}`)
    }
    checkOwnership(mm, kernelFrames)
  }
  for (const id of VMS) if (mm.hasPool(id)) mm.release(id)
  for (const f of kernelFrames) mm.freeKernelFrame(f)
  must(
    mm.frames.freeFrames === mm.frames.usableFrames - BOOT_KERNEL,
    `leak: ${mm.frames.usableFrames - BOOT_KERNEL - mm.frames.freeFrames} frames`
  )
  const owners = mm.frames.owners()
  must(
    owners.length === 1 && owners[0]!.owner === "kernel" && owners[0]!.frames === BOOT_KERNEL,
    `owners at the end: ${JSON.stringify(owners)}`
  )
  const stats = mm.stats()
  must(stats.reservedUnused === 0 && stats.vms.length === 0, `stats at the end: ${JSON.stringify(stats)}`)
  must(mm.checkInvariants().length === 0, `invariants at the end: ${mm.checkInvariants().join("; ")}`)
}

export const memoryOps = fc.array(op, { minLength: 10, maxLength: 80, size: "max" })

export const memorySuite: FuzzSuite<ReadonlyArray<MemoryOp>> = {
  name: "memory",
  description:
    "random create / touch / unback / release / kernel and wrongful frees: every frame has one owner, nothing leaks",
  arbitrary: memoryOps,
  ciRuns: 300,
  check: async (ops) => checkOwnershipSequence(ops),
  render: (ops) => ops.map((o) => JSON.stringify(o)).join("\n")
}
