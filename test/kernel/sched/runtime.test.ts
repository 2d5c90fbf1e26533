/**
 * The world runtime: the proportional-share scheduler driven by one Effect
 * fiber per pCPU over virtual time (kernel/sched/runtime.ts). The algorithm's
 * own guarantees are tested in the pure scheduler tests; here: the fibers run
 * worlds as the scheduler says, halted worlds cost nothing and wake on
 * virtual timers, idle time is skipped, and runs are deterministic.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Layer } from "effect"
import { type WorldBody, Worlds } from "../../../kernel/sched/runtime.ts"
import { Trace } from "../../../kernel/trace/trace.ts"

const QUANTUM = 1_000_000

const cpuBound: WorldBody = { run: (_pcpu, _start, budget) => ({ used: budget, next: "runnable" }) }

const runtime = (pcpus: number) => Layer.provideMerge(Worlds.layer({ pcpus, quantum: QUANTUM }), Trace.layer(100_000))

describe("world runtime (fibers over the scheduler)", () => {
  it.effect("two CPU-bound worlds with shares 2000/1000 on one pCPU split it 2:1", () =>
    Effect.gen(function* () {
      const worlds = yield* Worlds
      const a = yield* worlds.addVm({ name: "a", shares: 2000 })
      const b = yield* worlds.addVm({ name: "b", shares: 1000 })
      yield* worlds.addWorld(a, cpuBound)
      yield* worlds.addWorld(b, cpuBound)
      yield* worlds.runFor(3000 * QUANTUM)
      const stats = yield* worlds.stats
      const used = stats.vms.map((v) => v.used)
      const total = used[0]! + used[1]!
      expect(total).toBe(3000 * QUANTUM)
      expect(Math.abs(used[0]! / total - 2 / 3)).toBeLessThan(0.02)
    }).pipe(Effect.provide(runtime(1)), Effect.scoped)
  )

  it.effect("one fiber per pCPU: two CPU-bound worlds on two pCPUs each get a whole pCPU", () =>
    Effect.gen(function* () {
      const worlds = yield* Worlds
      for (const name of ["a", "b"]) {
        const vm = yield* worlds.addVm({ name })
        yield* worlds.addWorld(vm, cpuBound)
      }
      yield* worlds.runFor(500 * QUANTUM)
      const stats = yield* worlds.stats
      for (const vm of stats.vms) expect(vm.used).toBe(500 * QUANTUM)
    }).pipe(Effect.provide(runtime(2)), Effect.scoped)
  )

  it.effect("a halted world consumes nothing, wakes on a virtual timer, and idle time is jumped over", () =>
    Effect.gen(function* () {
      const worlds = yield* Worlds
      const vm = yield* worlds.addVm({ name: "ticker" })
      let runs = 0
      // runs 10 µs per timer tick, then halts until the next tick (a guest waiting in HLT for its timer)
      let id = -1
      const body: WorldBody = {
        run: (_pcpu, start) => {
          runs++
          worlds.timerAtUnsafe(start + 10 * QUANTUM, () => worlds.wakeUnsafe(id))
          return { used: 10_000, next: "halted" }
        }
      }
      id = yield* worlds.addWorld(vm, body)
      yield* worlds.runFor(1000 * QUANTUM)
      const stats = yield* worlds.stats
      const world = stats.worlds[0]!
      expect(runs).toBe(100)
      expect(world.used).toBe(100 * 10_000)
      expect(world.halted).toBeGreaterThan(990 * QUANTUM)
      // the idle stretches were skipped: far fewer rounds than quanta of virtual time
      const { rounds } = yield* worlds.counters
      expect(rounds).toBeLessThan(250)
    }).pipe(Effect.provide(runtime(1)), Effect.scoped)
  )

  it.effect("removing a VM whose world is mid-slice settles the time it used and leaves the others running", () =>
    Effect.gen(function* () {
      const worlds = yield* Worlds
      const a = yield* worlds.addVm({ name: "a" })
      const b = yield* worlds.addVm({ name: "b" })
      yield* worlds.addWorld(a, cpuBound)
      yield* worlds.addWorld(b, cpuBound)
      yield* worlds.runFor(QUANTUM / 2) // both slices are in flight
      yield* worlds.removeVm(a)
      yield* worlds.runFor(10 * QUANTUM)
      const stats = yield* worlds.stats
      const vmA = stats.vms.find((v) => v.name === "a")
      const vmB = stats.vms.find((v) => v.name === "b")!
      expect(vmA === undefined || vmA.used <= QUANTUM / 2).toBe(true)
      expect(vmB.used).toBeGreaterThanOrEqual(10 * QUANTUM)
    }).pipe(Effect.provide(runtime(2)), Effect.scoped)
  )

  it.effect("deterministic: the same scenario twice gives the same trace", () =>
    Effect.gen(function* () {
      const scenario = Effect.gen(function* () {
        const worlds = yield* Worlds
        const trace = yield* Trace
        for (const [name, shares] of [
          ["a", 2000],
          ["b", 1000],
          ["c", 500]
        ] as const) {
          const vm = yield* worlds.addVm({ name, shares })
          yield* worlds.addWorld(vm, cpuBound)
        }
        yield* worlds.runFor(200 * QUANTUM)
        return JSON.stringify(yield* trace.recent())
      }).pipe(Effect.provide(runtime(2)), Effect.scoped)
      const first = yield* scenario
      const second = yield* scenario
      expect(second).toBe(first)
    })
  )

  it.effect("virtual timers fire in time order, ties in the order they were set", () =>
    Effect.gen(function* () {
      const worlds = yield* Worlds
      const fired: Array<string> = []
      const times = [70, 10, 50, 10, 30, 90, 50, 20]
      for (const [i, t] of times.entries()) worlds.timerAtUnsafe(t * QUANTUM, () => fired.push(`${t}:${i}`))
      yield* worlds.runFor(60 * QUANTUM)
      expect(fired).toEqual(["10:1", "10:3", "20:7", "30:4", "50:2", "50:6"])
      yield* worlds.runFor(40 * QUANTUM)
      expect(fired.slice(6)).toEqual(["70:0", "90:5"])
    }).pipe(Effect.provide(runtime(1)), Effect.scoped)
  )

  it.effect(
    "a timer set by a world of a removed VM fires harmlessly (a VM destroyed with a device deadline pending)",
    () =>
      Effect.gen(function* () {
        const worlds = yield* Worlds
        const vm = yield* worlds.addVm({ name: "gone" })
        let id = -1
        const body: WorldBody = {
          run: (_pcpu, start) => {
            worlds.timerAtUnsafe(start + 10 * QUANTUM, () => worlds.wakeUnsafe(id))
            return { used: 10_000, next: "halted" }
          }
        }
        id = yield* worlds.addWorld(vm, body)
        yield* worlds.runFor(QUANTUM)
        yield* worlds.removeVm(vm)
        yield* worlds.runFor(20 * QUANTUM)
        const stats = yield* worlds.stats
        expect(stats.worlds).toEqual([])
      }).pipe(Effect.provide(runtime(1)), Effect.scoped)
  )
})
