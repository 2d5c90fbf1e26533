/**
 * Kernel.boot on the emulated machine: the firmware table is read, memory
 * and drivers come up, the services are offered, and a broken machine is a
 * typed KernelBootError naming the step (issue 5 "Boot").
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Exit, Layer } from "effect"
import { memoryBackend } from "../../hw/devices/block/memory-backend.ts"
import { decodeMachineConfig, defaultMachineConfig } from "../../hw/machine/config.ts"
import { Machine } from "../../hw/machine/machine.ts"
import { Kernel, KernelHost } from "../../kernel/boot.ts"
import { KernelConsole } from "../../kernel/console/service.ts"
import { Datastore } from "../../kernel/datastore/service.ts"
import { MachineMemory } from "../../kernel/memory/service.ts"
import { Worlds } from "../../kernel/sched/runtime.ts"
import { Trace } from "../../kernel/trace/trace.ts"

const machine = (overrides: Record<string, unknown> = {}, disk = true) => {
  const config = Effect.runSync(
    decodeMachineConfig(
      "test",
      JSON.stringify({
        ...defaultMachineConfig,
        ramMiB: 8,
        block: disk ? { path: "datastore.img", sizeMiB: 1 } : null,
        ...overrides
      })
    )
  )
  let uart = ""
  const m = new Machine(config, {
    console: { transmit: (b) => (uart += String.fromCharCode(b)) },
    ...(disk ? { disk: memoryBackend(2048) } : {})
  })
  return { m, uart: () => uart }
}

describe("Kernel.boot", () => {
  it.effect("boots: firmware, memory, drivers, services, one scheduler fiber per pCPU", () => {
    const { m, uart } = machine()
    return Effect.gen(function* () {
      const host = yield* KernelHost
      expect(host.firmware.cpus.length).toBe(2)
      const steps = (yield* (yield* Trace).recent())
        .filter((e) => e._tag === "Boot")
        .map((e) => (e as { step: string }).step)
      expect(steps).toEqual(["firmware", "memory", "drivers", "scheduler"])
      // the kernel's log reached the physical UART, and from there the host back-end
      yield* (yield* KernelConsole).log("hello from the vmkernel")
      expect(uart()).toContain("fibervisor vmkernel: 2 pCPUs")
      expect(uart()).toContain("hello from the vmkernel")
      // the datastore is on the disk
      const ds = yield* Datastore
      yield* ds.create("vm1.disk", 16)
      expect((yield* ds.list).map((f) => f.name)).toEqual(["vm1.disk"])
      // the memory manager kept the kernel's frames
      expect((yield* (yield* MachineMemory).stats).kernelFrames).toBeGreaterThanOrEqual(256)
      // the world runtime runs worlds on both pCPUs
      const worlds = yield* Worlds
      const vm = yield* worlds.addVm({ name: "spin" })
      yield* worlds.addWorld(vm, { run: (_p, _s, budget) => ({ used: budget, next: "runnable" }) })
      yield* worlds.runFor(10 * host.quantumNs)
      expect((yield* worlds.stats).vms[0]!.used).toBe(10 * host.quantumNs)
    }).pipe(Effect.provide(Kernel.boot(m)), Effect.scoped)
  })

  it.effect("a host without a datastore disk boots, and datastore operations say why they cannot work", () => {
    const { m } = machine({}, false)
    return Effect.gen(function* () {
      const ds = yield* Datastore
      const error = yield* Effect.flip(ds.create("x", 1))
      expect(error.message).toContain("this host has no datastore disk")
    }).pipe(Effect.provide(Kernel.boot(m)), Effect.scoped)
  })

  it.effect("a corrupted firmware table stops the boot with a typed error naming the step", () => {
    const { m } = machine()
    m.firmware[30] = m.firmware[30]! ^ 0xff
    return Effect.gen(function* () {
      const exit = yield* Effect.exit(Layer.build(Kernel.boot(m)))
      expect(Exit.isFailure(exit)).toBe(true)
      const error = yield* Effect.flip(Layer.build(Kernel.boot(m)))
      expect(error._tag).toBe("KernelBootError")
      expect((error as { step: string }).step).toBe("firmware")
    }).pipe(Effect.scoped)
  })
})
