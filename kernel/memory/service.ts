/**
 * MachineMemory: the machine memory manager as an Effect service (STYLE.md:
 * interface + Context.Service class + `make` / `layer`), over the pure core
 * in memory-manager.ts.
 *
 * `make(machine)` reads the memory map from the firmware table in the
 * machine's ROM (as Kernel.boot will: the kernel trusts only what the
 * firmware says), claims the kernel's frames, and wraps each operation in a
 * single synchronous step, so fibers never see a half-done operation.
 * Refusals are typed errors (errors.ts); a broken invariant (mapping a
 * frame the VM does not own, a leak at release) is a defect: a hypervisor
 * bug, not something a caller can handle.
 *
 * A VM is a scoped resource: `pool(vm, spec)` admits the VM (or fails with
 * AdmissionRefused) and registers a finalizer that returns every frame of
 * the VM (guest frames and EPT tables) when the scope closes. The VM's
 * scope must stop its vCPU fibers before this finalizer runs (finalizers
 * run in reverse order of acquisition, so acquire the pool first): a vCPU
 * must never run on an EPT whose frames are free.
 */
import { Context, Effect, Layer, type Scope } from "effect"
import type { MemoryRegion } from "../../hw/firmware/description.ts"
import { decodeFirmwareTable } from "../../hw/firmware/table.ts"
import { EPT_RWX, EptBuilder, type EptMapping, type EptpOptions } from "./ept-builder.ts"
import {
  type AdmissionRefused,
  type AllocationError,
  type FreeError,
  type InvalidPoolSpec,
  type MemoryError,
  MemoryInvariantError,
  type OutOfMemory,
  UnknownVm,
  type VmAlreadyExists,
  type VmId
} from "./errors.ts"
import type { KernelReservation } from "./frames.ts"
import { MemoryManager, type MemoryStats } from "./memory-manager.ts"
import type { PoolSpec, PoolUsage } from "./pools.ts"

/** What the service needs of the machine (hw/machine/machine.ts Machine has both). */
export interface MachineMemoryHost {
  readonly ram: Uint8Array
  /** The firmware ROM, whose table holds the memory map. */
  readonly firmware: Uint8Array
}

export interface MachineMemoryOptions {
  /** The kernel's own frames (default: the first 1 MiB, DEFAULT_KERNEL_FRAMES). */
  readonly kernel?: KernelReservation
}

/** The vmkernel keeps the first 1 MiB (real-mode area, its image and boot structures). */
export const DEFAULT_KERNEL_FRAMES = 256

export type PoolError = InvalidPoolSpec | VmAlreadyExists | AdmissionRefused

/** One VM's memory, bound to its id: what the VMM of that VM uses. */
export interface VmMemory {
  readonly vm: VmId
  /** The frame backing `gfn` (zeroed on first touch). */
  readonly backGuestPage: (gfn: number) => Effect.Effect<number, AllocationError>
  /** The EPT-violation path: back `gfn` and map it with `perms` (default RWX); the frame. */
  readonly mapGuestPage: (gfn: number, perms?: number) => Effect.Effect<number, AllocationError>
  /** Free `gfn`'s frame (unmapped first); the frame freed, or undefined. */
  readonly unbackGuestPage: (gfn: number) => Effect.Effect<number | undefined>
  readonly map: (gfn: number, frame: number, perms?: number) => Effect.Effect<void, AllocationError>
  readonly unmap: (gfn: number) => Effect.Effect<number | undefined>
  readonly lookup: (gfn: number) => Effect.Effect<EptMapping | undefined>
  /** The EPTP for the VMCS (makes the EPT's PML4 if there is none yet). */
  readonly eptp: (options?: EptpOptions) => Effect.Effect<number, AllocationError>
  readonly usage: Effect.Effect<PoolUsage>
}

export interface MachineMemoryShape {
  /** Admit `vm` for the life of the current scope; closing it returns every frame. */
  readonly pool: (vm: VmId, spec: PoolSpec) => Effect.Effect<VmMemory, PoolError, Scope.Scope>
  /** Admit `vm` with no scope: the caller must `release` it. */
  readonly createPool: (vm: VmId, spec: PoolSpec) => Effect.Effect<VmMemory, PoolError>
  /** Return every frame of `vm`; the count returned. */
  readonly release: (vm: VmId) => Effect.Effect<number, UnknownVm>
  readonly backGuestPage: (vm: VmId, gfn: number) => Effect.Effect<number, AllocationError | UnknownVm>
  readonly unbackGuestPage: (vm: VmId, gfn: number) => Effect.Effect<number | undefined, UnknownVm>
  readonly map: (
    vm: VmId,
    gfn: number,
    frame: number,
    perms?: number
  ) => Effect.Effect<void, AllocationError | UnknownVm>
  readonly unmap: (vm: VmId, gfn: number) => Effect.Effect<number | undefined, UnknownVm>
  readonly lookup: (vm: VmId, gfn: number) => Effect.Effect<EptMapping | undefined, UnknownVm>
  readonly eptp: (vm: VmId, options?: EptpOptions) => Effect.Effect<number, AllocationError | UnknownVm>
  readonly usage: (vm: VmId) => Effect.Effect<PoolUsage, UnknownVm>
  readonly stats: Effect.Effect<MemoryStats>
  readonly allocateKernelFrame: Effect.Effect<number, OutOfMemory>
  readonly freeKernelFrame: (frame: number) => Effect.Effect<void, FreeError>
  /** The pure core, for the kernel's own synchronous paths and tests (…Unsafe: no Effect around it). */
  readonly managerUnsafe: MemoryManager
}

