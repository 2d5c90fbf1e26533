/**
 * Per-VM memory pools with ESX resource-management semantics (VMware
 * "vSphere Resource Management": reservation, limit, shares; and Carl
 * Waldspurger, "Memory Resource Management in VMware ESX Server", OSDI
 * 2002). All quantities are in 4 KiB machine frames.
 *
 *   - reservation: frames guaranteed to the VM. Admission control admits a
 *     VM only if its whole reservation can be met *now* from free frames
 *     nobody else has been promised; from then on the VM's first
 *     `reservation` frames never fail for lack of memory.
 *   - limit: the most frames the VM may ever own. Guest frames AND the
 *     frames of its EPT page tables count (the VM's address space costs
 *     memory, as on ESX where per-VM overhead memory is charged to the VM):
 *     mapping the first guest page takes 4 more frames (PML4, PDPT, PD, PT),
 *     and one more PT per further 2 MiB of guest-physical space touched.
 *   - shares: the VM's relative claim when memory is overcommitted; recorded
 *     here, used by reclamation (not implemented yet, see below).
 *
 * The accounting ("promised" = reserved but not yet used):
 *
 *   reservedUnused(vm) = max(0, reservation - owned)
 *   promised           = sum over VMs of reservedUnused(vm)
 *   unreservedFree     = free - promised            (invariant: >= 0)
 *
 * An allocation for a VM under its reservation always succeeds (it uses a
 * frame it was promised); above it, it needs an unreserved free frame. The
 * kernel's own allocations also draw from unreservedFree only.
 *
 * How reclamation will use shares (the design this layout leaves room for):
 *   - When unreservedFree runs out, ESX reclaims from the VM with the lowest
 *     shares-per-frame ratio, shares / (owned * (f + k(1 - f))) with f the
 *     VM's active fraction and k the idle-memory tax factor (Waldspurger
 *     s.5.2): a VM that owns much and uses little pays first. Never below
 *     its reservation: a pool keeps `owned >= reservation` under pressure.
 *   - Ballooning: a driver in the guest "inflates" by pinning guest pages
 *     and reporting their gfns; the manager calls unbackGuestPage for each
 *     (EPT unmap + free), so `guest` just loses entries.
 *   - Hypervisor swapping: pick cold pages (the EPT's accessed bits, see
 *     EptBuilder.lookup), write them to the datastore, unback them, and
 *     remember the slot: the `guest` map's values become a tagged entry
 *     (backed frame | swapped slot | shared frame), and backGuestPage reads a
 *     swapped page back in on the next EPT violation.
 *   - Transparent page sharing: a scanner hashes guest frames; identical
 *     frames collapse onto one frame in the allocator's SHARED state with a
 *     refcount, mapped read-only into every sharer's EPT; a write faults and
 *     breaks the share with a private copy (copy-on-write). A shared frame
 *     counts 1/refs against each sharer (ESX counts it as "shared" memory).
 */
import { type AllocationError, InvalidPoolSpec, MemoryLimitExceeded, OutOfMemory, type VmId } from "./errors.ts"

/** A VM's memory entitlement, in 4 KiB frames. */
export interface PoolSpec {
  /** Frames guaranteed (admission control); 0 for none. */
  readonly reservation: number
  /** Most frames the VM may own, page tables included; Infinity for unlimited. */
  readonly limit: number
  /** Relative weight under contention (ESX: low 500, normal 1000, high 2000 per GiB). */
  readonly shares: number
}

/** Frames in `mib` MiB (256 frames per MiB). */
export const mibToFrames = (mib: number): number => mib * 256

/** What a pool holds, for queries. */
export interface PoolUsage {
  readonly vm: VmId
  readonly reservation: number
  readonly limit: number
  readonly shares: number
  /** Frames the VM owns: guestFrames + tableFrames. */
  readonly owned: number
  /** Frames backing guest-physical pages. */
  readonly guestFrames: number
  /** Frames holding the VM's EPT and shadow page tables. */
  readonly tableFrames: number
  /** Frames still promised to the VM by its reservation. */
  readonly reservedUnused: number
}

const isCount = (n: number): boolean => Number.isInteger(n) && n >= 0

/** Why `spec` is not a valid pool spec for `vm`, or undefined. */
export const validatePoolSpec = (vm: VmId, spec: PoolSpec): InvalidPoolSpec | undefined => {
  const bad = (reason: string) => new InvalidPoolSpec({ vm, reason })
  if (vm === "kernel" || vm.length === 0) return bad(`"${vm}" cannot name a VM`)
  if (!isCount(spec.reservation)) return bad(`reservation ${spec.reservation} is not a whole number of frames`)
  if (!(isCount(spec.limit) || spec.limit === Number.POSITIVE_INFINITY))
    return bad(`limit ${spec.limit} is not a whole number of frames (or Infinity)`)
  if (spec.limit < spec.reservation) return bad(`limit ${spec.limit} is below the reservation ${spec.reservation}`)
  if (!(Number.isFinite(spec.shares) && spec.shares > 0)) return bad(`shares ${spec.shares} must be > 0`)
  return undefined
}

/** One VM's pool: its spec and the frames it owns (the allocator's owner table is the source of truth). */
export class VmPool {
  readonly vm: VmId
  readonly spec: PoolSpec
  /** gfn -> machine frame, for every guest page backed so far. */
  readonly guest = new Map<number, number>()
  /** Frames holding EPT page tables (the EPT builder's). */
  tableFrames = 0

  constructor(vm: VmId, spec: PoolSpec) {
    this.vm = vm
    this.spec = spec
  }

  get owned(): number {
    return this.guest.size + this.tableFrames
  }

  get reservedUnused(): number {
    return Math.max(0, this.spec.reservation - this.owned)
  }

  usage(): PoolUsage {
    return {
      vm: this.vm,
      reservation: this.spec.reservation,
      limit: this.spec.limit,
      shares: this.spec.shares,
      owned: this.owned,
      guestFrames: this.guest.size,
      tableFrames: this.tableFrames,
      reservedUnused: this.reservedUnused
    }
  }
}

/**
 * May `pool` take `n` more frames, given `unreservedFree`? The policy in
 * one place: the limit first (a VM over its limit is refused whatever the
 * free memory), then its own reservation, then the unreserved frames.
 */
export const checkAllocation = (pool: VmPool, n: number, unreservedFree: number): AllocationError | undefined => {
  if (pool.owned + n > pool.spec.limit)
    return new MemoryLimitExceeded({ vm: pool.vm, limit: pool.spec.limit, owned: pool.owned, requested: n })
  const fromReservation = Math.min(n, pool.reservedUnused)
  if (n - fromReservation > unreservedFree)
    return new OutOfMemory({ owner: pool.vm, requested: n, available: unreservedFree })
  return undefined
}
