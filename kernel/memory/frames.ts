/**
 * The machine frame allocator: every 4 KiB frame of machine RAM the
 * firmware table calls "usable", and who owns it.
 *
 *   machine RAM (machine.ram, indexed by machine-physical address)
 *   +--------------+-------------------------------+------ ... ------+
 *   | kernel-owned | free / owned by a VM / kernel |  not usable     |
 *   | (boot: the   | (allocated lowest-first)      |  (holes: never  |
 *   |  first N)    |                               |   handed out)   |
 *   +--------------+-------------------------------+------ ... ------+
 *   frame 0        N                                frame = address >>> 12
 *
 * Model. The firmware's memory map (hw/firmware/description.ts
 * MemoryRegion, as the machine writes it into ROM) lists usable regions;
 * frames wholly inside one are managed, every other frame (a partial frame
 * at a region edge, reserved/ROM/MMIO ranges) is "unusable" and never
 * allocated. At boot the vmkernel claims its own frames (the first N
 * frames, and/or explicit byte ranges): they are owned by "kernel".
 *
 * Data structures (a classic bitmap allocator, as in xv6's successor
 * kernels and ESX's vmkernel page pools):
 *   - `owner`: one Int32 per frame, the owner table; UNUSABLE, FREE,
 *     KERNEL, SHARED (reserved for transparent page sharing, below), or a
 *     VM's code (>= FIRST_VM; codes map to VM ids).
 *   - `freeMap`: one bit per frame, set = free; `cursor` is the lowest
 *     32-frame word that may hold a free bit. Allocation scans forward from
 *     the cursor (amortised O(1): the cursor only moves back on a free, to
 *     the freed word) and takes the lowest free frame, so the same sequence
 *     of requests always yields the same frames (reproducible runs).
 *
 * Invariants (checkInvariants, exercised by the property tests):
 *   - every managed frame is in exactly one state: free, or owned by exactly
 *     one owner (a VM or "kernel"); its bit in freeMap is set iff it is free;
 *   - free + sum(owned per owner) = usableFrames;
 *   - an allocated frame reads as zeros (it is zeroed on allocation, so one
 *     VM never sees another's data); frees do not scrub.
 *
 * Future (DESIGN.md kernel/: page sharing, ballooning, swapping): the
 * SHARED state is where a frame shared read-only by several VMs will live
 * (with a reference count kept beside the owner table); `stateOf` already
 * reports it, nothing produces it yet. Ballooning and swapping only free
 * and allocate frames through this API; they need no new state here.
 *
 * Errors are returned as values (errors.ts), never thrown; a bad argument
 * (a frame number outside RAM) or a firmware map that does not fit the RAM
 * is a hypervisor bug and throws MemoryInvariantError.
 */
import type { MemoryRegion } from "../../hw/firmware/description.ts"
import {
  DoubleFree,
  type FreeError,
  hex,
  MemoryInvariantError,
  NotFrameOwner,
  OutOfMemory,
  type Owner
} from "./errors.ts"

export const FRAME_SHIFT = 12
export const FRAME_SIZE = 1 << FRAME_SHIFT

/** Owner-table codes. VM codes start at FIRST_VM. */
const UNUSABLE = -1
const FREE = 0
const KERNEL = 1
/** Reserved for transparent page sharing: a read-only frame several VMs map (not produced yet). */
const SHARED = 2
const FIRST_VM = 3

/** The frames the vmkernel claims at boot. */
export interface KernelReservation {
  /** Frames 0..firstFrames-1 (the usable ones among them): the kernel image, its stacks and tables. */
  readonly firstFrames?: number
  /** Byte ranges [base, base + length); every usable frame they touch becomes the kernel's. */
  readonly ranges?: ReadonlyArray<{ readonly base: number; readonly length: number }>
}

/** What a frame is, as the owner table says. */
export type FrameState =
  | { readonly _tag: "Unusable" }
  | { readonly _tag: "Free" }
  | { readonly _tag: "Owned"; readonly owner: Owner }
  /** Transparent page sharing (future): read-only, copy-on-write, `refs` VMs map it. */
  | { readonly _tag: "Shared"; readonly refs: number }

const UNUSABLE_STATE: FrameState = { _tag: "Unusable" }
const FREE_STATE: FrameState = { _tag: "Free" }

