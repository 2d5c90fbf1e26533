/**
 * The vmkernel's machine memory manager (DESIGN.md kernel/ "Machine memory
 * manager"), the pure core: the frame allocator (frames.ts), one pool per
 * VM with ESX reservation / limit / shares (pools.ts), and each VM's EPT
 * (ept-builder.ts), whose table frames are charged to the VM's pool.
 *
 * Lazy backing, the path an EPT violation takes (SDM 3C 29.3.3.2):
 *
 *   guest touches gpa -> EPT violation exit -> VMM:
 *     frame = backGuestPage(vm, gpa >>> 12)   first touch: a zeroed frame; after: the same one
 *     ept(vm).map(gpa >>> 12, frame, perms)   (mapGuestPage does both)
 *     -> VM entry, the access retries and succeeds
 *
 * Admission control and the "promised" accounting are pools.ts's; this file
 * keeps the invariant `free >= promised` by routing every allocation (VM
 * guest frames, VM table frames, kernel frames) through one check.
 *
 * Invariants (checkInvariants; the property tests run it after every step):
 *   - the allocator's invariants (one owner per frame, free + owned = total);
 *   - for every pool: the frames it records (guest map values + EPT tables)
 *     are exactly the frames the allocator says it owns, all distinct;
 *     owned <= limit;
 *   - every EPT leaf of a VM maps one of its guest frames (so a freed frame
 *     is never reachable: unbackGuestPage unmaps before it frees);
 *   - free frames >= the sum of reservedUnused (reservations stay honest);
 *   - release(vm) leaves the VM owning nothing (a leak is a panic).
 *
 * Not thread-safe and need not be: each operation is one synchronous step,
 * and service.ts runs each inside a single Effect.sync, so fibers never see
 * a half-done operation.
 */
import type { MemoryRegion } from "../../hw/firmware/description.ts"
import { EPT_RWX, EptBuilder, GFN_LIMIT } from "./ept-builder.ts"
import {
  AdmissionRefused,
  type AllocationError,
  type FreeError,
  hex,
  type InvalidPoolSpec,
  MemoryInvariantError,
  OutOfMemory,
  UnknownVm,
  VmAlreadyExists,
  type VmId
} from "./errors.ts"
import { FrameAllocator, type KernelReservation } from "./frames.ts"
import { checkAllocation, type PoolSpec, type PoolUsage, VmPool, validatePoolSpec } from "./pools.ts"

/** The whole machine's memory at a glance. */
export interface MemoryStats {
  /** Frames the manager manages (usable RAM). */
  readonly totalFrames: number
  readonly freeFrames: number
  readonly kernelFrames: number
  /** Frames promised to reservations but not yet used (sum over VMs). */
  readonly reservedUnused: number
  /** freeFrames - reservedUnused: what a new reservation or a growing VM can take. */
  readonly unreservedFree: number
  readonly vms: ReadonlyArray<PoolUsage>
}

interface PoolState {
  readonly pool: VmPool
  /** Which admission of this VM id this is (ids may be reused after release). */
  readonly incarnation: number
  ept: EptBuilder | undefined
  /** Shadow page-table frames handed out by `shadowFrames` (vmm/shadow keeps and reuses them until release). */
  readonly shadow: Array<number>
}

export class MemoryManager {
  readonly frames: FrameAllocator
  private readonly pools = new Map<VmId, PoolState>()
  /** The pools with a reservation (the others promise nothing): what `reservedUnused` sums, so an allocation costs O(1) with thousands of VMs. */
  private readonly reserving = new Set<VmPool>()
  private admissions = 0

  constructor(ram: Uint8Array, regions: ReadonlyArray<MemoryRegion>, kernel: KernelReservation = {}) {
    this.frames = new FrameAllocator(ram, regions, kernel)
  }

  // ---- pools ----

  /** Admit a VM: refuses it (AdmissionRefused) unless its whole reservation can be promised now. */
  createPool(vm: VmId, spec: PoolSpec): PoolUsage | InvalidPoolSpec | VmAlreadyExists | AdmissionRefused {
    const invalid = validatePoolSpec(vm, spec)
    if (invalid !== undefined) return invalid
    if (this.pools.has(vm)) return new VmAlreadyExists({ vm })
    const available = this.unreservedFree()
    if (spec.reservation > available) return new AdmissionRefused({ vm, reservation: spec.reservation, available })
    const pool = new VmPool(vm, spec)
    this.pools.set(vm, { pool, incarnation: ++this.admissions, ept: undefined, shadow: [] })
    if (spec.reservation > 0) this.reserving.add(pool)
    return pool.usage()
  }

