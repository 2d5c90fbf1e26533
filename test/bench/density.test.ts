/**
 * `bench density`'s idle guest and its accounting (scripts/bench/idle-guest.ts,
 * density.ts). No timing here: speed claims live in the benchmark. The guest's
 * bytes are its listing; it really sleeps in HLT between 100 Hz ticks; and a
 * density step counts exactly the machine frames its VMs own.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Exit, Scope } from "effect"
import { disassemble } from "../../hw/cpu/disasm.ts"
import { Worlds } from "../../kernel/sched/runtime.ts"
import { measureDensity } from "../../scripts/bench/density.ts"
import { bootKernel, powerOn } from "../../scripts/bench/host.ts"
import {
  IDLE_CODE,
  IDLE_CODE_LENGTH,
  idleGuestBytes,
  idleGuestPayload,
  idleGuestSource,
  TICKS_ADDRESS
} from "../../scripts/bench/idle-guest.ts"
import { defaultVmConfig } from "../../vmm/config.ts"
import { addStandardDevices } from "../../vmm/platform/standard.ts"
import { createVm } from "../../vmm/vm.ts"

describe("bench density", () => {
  it("idle guest: the bytes disassemble to the source listing", () => {
    const bytes = Uint8Array.from(idleGuestBytes)
    const texts: Array<string> = []
    for (let at = 0; at < IDLE_CODE_LENGTH; ) {
      const d = disassemble(bytes, at, IDLE_CODE + at, false)
      texts.push(d.text)
      at += d.length
    }
    expect(texts).toEqual(idleGuestSource)
    expect(IDLE_CODE + bytes.length).toBe(TICKS_ADDRESS + 2)
  })

  it.effect("idle guest: counts 100 Hz ticks and spends the time between them halted", () =>
    Effect.scoped(
      Effect.gen(function* () {
        const host = yield* bootKernel(yield* powerOn({ ramMiB: 64, pcpus: 1 }))
        const scope = yield* Scope.make()
        const vm = yield* createVm({ ...defaultVmConfig("idle", "idle"), memoryMiB: 1 }, idleGuestPayload(), {
          console: () => {}
        }).pipe(Scope.provide(scope), Effect.provideContext(host))
        addStandardDevices(vm)
        const worlds = yield* Effect.gen(function* () {
          return yield* Worlds
        }).pipe(Effect.provideContext(host))
        for (let t = 0; t < 20; t++) yield* worlds.runFor(10_000_000) // 200 ms
        const ticks = vm.guest.readValue(TICKS_ADDRESS, 2)
        expect(ticks).toBeGreaterThanOrEqual(19)
        expect(ticks).toBeLessThanOrEqual(20)
        expect(vm.ended).toBeUndefined()
        expect(vm.vcpus[0]!.halted).toBe(true)
        // one HLT exit and one EOI (an I/O exit) per tick, after 8 I/O exits programming the PIC and PIT
        expect(vm.counters.exit_hlt).toBeGreaterThanOrEqual(ticks)
        expect(vm.counters.exit_hlt).toBeLessThanOrEqual(ticks + 1)
        expect(vm.counters.exit_io_out).toBe(8 + ticks)
        // a few instructions per tick, and the world was halted nearly all the time
        expect(vm.instructions).toBeLessThan(30 + 10 * ticks)
        const world = (yield* worlds.stats).worlds.find((w) => w.id === vm.worlds[0])!
        expect(world.halted / world.lifetime).toBeGreaterThan(0.99)
        yield* Scope.close(scope, Exit.void)
      })
    )
  )

  it.effect("a density step counts the frames its VMs own: 2 guest pages and 4 EPT tables each", () =>
    Effect.gen(function* () {
      const step = yield* measureDensity(3, { guestMiB: 1, virtualMs: 30, pcpus: 1 })
      expect(step.problems).toEqual([])
      expect(step.ok).toBe(true)
      // page 0 (the IVT) and page 7 (code, stack, counter); PML4, PDPT, PD and one PT
      expect(step.guestFrames).toBe(3 * 2)
      expect(step.tableFrames).toBe(3 * 4)
      expect(step.perVm.guestFrames).toBe(2 * 4096)
      expect(step.perVm.tableFrames).toBe(4 * 4096)
      expect(step.ticks).toEqual({ min: 3, max: 3, expected: 3 })
    })
  )
})
