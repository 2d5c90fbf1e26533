/**
 * Per-VM pools with ESX semantics (kernel/memory/pools.ts,
 * memory-manager.ts): lazy backing on first touch, admission control on
 * reservations, limits that count page-table frames, release, and the
 * queries (owned per VM, free, reserved-but-unused).
 */
import { describe, expect, it } from "@effect/vitest"
import {
  AdmissionRefused,
  InvalidPoolSpec,
  MemoryInvariantError,
  MemoryLimitExceeded,
  OutOfMemory,
  UnknownVm,
  VmAlreadyExists
} from "../../../kernel/memory/errors.ts"
import { FRAME_SIZE } from "../../../kernel/memory/frames.ts"
import { MemoryManager } from "../../../kernel/memory/memory-manager.ts"
import { mibToFrames } from "../../../kernel/memory/pools.ts"

const KERNEL = 16
/** A manager over `frames` frames of RAM, the first 16 the kernel's. */
const manager = (frames = 128) => {
  const ram = new Uint8Array(frames * FRAME_SIZE)
  return { ram, mm: new MemoryManager(ram, [{ base: 0, length: ram.length, type: "usable" }], { firstFrames: KERNEL }) }
}
const open = { reservation: 0, limit: Number.POSITIVE_INFINITY, shares: 1000 }
const frameBytes = (ram: Uint8Array, f: number) => ram.subarray(f * FRAME_SIZE, (f + 1) * FRAME_SIZE)

describe("lazy backing (backGuestPage)", () => {
  it("first touch allocates a zeroed frame (RAM full of garbage first); the second returns the same frame", () => {
    const { ram, mm } = manager()
    ram.fill(0xcc, KERNEL * FRAME_SIZE)
    mm.createPool("vm1", open)
    const f = mm.backGuestPage("vm1", 0x1234)
    expect(typeof f).toBe("number")
    expect(frameBytes(ram, f as number).every((b) => b === 0)).toBe(true)
    frameBytes(ram, f as number).fill(0x42) // the guest writes to its page
    expect(mm.backGuestPage("vm1", 0x1234)).toBe(f)
    expect(frameBytes(ram, f as number)[0]).toBe(0x42) // not re-zeroed
    expect(mm.usage("vm1")).toMatchObject({ owned: 1, guestFrames: 1, tableFrames: 0 })
  })

  it("different VMs touching the same gfn get different frames", () => {
    const { mm } = manager()
    mm.createPool("a", open)
    mm.createPool("b", open)
    expect(mm.backGuestPage("a", 7)).not.toBe(mm.backGuestPage("b", 7))
  })

  it("an unknown VM is a typed error; a gfn outside 32-bit guest-physical space is a bug", () => {
    const { mm } = manager()
    expect(mm.backGuestPage("ghost", 0)).toBeInstanceOf(UnknownVm)
    mm.createPool("vm1", open)
    expect(() => mm.backGuestPage("vm1", 1 << 20)).toThrow(MemoryInvariantError)
  })

  it("mapGuestPage is the EPT-violation path: back, then map (tables charged to the VM)", () => {
    const { mm } = manager()
    mm.createPool("vm1", open)
    const f = mm.mapGuestPage("vm1", 0x300) as number
    expect(f).toBe(mm.guestFrame("vm1", 0x300))
    const ept = mm.existingEpt("vm1")
    expect(ept).toBeDefined()
    expect((ept as { lookup(g: number): unknown }).lookup(0x300)).toMatchObject({ frame: f, perms: 7 })
    // PML4 + PDPT + PD + PT
    expect(mm.usage("vm1")).toMatchObject({ owned: 5, guestFrames: 1, tableFrames: 4 })
    // the next gfn in the same 2 MiB needs no new table
    mm.mapGuestPage("vm1", 0x301)
    expect(mm.usage("vm1")).toMatchObject({ owned: 6, tableFrames: 4 })
    // one in another 2 MiB region needs a new PT
    mm.mapGuestPage("vm1", 0x600)
    expect(mm.usage("vm1")).toMatchObject({ owned: 8, tableFrames: 5 })
    expect(mm.checkInvariants()).toEqual([])
  })

  it("unbackGuestPage unmaps then frees (what ballooning and swapping will do)", () => {
    const { mm } = manager()
    mm.createPool("vm1", open)
    const f = mm.mapGuestPage("vm1", 5) as number
    const free = mm.frames.freeFrames
    expect(mm.unbackGuestPage("vm1", 5)).toBe(f)
    expect(mm.frames.freeFrames).toBe(free + 1)
    expect(mm.frames.stateOf(f)).toEqual({ _tag: "Free" })
    expect(mm.guestFrame("vm1", 5)).toBeUndefined()
    const ept = mm.existingEpt("vm1") as { lookup(g: number): unknown }
    expect(ept.lookup(5)).toBeUndefined()
    expect(mm.unbackGuestPage("vm1", 5)).toBeUndefined()
    expect(mm.checkInvariants()).toEqual([])
  })
})