export class FrameAllocator {
  /** Machine RAM; frame f is bytes [f * 4096, f * 4096 + 4096). */
  readonly ram: Uint8Array
  /** Frames of RAM, usable or not (ram.length / 4096). */
  readonly frameCount: number
  /** Frames this allocator manages (usable RAM, kernel frames included). */
  readonly usableFrames: number
  private readonly owner: Int32Array
  private readonly freeMap: Uint32Array
  private cursor = 0
  private free_ = 0
  /** Owned frames per owner code. */
  private readonly counts = new Map<number, number>()
  private readonly codeOf = new Map<Owner, number>([["kernel", KERNEL]])
  private readonly nameOf = new Map<number, Owner>([[KERNEL, "kernel"]])
  private nextCode = FIRST_VM

  constructor(ram: Uint8Array, regions: ReadonlyArray<MemoryRegion>, kernel: KernelReservation = {}) {
    this.ram = ram
    this.frameCount = Math.floor(ram.length / FRAME_SIZE)
    this.owner = new Int32Array(this.frameCount).fill(UNUSABLE)
    this.freeMap = new Uint32Array(Math.ceil(this.frameCount / 32))
    let usable = 0
    for (const r of regions) {
      if (r.type !== "usable") continue
      const first = Math.ceil(r.base / FRAME_SIZE)
      const end = Math.floor((r.base + r.length) / FRAME_SIZE)
      if (end > this.frameCount)
        throw new MemoryInvariantError(
          `the firmware's usable region [${hex(r.base)}, +${hex(r.length)}) extends past the ${this.frameCount} frames of RAM`
        )
      for (let f = first; f < end; f++) {
        if (this.owner[f] !== UNUSABLE) continue
        this.owner[f] = FREE
        this.setFree(f, true)
        usable++
      }
    }
    this.usableFrames = usable
    this.free_ = usable
    const claim = (f: number) => {
      if (f < 0 || f >= this.frameCount || this.owner[f] !== FREE) return
      this.owner[f] = KERNEL
      this.setFree(f, false)
      this.free_--
      this.bump(KERNEL, 1)
    }
    for (let f = 0; f < Math.min(kernel.firstFrames ?? 0, this.frameCount); f++) claim(f)
    for (const range of kernel.ranges ?? []) {
      const end = Math.ceil((range.base + range.length) / FRAME_SIZE)
      for (let f = Math.floor(range.base / FRAME_SIZE); f < end; f++) claim(f)
    }
  }

  /** Frames free right now. */
  get freeFrames(): number {
    return this.free_
  }

  /**
   * The lowest free frame, zeroed, now owned by `owner`. Amortised O(1):
   * scans forward from the cursor word.
   */
  allocate(owner: Owner): number | OutOfMemory {
    const map = this.freeMap
    for (let w = this.cursor; w < map.length; w++) {
      const bits = map[w]!
      if (bits === 0) continue
      const low = bits & -bits
      map[w] = bits & ~low
      this.cursor = w
      const frame = w * 32 + (31 - Math.clz32(low))
      const code = this.codeFor(owner)
      this.owner[frame] = code
      this.free_--
      this.bump(code, 1)
      this.ram.fill(0, frame * FRAME_SIZE, frame * FRAME_SIZE + FRAME_SIZE)
      return frame
    }
    this.cursor = map.length
    return new OutOfMemory({ owner, requested: 1, available: 0 })
  }

  /** Return `frame`, which `owner` must own, to the free pool. */
  free(frame: number, owner: Owner): undefined | FreeError {
    this.checkFrame(frame)
    const code = this.owner[frame]!
    if (code === FREE) return new DoubleFree({ frame, owner })
    if (code === UNUSABLE) return new NotFrameOwner({ frame, owner, actualOwner: "nobody (not usable RAM)" })
    if (code === SHARED) return new NotFrameOwner({ frame, owner, actualOwner: "the page-sharing pool" })
    if (this.codeOf.get(owner) !== code) return new NotFrameOwner({ frame, owner, actualOwner: this.nameOf.get(code)! })
    this.owner[frame] = FREE
    this.setFree(frame, true)
    this.free_++
    this.bump(code, -1)
    const w = frame >>> 5
    if (w < this.cursor) this.cursor = w
    return undefined
  }

  /** The owner of `frame`, or undefined when it is free, shared or not usable RAM. */
  ownerOf(frame: number): Owner | undefined {
    if (!Number.isInteger(frame) || frame < 0 || frame >= this.frameCount) return undefined
    return this.nameOf.get(this.owner[frame]!)
  }