  hasPool(vm: VmId): boolean {
    return this.pools.has(vm)
  }

  /** Tells apart two pools of the same VM id over time (a scope releases only the pool it created). */
  incarnation(vm: VmId): number | undefined {
    return this.pools.get(vm)?.incarnation
  }

  /** Return every frame of `vm` (guest frames, EPT and shadow tables) and forget its pool. Returns the frames freed. */
  release(vm: VmId): number | UnknownVm {
    const state = this.pools.get(vm)
    if (state === undefined) return new UnknownVm({ vm })
    const { pool } = state
    const frames = [...pool.guest.values(), ...(state.ept?.tableFrames() ?? []), ...state.shadow]
    state.ept?.retire()
    for (const frame of frames) this.must(this.frames.free(frame, vm))
    this.pools.delete(vm)
    this.reserving.delete(pool)
    const leaked = this.frames.ownedCount(vm)
    if (leaked !== 0)
      throw new MemoryInvariantError(
        `VM ${vm} released but still owns ${leaked} frame(s): ${this.frames.framesOf(vm).map(hex).join(" ")}`
      )
    return frames.length
  }

  // ---- lazy backing ----

  /** The machine frame backing `gfn`: allocated and zeroed on first touch, the same frame afterwards. */
  backGuestPage(vm: VmId, gfn: number): number | AllocationError | UnknownVm {
    const state = this.pools.get(vm)
    if (state === undefined) return new UnknownVm({ vm })
    checkGfn(gfn)
    const existing = state.pool.guest.get(gfn)
    if (existing !== undefined) return existing
    const frame = this.allocateFor(state.pool)
    if (typeof frame === "number") state.pool.guest.set(gfn, frame)
    return frame
  }

  /** The EPT violation path in one call: back `gfn` and map it with `perms`. Returns the frame. */
  mapGuestPage(vm: VmId, gfn: number, perms: number = EPT_RWX): number | AllocationError | UnknownVm {
    const frame = this.backGuestPage(vm, gfn)
    if (typeof frame !== "number") return frame
    const ept = this.ept(vm)
    if (!(ept instanceof EptBuilder)) return ept
    const mapped = ept.map(gfn, frame, perms)
    return mapped ?? frame
  }

  /**
   * Give back `gfn`'s frame (what ballooning and swapping will do): unmapped
   * from the EPT first, so the guest can no longer reach it, then freed.
   * Returns the frame freed, or undefined if `gfn` was not backed.
   */
  unbackGuestPage(vm: VmId, gfn: number): number | undefined | UnknownVm {
    const state = this.pools.get(vm)
    if (state === undefined) return new UnknownVm({ vm })
    checkGfn(gfn)
    const frame = state.pool.guest.get(gfn)
    if (frame === undefined) return undefined
    const mappedAt = state.ept?.gfnOf(frame)
    if (mappedAt !== undefined) state.ept!.unmap(mappedAt)
    state.pool.guest.delete(gfn)
    this.must(this.frames.free(frame, vm))
    return frame
  }

  /** The frame backing `gfn`, if any (no allocation). */
  guestFrame(vm: VmId, gfn: number): number | undefined {
    return this.pools.get(vm)?.pool.guest.get(gfn)
  }

  /** `vm`'s EPT, made (its PML4 allocated from the pool) on first use. */
  ept(vm: VmId): EptBuilder | AllocationError | UnknownVm {
    const state = this.pools.get(vm)
    if (state === undefined) return new UnknownVm({ vm })
    if (state.ept !== undefined) return state.ept
    const { pool } = state
    const frames = this.frames
    const made = EptBuilder.create({
      vm,
      ram: frames.ram,
      allocateTable: () => {
        const frame = this.allocateFor(pool)
        if (typeof frame === "number") pool.tableFrames++
        return frame
      },
      owns: (frame) => frames.isOwnedBy(frame, vm)
    })
    if (made instanceof EptBuilder) state.ept = made
    return made
  }

  /**
   * Where `vm`'s shadow page tables (vmm/shadow) get their frames: zeroed
   * machine frames charged to its pool like EPT tables (limit, reservation),
   * owned by it, and returned with it on release.
   */
  shadowFrames(vm: VmId): { readonly ram: Uint8Array; allocateTable(): number | AllocationError } | UnknownVm {
    const state = this.pools.get(vm)
    if (state === undefined) return new UnknownVm({ vm })
    const { pool, shadow } = state
    return {
      ram: this.frames.ram,
      allocateTable: () => {
        const frame = this.allocateFor(pool)
        if (typeof frame !== "number") return frame
        pool.tableFrames++
        shadow.push(frame)
        return frame
      }
    }
  }