describe("reservation and admission control", () => {
  it("admits a VM only if its whole reservation can be promised now", () => {
    const { mm } = manager(128) // 112 usable after the kernel
    expect(mm.createPool("big", { reservation: 100, limit: 200, shares: 1000 })).toMatchObject({ reservedUnused: 100 })
    expect(mm.stats()).toMatchObject({ freeFrames: 112, reservedUnused: 100, unreservedFree: 12 })
    const refused = mm.createPool("second", { reservation: 13, limit: 20, shares: 1000 })
    expect(refused).toBeInstanceOf(AdmissionRefused)
    expect((refused as AdmissionRefused).message).toBe(
      "VM second refused by admission control: reservation of 13 frame(s), only 12 unreserved free"
    )
    expect(mm.hasPool("second")).toBe(false)
    expect(mm.createPool("second", { reservation: 12, limit: 20, shares: 1000 })).toMatchObject({ vm: "second" })
  })

  it("a reserved VM's frames never fail for lack of memory, even when others have taken every unreserved frame", () => {
    const { mm } = manager(64) // 48 usable
    mm.createPool("reserved", { reservation: 10, limit: 20, shares: 1000 })
    mm.createPool("greedy", open)
    let taken = 0
    while (typeof mm.backGuestPage("greedy", taken) === "number") taken++
    expect(taken).toBe(38)
    expect(mm.backGuestPage("greedy", taken)).toBeInstanceOf(OutOfMemory)
    for (let g = 0; g < 10; g++) expect(typeof mm.backGuestPage("reserved", g)).toBe("number")
    // beyond its reservation it competes like anyone else
    expect(mm.backGuestPage("reserved", 10)).toMatchObject({ _tag: "OutOfMemory", owner: "reserved" })
    expect(mm.stats()).toMatchObject({ freeFrames: 0, reservedUnused: 0 })
  })

  it("the kernel's own allocations cannot eat into reservations", () => {
    const { mm } = manager(32) // 16 usable
    mm.createPool("vm1", { reservation: 16, limit: 16, shares: 1000 })
    expect(mm.allocateKernelFrame()).toBeInstanceOf(OutOfMemory)
  })

  it("reservedUnused shrinks as the VM uses its reservation and returns with release", () => {
    const { mm } = manager()
    mm.createPool("vm1", { reservation: 8, limit: 32, shares: 1000 })
    for (let g = 0; g < 3; g++) mm.backGuestPage("vm1", g)
    expect(mm.usage("vm1")).toMatchObject({ owned: 3, reservedUnused: 5 })
    expect(mm.reservedUnused()).toBe(5)
    expect(mm.release("vm1")).toBe(3)
    expect(mm.reservedUnused()).toBe(0)
    expect(mm.stats()).toMatchObject({ freeFrames: 112, vms: [] })
  })

  it("refuses nonsense specs and duplicate VMs", () => {
    const { mm } = manager()
    expect(mm.createPool("vm1", { reservation: 10, limit: 5, shares: 1 })).toBeInstanceOf(InvalidPoolSpec)
    expect(mm.createPool("vm1", { reservation: 1.5, limit: 5, shares: 1 })).toBeInstanceOf(InvalidPoolSpec)
    expect(mm.createPool("vm1", { reservation: 0, limit: 5, shares: 0 })).toBeInstanceOf(InvalidPoolSpec)
    expect(mm.createPool("kernel", open)).toBeInstanceOf(InvalidPoolSpec)
    mm.createPool("vm1", open)
    expect(mm.createPool("vm1", open)).toBeInstanceOf(VmAlreadyExists)
  })

  it("mibToFrames: 256 frames per MiB", () => {
    expect(mibToFrames(4)).toBe(1024)
  })
})

