/**
 * The panic path (a hypervisor bug: every pCPU stopped, a full diagnostic
 * dump) and the kernel's Effect metrics (quanta per pCPU).
 */
import { describe, expect, it } from "@effect/vitest"
import { Cause, Effect, Exit, Layer, Metric } from "effect"
import { decodeMachineConfig, defaultMachineConfig } from "../../hw/machine/config.ts"
import { Machine } from "../../hw/machine/machine.ts"
import { KernelPanic, panic } from "../../kernel/panic.ts"
import { Worlds } from "../../kernel/sched/runtime.ts"
import { quantaDispatched } from "../../kernel/trace/metrics.ts"
import { Trace } from "../../kernel/trace/trace.ts"

const machine = () =>
  new Machine(Effect.runSync(decodeMachineConfig("test", JSON.stringify({ ...defaultMachineConfig, ramMiB: 4 }))))

describe("kernel panic", () => {
  it.effect("stops every pCPU and dies with a dump of all pCPUs, the worlds and the recent trace", () =>
    Effect.gen(function* () {
      const m = machine()
      const exit = yield* Effect.exit(
        panic("frame owner table corrupted", m, ["vm0.vcpu0", "vm1.vcpu0"], [{ _tag: "Panic", at: 5, message: "x" }])
      )
      expect(Exit.isFailure(exit)).toBe(true)
      if (!Exit.isFailure(exit)) return
      const defect = Cause.squash(exit.cause)
      expect(defect).toBeInstanceOf(KernelPanic)
      const dump = (defect as KernelPanic).dump
      expect(dump).toContain("PANIC")
      expect(dump).toContain("frame owner table corrupted")
      expect(dump).toContain("pCPU 0: eip=")
      expect(dump).toContain("pCPU 1: eip=")
      expect(dump).toContain("vm1.vcpu0")
      expect(dump).toContain('"_tag":"Panic"')
      for (const cpu of m.cpus) expect(cpu.stopRequested).toBe(true)
    })
  )
})

describe("kernel metrics", () => {
  it.effect("counts the quanta dispatched on each pCPU", () =>
    Effect.gen(function* () {
      const worlds = yield* Worlds
      const vm = yield* worlds.addVm({ name: "a" })
      yield* worlds.addWorld(vm, { run: (_p, _s, budget) => ({ used: budget, next: "runnable" }) })
      yield* worlds.runFor(25 * 1_000_000)
      const counted = yield* Metric.value(Metric.withAttributes(quantaDispatched, { pcpu: "0" }))
      expect(counted.count).toBe(25)
    }).pipe(
      Effect.provide(Layer.provideMerge(Worlds.layer({ pcpus: 1, quantum: 1_000_000 }), Trace.layer())),
      Effect.provideService(Metric.MetricRegistry, new Map()),
      Effect.scoped
    )
  )
})