  /** `vm`'s EPT if it has been made (no allocation). */
  existingEpt(vm: VmId): EptBuilder | undefined | UnknownVm {
    const state = this.pools.get(vm)
    return state === undefined ? new UnknownVm({ vm }) : state.ept
  }

  // ---- the kernel's own frames ----

  /** A zeroed frame for the vmkernel, from unreserved free memory only. */
  allocateKernelFrame(): number | OutOfMemory {
    const available = this.unreservedFree()
    if (available < 1) return new OutOfMemory({ owner: "kernel", requested: 1, available })
    return this.frames.allocate("kernel")
  }

  freeKernelFrame(frame: number): undefined | FreeError {
    return this.frames.free(frame, "kernel")
  }

  // ---- queries ----

  usage(vm: VmId): PoolUsage | UnknownVm {
    return this.pools.get(vm)?.pool.usage() ?? new UnknownVm({ vm })
  }

  /** Frames promised to reservations and not used yet, over every VM. */
  reservedUnused(): number {
    let promised = 0
    for (const pool of this.reserving) promised += pool.reservedUnused
    return promised
  }

  unreservedFree(): number {
    return this.frames.freeFrames - this.reservedUnused()
  }

  stats(): MemoryStats {
    const reservedUnused = this.reservedUnused()
    return {
      totalFrames: this.frames.usableFrames,
      freeFrames: this.frames.freeFrames,
      kernelFrames: this.frames.ownedCount("kernel"),
      reservedUnused,
      unreservedFree: this.frames.freeFrames - reservedUnused,
      vms: [...this.pools.values()].map(({ pool }) => pool.usage())
    }
  }

  /** Every broken invariant, as sentences (empty when all hold). Full scans: tests and debug checks. */
  checkInvariants(): Array<string> {
    const problems = this.frames.checkInvariants()
    let promised = 0
    for (const { pool, ept, shadow } of this.pools.values()) {
      const vm = pool.vm
      promised += pool.reservedUnused
      const recorded = [...pool.guest.values(), ...(ept?.tableFrames() ?? []), ...shadow]
      const distinct = new Set(recorded)
      if (distinct.size !== recorded.length) problems.push(`VM ${vm}: a frame is recorded twice`)
      const owned = this.frames.framesOf(vm)
      if (owned.length !== recorded.length || owned.some((f) => !distinct.has(f)))
        problems.push(`VM ${vm}: records ${recorded.length} frame(s), the allocator says it owns ${owned.length}`)
      const tables = (ept?.tableFrames().length ?? 0) + shadow.length
      if (tables !== pool.tableFrames)
        problems.push(`VM ${vm}: ${pool.tableFrames} table frame(s) counted, the EPT and shadow tables have ${tables}`)
      if (pool.owned > pool.spec.limit) problems.push(`VM ${vm}: owns ${pool.owned} > limit ${pool.spec.limit}`)
      const guestFrames = new Set(pool.guest.values())
      for (const [frame, gfn] of ept?.mappings() ?? []) {
        if (!guestFrames.has(frame))
          problems.push(`VM ${vm}: gfn ${hex(gfn)} maps ${hex(frame)}, not a guest frame of it`)
        if (ept!.lookup(gfn)?.frame !== frame)
          problems.push(`VM ${vm}: the tables do not map gfn ${hex(gfn)} to ${hex(frame)}`)
      }
    }
    if (this.frames.freeFrames < promised)
      problems.push(`${this.frames.freeFrames} free frame(s) cannot honour ${promised} promised to reservations`)
    return problems
  }

  // ---- internals ----

  /** One frame for `pool`, through the reservation/limit policy. */
  private allocateFor(pool: VmPool): number | AllocationError {
    const refused = checkAllocation(pool, 1, this.unreservedFree())
    if (refused !== undefined) return refused
    const frame = this.frames.allocate(pool.vm)
    if (typeof frame !== "number")
      throw new MemoryInvariantError(`VM ${pool.vm}: allocator empty although the policy allowed a frame`)
    return frame
  }

  private must(result: undefined | FreeError): void {
    if (result !== undefined) throw new MemoryInvariantError(result.message)
  }
}

const checkGfn = (gfn: number): void => {
  if (!Number.isInteger(gfn) || gfn < 0 || gfn >= GFN_LIMIT)
    throw new MemoryInvariantError(`gfn ${gfn} is outside the 32-bit guest-physical space`)
}
