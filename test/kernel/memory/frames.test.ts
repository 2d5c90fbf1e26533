/**
 * The frame allocator (kernel/memory/frames.ts): usable frames come from the
 * firmware memory map (holes and partial frames are never handed out), the
 * kernel's boot frames are owned by "kernel", allocation is lowest-first and
 * zeroes the frame, and every refusal is a typed value (out of memory,
 * double free, freeing someone else's frame).
 */
import { describe, expect, it } from "@effect/vitest"
import type { MemoryRegion } from "../../../hw/firmware/description.ts"
import { DoubleFree, MemoryInvariantError, NotFrameOwner, OutOfMemory } from "../../../kernel/memory/errors.ts"
import { FRAME_SIZE, FrameAllocator } from "../../../kernel/memory/frames.ts"

const KiB = 1024
const usable = (base: number, length: number): MemoryRegion => ({ base, length, type: "usable" })

describe("frames from the firmware memory map", () => {
  it("manages exactly the frames wholly inside usable regions", () => {
    const ram = new Uint8Array(64 * KiB) // 16 frames
    const frames = new FrameAllocator(ram, [
      usable(0, 8 * KiB), // frames 0, 1
      { base: 8 * KiB, length: 8 * KiB, type: "reserved" }, // 2, 3: not RAM we may use
      usable(16 * KiB + 1, 12 * KiB), // a partial first frame: frames 5, 6 only (4 and 7 are partial)
      usable(40 * KiB, 24 * KiB) // 10..15
    ])
    expect(frames.usableFrames).toBe(2 + 2 + 6)
    expect(frames.freeFrames).toBe(10)
    const got: Array<number> = []
    for (;;) {
      const f = frames.allocate("vm1")
      if (typeof f !== "number") break
      got.push(f)
    }
    expect(got).toEqual([0, 1, 5, 6, 10, 11, 12, 13, 14, 15])
    expect(frames.stateOf(2)).toEqual({ _tag: "Unusable" })
    expect(frames.stateOf(4)).toEqual({ _tag: "Unusable" })
    expect(frames.checkInvariants()).toEqual([])
  })

  it("a usable region beyond the end of RAM is a boot-time panic (the map and the RAM disagree)", () => {
    expect(() => new FrameAllocator(new Uint8Array(16 * KiB), [usable(0, 32 * KiB)])).toThrow(MemoryInvariantError)
  })

  it("the kernel's boot frames (first N, and explicit ranges) are owned by kernel", () => {
    const frames = new FrameAllocator(new Uint8Array(64 * KiB), [usable(0, 64 * KiB)], {
      firstFrames: 3,
      ranges: [{ base: 8 * KiB + 100, length: 5000 }] // touches frames 2 and 3
    })
    expect(frames.ownedCount("kernel")).toBe(4)
    expect(frames.framesOf("kernel")).toEqual([0, 1, 2, 3])
    expect(frames.ownerOf(3)).toBe("kernel")
    expect(frames.allocate("vm1")).toBe(4)
    expect(frames.freeFrames).toBe(11)
  })
})

describe("allocation and free", () => {
  const make = (count: number) => {
    const ram = new Uint8Array(count * FRAME_SIZE)
    return { ram, frames: new FrameAllocator(ram, [usable(0, ram.length)]) }
  }

  it("zeroes the frame it hands out (RAM full of garbage first)", () => {
    const { ram, frames } = make(4)
    ram.fill(0xa5)
    const f = frames.allocate("vm1") as number
    expect(ram.subarray(f * FRAME_SIZE, (f + 1) * FRAME_SIZE).every((b) => b === 0)).toBe(true)
    expect(ram[(f + 1) * FRAME_SIZE]).toBe(0xa5) // only that frame
  })

  it("hands out the lowest free frame first, across words of the bitmap (reproducible runs)", () => {
    const { frames } = make(100)
    const first = Array.from({ length: 70 }, () => frames.allocate("a") as number)
    expect(first).toEqual(Array.from({ length: 70 }, (_, i) => i))
    expect(frames.free(65, "a")).toBeUndefined()
    expect(frames.free(3, "a")).toBeUndefined()
    expect(frames.free(40, "a")).toBeUndefined()
    expect([frames.allocate("b"), frames.allocate("b"), frames.allocate("b"), frames.allocate("b")]).toEqual([
      3, 40, 65, 70
    ])
    expect(frames.checkInvariants()).toEqual([])
  })

  it("out of memory is a typed value naming the owner", () => {
    const { frames } = make(2)
    frames.allocate("vm1")
    frames.allocate("vm1")
    const r = frames.allocate("vm2")
    expect(r).toBeInstanceOf(OutOfMemory)
    expect((r as OutOfMemory).owner).toBe("vm2")
    expect((r as OutOfMemory).message).toMatch(/vm2/)
  })

  it("double free and freeing another owner's (or unusable) frame are refused and change nothing", () => {
    const ram = new Uint8Array(8 * FRAME_SIZE)
    const frames = new FrameAllocator(ram, [usable(0, 6 * FRAME_SIZE)], { firstFrames: 1 })
    const f = frames.allocate("vm1") as number
    const notMine = frames.free(f, "vm2")
    expect(notMine).toBeInstanceOf(NotFrameOwner)
    expect((notMine as NotFrameOwner).actualOwner).toBe("vm1")
    expect(frames.free(0, "vm1")).toMatchObject({ _tag: "NotFrameOwner", actualOwner: "kernel" })
    expect(frames.free(7, "vm1")).toMatchObject({ _tag: "NotFrameOwner" })
    expect(frames.free(f, "vm1")).toBeUndefined()
    const again = frames.free(f, "vm1")
    expect(again).toBeInstanceOf(DoubleFree)
    expect((again as DoubleFree).message).toMatch(/double free.*0x1/)
    expect(frames.freeFrames).toBe(5)
    expect(frames.checkInvariants()).toEqual([])
  })

  it("a frame number outside RAM is a hypervisor bug (thrown), not a refusal", () => {
    const { frames } = make(2)
    expect(() => frames.free(2, "vm1")).toThrow(MemoryInvariantError)
    expect(() => frames.free(0.5, "vm1")).toThrow(MemoryInvariantError)
  })

  it("an owner that gives back everything is forgotten, so its id can be reused", () => {
    const { frames } = make(4)
    const f = frames.allocate("vm1") as number
    frames.free(f, "vm1")
    expect(frames.owners()).toEqual([])
    expect(frames.allocate("vm1")).toBe(f)
    expect(frames.owners()).toEqual([{ owner: "vm1", frames: 1 }])
  })
})