  /** Does `owner` own `frame`? (The EPT builder's check, O(1).) */
  isOwnedBy(frame: number, owner: Owner): boolean {
    if (!Number.isInteger(frame) || frame < 0 || frame >= this.frameCount) return false
    const code = this.codeOf.get(owner)
    return code !== undefined && this.owner[frame] === code
  }

  stateOf(frame: number): FrameState {
    this.checkFrame(frame)
    const code = this.owner[frame]!
    if (code === UNUSABLE) return UNUSABLE_STATE
    if (code === FREE) return FREE_STATE
    if (code === SHARED) return { _tag: "Shared", refs: 0 }
    return { _tag: "Owned", owner: this.nameOf.get(code)! }
  }

  /** Frames `owner` owns (O(1)). */
  ownedCount(owner: Owner): number {
    const code = this.codeOf.get(owner)
    return code === undefined ? 0 : (this.counts.get(code) ?? 0)
  }

  /** Every frame `owner` owns, ascending (a scan of the owner table: queries and leak checks). */
  framesOf(owner: Owner): Array<number> {
    const code = this.codeOf.get(owner)
    const out: Array<number> = []
    if (code === undefined) return out
    for (let f = 0; f < this.frameCount; f++) if (this.owner[f] === code) out.push(f)
    return out
  }

  /** Owners holding at least one frame, with their counts ("kernel" included). */
  owners(): Array<{ readonly owner: Owner; readonly frames: number }> {
    return [...this.counts].map(([code, frames]) => ({ owner: this.nameOf.get(code)!, frames }))
  }

  /** Every broken invariant, as sentences (empty when all hold). A full scan: for tests and debug checks. */
  checkInvariants(): Array<string> {
    const problems: Array<string> = []
    const seen = new Map<number, number>()
    let free = 0
    let usable = 0
    for (let f = 0; f < this.frameCount; f++) {
      const code = this.owner[f]!
      const bit = ((this.freeMap[f >>> 5]! >>> (f & 31)) & 1) === 1
      if (bit !== (code === FREE)) problems.push(`frame ${hex(f)}: free bit ${bit} but owner code ${code}`)
      if (code === UNUSABLE) continue
      usable++
      if (code === FREE) {
        free++
        if (f >>> 5 < this.cursor) problems.push(`frame ${hex(f)} is free below the cursor word ${this.cursor}`)
      } else seen.set(code, (seen.get(code) ?? 0) + 1)
    }
    if (usable !== this.usableFrames) problems.push(`${usable} usable frames, expected ${this.usableFrames}`)
    if (free !== this.free_) problems.push(`${free} free frames in the table, counter says ${this.free_}`)
    let owned = 0
    for (const [code, n] of seen) {
      owned += n
      if (this.counts.get(code) !== n)
        problems.push(`owner ${this.nameOf.get(code)}: ${n} frames, counter says ${this.counts.get(code)}`)
    }
    for (const [code, n] of this.counts)
      if (!seen.has(code)) problems.push(`owner ${this.nameOf.get(code)}: counter says ${n}, table has none`)
    if (free + owned !== this.usableFrames)
      problems.push(`free ${free} + owned ${owned} != usable ${this.usableFrames}`)
    return problems
  }

  private checkFrame(frame: number): void {
    if (!Number.isInteger(frame) || frame < 0 || frame >= this.frameCount)
      throw new MemoryInvariantError(`frame ${frame} is not a frame of the ${this.frameCount}-frame RAM`)
  }

  private setFree(frame: number, free: boolean): void {
    const w = frame >>> 5
    const bit = 1 << (frame & 31)
    this.freeMap[w] = free ? this.freeMap[w]! | bit : this.freeMap[w]! & ~bit
  }

  private codeFor(owner: Owner): number {
    let code = this.codeOf.get(owner)
    if (code === undefined) {
      code = this.nextCode++
      this.codeOf.set(owner, code)
      this.nameOf.set(code, owner)
    }
    return code
  }

  /** Adjust an owner's count; a VM's code is forgotten when it owns nothing (ids can be reused). */
  private bump(code: number, by: number): void {
    const n = (this.counts.get(code) ?? 0) + by
    if (n !== 0) {
      this.counts.set(code, n)
      return
    }
    this.counts.delete(code)
    if (code >= FIRST_VM) {
      this.codeOf.delete(this.nameOf.get(code)!)
      this.nameOf.delete(code)
    }
  }
}