const memoryErrorTags: ReadonlySet<string> = new Set<MemoryError["_tag"]>([
  "OutOfMemory",
  "DoubleFree",
  "NotFrameOwner",
  "MemoryLimitExceeded",
  "AdmissionRefused",
  "InvalidPoolSpec",
  "VmAlreadyExists",
  "UnknownVm"
])

const isMemoryError = (u: unknown): u is MemoryError =>
  typeof u === "object" && u !== null && "_tag" in u && memoryErrorTags.has(String(u._tag))

/** Run one core operation as one step: an error value fails, anything thrown is a defect. */
const lift = <R>(f: () => R): Effect.Effect<Exclude<R, MemoryError>, Extract<R, MemoryError>> =>
  Effect.suspend(() => {
    const r = f()
    return isMemoryError(r) ? Effect.fail(r as Extract<R, MemoryError>) : Effect.succeed(r as Exclude<R, MemoryError>)
  })

/** Build the service over a machine: the memory map comes from its firmware table. */
const make = (machine: MachineMemoryHost, options: MachineMemoryOptions = {}): Effect.Effect<MachineMemoryShape> =>
  Effect.sync(() => {
    const decoded = decodeFirmwareTable(machine.firmware)
    if (!decoded.ok) throw new MemoryInvariantError(`cannot read the memory map: ${decoded.error.message}`)
    return makeWith(machine.ram, decoded.table.memory, options)
  })

/** The service over RAM and a memory map given directly (tests, tools). */
const makeWith = (
  ram: Uint8Array,
  regions: ReadonlyArray<MemoryRegion>,
  options: MachineMemoryOptions = {}
): MachineMemoryShape => {
  const mm = new MemoryManager(ram, regions, options.kernel ?? { firstFrames: DEFAULT_KERNEL_FRAMES })
  const eptOf = (vm: VmId) => lift(() => mm.ept(vm))
  const withEpt = <A, E>(vm: VmId, f: (ept: EptBuilder) => A | E) =>
    Effect.flatMap(eptOf(vm), (ept) => lift(() => f(ept)))

  const backGuestPage = (vm: VmId, gfn: number) => lift(() => mm.backGuestPage(vm, gfn))
  const unbackGuestPage = (vm: VmId, gfn: number) => lift(() => mm.unbackGuestPage(vm, gfn))
  const map = (vm: VmId, gfn: number, frame: number, perms: number = EPT_RWX) =>
    withEpt(vm, (ept) => ept.map(gfn, frame, perms))
  // unmap and lookup never make an EPT: without one, nothing is mapped
  const unmap = (vm: VmId, gfn: number) =>
    lift(() => {
      const ept = mm.existingEpt(vm)
      return ept instanceof EptBuilder ? ept.unmap(gfn) : ept
    })
  const lookup = (vm: VmId, gfn: number) =>
    lift(() => {
      const ept = mm.existingEpt(vm)
      return ept instanceof EptBuilder ? ept.lookup(gfn) : ept
    })
  const eptp = (vm: VmId, options?: EptpOptions) => withEpt(vm, (ept) => ept.eptp(options))
  const usage = (vm: VmId) => lift(() => mm.usage(vm))
  const release = (vm: VmId) => lift(() => mm.release(vm))

  /** A VM's own handle: its pool exists while the handle is in use, so UnknownVm here is a bug. */
  const bound = <A, E>(effect: Effect.Effect<A, E | UnknownVm>): Effect.Effect<A, Exclude<E, UnknownVm>> =>
    Effect.catchIf(
      effect,
      (e): e is UnknownVm => e instanceof UnknownVm,
      (e) => Effect.die(new MemoryInvariantError(`${e.message}: a VM's memory used after its release`))
    ) as Effect.Effect<A, Exclude<E, UnknownVm>>

  const handle = (vm: VmId): VmMemory => ({
    vm,
    backGuestPage: (gfn) => bound(backGuestPage(vm, gfn)),
    mapGuestPage: (gfn, perms) => bound(lift(() => mm.mapGuestPage(vm, gfn, perms))),
    unbackGuestPage: (gfn) => bound(unbackGuestPage(vm, gfn)),
    map: (gfn, frame, perms) => bound(map(vm, gfn, frame, perms)),
    unmap: (gfn) => bound(unmap(vm, gfn)),
    lookup: (gfn) => bound(lookup(vm, gfn)),
    eptp: (options) => bound(eptp(vm, options)),
    usage: bound(usage(vm))
  })

  const createPool = (vm: VmId, spec: PoolSpec) =>
    Effect.map(
      lift(() => mm.createPool(vm, spec)),
      () => handle(vm)
    )

  return {
    pool: (vm, spec) =>
      Effect.map(
        Effect.acquireRelease(
          Effect.map(createPool(vm, spec), (memory) => ({ memory, incarnation: mm.incarnation(vm) })),
          ({ incarnation }) =>
            // released by hand already (and maybe re-admitted since): only ever release the pool this scope made
            Effect.sync(() => (mm.incarnation(vm) === incarnation ? mm.release(vm) : 0))
        ),
        ({ memory }) => memory
      ),
    createPool,
    release,
    backGuestPage,
    unbackGuestPage,
    map,
    unmap,
    lookup,
    eptp,
    usage,
    stats: Effect.sync(() => mm.stats()),
    allocateKernelFrame: lift(() => mm.allocateKernelFrame()),
    freeKernelFrame: (frame) => lift(() => mm.freeKernelFrame(frame)),
    managerUnsafe: mm
  }
}

export class MachineMemory extends Context.Service<MachineMemory, MachineMemoryShape>()("fibervisor/MachineMemory") {
  static readonly make = make
  static readonly makeWith = makeWith
  static readonly layer = (machine: MachineMemoryHost, options?: MachineMemoryOptions): Layer.Layer<MachineMemory> =>
    Layer.effect(MachineMemory, make(machine, options))
}
