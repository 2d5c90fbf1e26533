/**
 * MachineMemory, the Effect service (kernel/memory/service.ts): built over a
 * real Machine (the memory map read back from its firmware ROM), typed
 * errors in the error channel, broken invariants as defects, and a VM as a
 * scoped resource: closing its scope returns every frame it owned.
 */
import { describe, expect, it } from "@effect/vitest"
import { Cause, Effect, Exit } from "effect"
import { decodeMachineConfig, defaultMachineConfig } from "../../../hw/machine/config.ts"
import { Machine } from "../../../hw/machine/machine.ts"
import { MemoryInvariantError } from "../../../kernel/memory/errors.ts"
import { FRAME_SIZE } from "../../../kernel/memory/frames.ts"
import { DEFAULT_KERNEL_FRAMES, MachineMemory } from "../../../kernel/memory/service.ts"

/** A 4 MiB machine (1024 frames) with nothing attached to the outside world. */
const machine = () =>
  new Machine(
    Effect.runSync(
      decodeMachineConfig(
        "test",
        JSON.stringify({ ...defaultMachineConfig, ramMiB: 4, uart: { backend: "none" }, nic: { backend: "none" } })
      )
    )
  )

const open = { reservation: 0, limit: Number.POSITIVE_INFINITY, shares: 1000 }

describe("MachineMemory over a machine", () => {
  it.effect("reads the memory map from the firmware table; the kernel keeps the first 1 MiB by default", () =>
    Effect.gen(function* () {
      const mem = yield* MachineMemory
      const stats = yield* mem.stats
      expect(stats).toMatchObject({
        totalFrames: 1024,
        kernelFrames: DEFAULT_KERNEL_FRAMES,
        freeFrames: 1024 - DEFAULT_KERNEL_FRAMES,
        reservedUnused: 0,
        vms: []
      })
    }).pipe(Effect.provide(MachineMemory.layer(machine())))
  )

  it.effect("a VM is a scoped resource: closing its scope returns every frame (guest and EPT tables)", () =>
    Effect.gen(function* () {
      const mem = yield* MachineMemory
      const free = (yield* mem.stats).freeFrames
      const inside = yield* Effect.scoped(
        Effect.gen(function* () {
          const vm = yield* mem.pool("vm1", { reservation: 64, limit: 512, shares: 1000 })
          for (const gfn of [0, 1, 2, 0x200, 0x40000]) yield* vm.mapGuestPage(gfn)
          const eptp = yield* vm.eptp({ accessedDirty: true })
          expect(eptp & 0x7f).toBe(0x40 | (3 << 3) | 6)
          expect(yield* vm.lookup(0x200)).toMatchObject({ perms: 7 })
          return yield* vm.usage
        })
      )
      expect(inside).toMatchObject({ vm: "vm1", guestFrames: 5, reservedUnused: 64 - inside.owned })
      expect(inside.tableFrames).toBeGreaterThan(0)
      const after = yield* mem.stats
      expect(after).toMatchObject({ freeFrames: free, reservedUnused: 0, vms: [] })
      expect(mem.managerUnsafe.checkInvariants()).toEqual([])
    }).pipe(Effect.provide(MachineMemory.layer(machine())))
  )

  it.effect("the scope releases the VM's frames even when the VM's work fails", () =>
    Effect.gen(function* () {
      const mem = yield* MachineMemory
      const free = (yield* mem.stats).freeFrames
      const exit = yield* Effect.exit(
        Effect.scoped(
          Effect.gen(function* () {
            const vm = yield* mem.pool("vm1", { reservation: 0, limit: 6, shares: 1000 })
            yield* vm.mapGuestPage(0) // 1 + 4 tables
            yield* vm.mapGuestPage(1) // 6
            yield* vm.mapGuestPage(2) // over the limit
          })
        )
      )
      expect(exit).toEqual(Exit.fail(expect.objectContaining({ _tag: "MemoryLimitExceeded", vm: "vm1", limit: 6 })))
      expect((yield* mem.stats).freeFrames).toBe(free)
    }).pipe(Effect.provide(MachineMemory.layer(machine())))
  )

  it.effect("lazy backing through the service: zeroed on first touch, the same frame after", () =>
    Effect.gen(function* () {
      const m = machine()
      m.ram.fill(0x99)
      const mem = yield* MachineMemory.make(m)
      yield* Effect.scoped(
        Effect.gen(function* () {
          const vm = yield* mem.pool("vm1", open)
          const f = yield* vm.backGuestPage(0x42)
          expect(m.ram.subarray(f * FRAME_SIZE, (f + 1) * FRAME_SIZE).every((b) => b === 0)).toBe(true)
          expect(yield* vm.backGuestPage(0x42)).toBe(f)
          expect(yield* vm.lookup(0x42)).toBeUndefined() // backed, not mapped yet
          yield* vm.map(0x42, f)
          expect(yield* vm.lookup(0x42)).toMatchObject({ frame: f })
          expect(yield* vm.unbackGuestPage(0x42)).toBe(f)
          expect(yield* vm.lookup(0x42)).toBeUndefined()
        })
      )
    })
  )

  it.effect("admission control and unknown VMs are typed errors", () =>
    Effect.gen(function* () {
      const mem = yield* MachineMemory
      const refused = yield* Effect.flip(mem.createPool("huge", { reservation: 1024, limit: 2048, shares: 1000 }))
      expect(refused._tag).toBe("AdmissionRefused")
      expect(refused.message).toMatch(/VM huge refused by admission control: reservation of 1024/)
      const unknown = yield* Effect.flip(mem.backGuestPage("ghost", 0))
      expect(unknown._tag).toBe("UnknownVm")
      // a VM released by hand (and its id admitted again): the first scope releases only its own pool
      yield* Effect.scoped(
        Effect.gen(function* () {
          yield* mem.pool("vm1", open)
          expect(yield* mem.release("vm1")).toBe(0)
          yield* mem.createPool("vm1", open)
        })
      )
      expect((yield* mem.stats).vms.map((u) => u.vm)).toEqual(["vm1"])
      yield* mem.release("vm1")
    }).pipe(Effect.provide(MachineMemory.layer(machine())))
  )

  it.effect("mapping a frame the VM does not own is a defect (a hypervisor bug), not a typed error", () =>
    Effect.gen(function* () {
      const mem = yield* MachineMemory
      const exit = yield* Effect.exit(
        Effect.scoped(
          Effect.gen(function* () {
            const a = yield* mem.pool("a", open)
            const b = yield* mem.pool("b", open)
            const theirs = yield* b.backGuestPage(0)
            yield* a.map(0, theirs)
          })
        )
      )
      expect(Exit.isFailure(exit)).toBe(true)
      if (Exit.isFailure(exit)) {
        expect(Cause.hasDies(exit.cause)).toBe(true)
        expect(Cause.squash(exit.cause)).toBeInstanceOf(MemoryInvariantError)
      }
      expect((yield* mem.stats).vms).toEqual([]) // both scopes closed anyway
    }).pipe(Effect.provide(MachineMemory.layer(machine())))
  )

  it.effect("kernel frames: allocated zeroed from unreserved memory, freed with typed errors", () =>
    Effect.gen(function* () {
      const mem = yield* MachineMemory
      const f = yield* mem.allocateKernelFrame
      expect(f).toBe(DEFAULT_KERNEL_FRAMES)
      yield* mem.freeKernelFrame(f)
      const again = yield* Effect.flip(mem.freeKernelFrame(f))
      expect(again._tag).toBe("DoubleFree")
    }).pipe(Effect.provide(MachineMemory.layer(machine())))
  )
})