describe("limit", () => {
  it("a VM never owns more than its limit: the refusal names the VM, the limit and the request", () => {
    const { mm } = manager()
    mm.createPool("vm7", { reservation: 0, limit: 3, shares: 1000 })
    for (let g = 0; g < 3; g++) expect(typeof mm.backGuestPage("vm7", g)).toBe("number")
    const r = mm.backGuestPage("vm7", 3)
    expect(r).toBeInstanceOf(MemoryLimitExceeded)
    expect(r).toMatchObject({ vm: "vm7", limit: 3, owned: 3, requested: 1 })
    expect((r as MemoryLimitExceeded).message).toBe(
      "VM vm7 is at its memory limit: owns 3 of 3 frame(s), asked for 1 more"
    )
    expect(mm.usage("vm7")).toMatchObject({ owned: 3 })
  })

  it("EPT page-table frames count against the limit", () => {
    const { mm } = manager()
    mm.createPool("vm1", { reservation: 0, limit: 5, shares: 1000 })
    expect(typeof mm.mapGuestPage("vm1", 0)).toBe("number") // 1 guest + 4 tables
    // a second page needs a frame: over the limit
    expect(mm.mapGuestPage("vm1", 1)).toMatchObject({ _tag: "MemoryLimitExceeded", vm: "vm1", limit: 5 })
    // with limit 4, the guest frame is backed but the tables cannot all be made: no leak, no partial mapping
    mm.createPool("vm2", { reservation: 0, limit: 4, shares: 1000 })
    expect(mm.mapGuestPage("vm2", 0)).toBeInstanceOf(MemoryLimitExceeded)
    expect(mm.usage("vm2")).toMatchObject({ owned: 4, guestFrames: 1, tableFrames: 3 })
    expect(mm.checkInvariants()).toEqual([])
    expect(mm.release("vm2")).toBe(4)
    expect(mm.checkInvariants()).toEqual([])
  })
})

describe("release", () => {
  it("returns every frame of the VM, guest and page-table frames alike", () => {
    const { mm } = manager()
    const free = mm.frames.freeFrames
    mm.createPool("vm1", open)
    for (const g of [0, 1, 0x200, 0x40000, 0xfffff]) mm.mapGuestPage("vm1", g)
    expect(mm.usage("vm1")).toMatchObject({ guestFrames: 5 })
    const owned = (mm.usage("vm1") as { owned: number }).owned
    expect(mm.release("vm1")).toBe(owned)
    expect(mm.frames.freeFrames).toBe(free)
    expect(mm.frames.ownedCount("vm1")).toBe(0)
    expect(mm.release("vm1")).toBeInstanceOf(UnknownVm)
    expect(mm.checkInvariants()).toEqual([])
  })

  it("after release the VM's EPT builder is dead (using it is a bug)", () => {
    const { mm } = manager()
    mm.createPool("vm1", open)
    mm.mapGuestPage("vm1", 0)
    const ept = mm.existingEpt("vm1") as { eptp(): number }
    mm.release("vm1")
    expect(() => ept.eptp()).toThrow(/after its pool was released/)
  })
})
