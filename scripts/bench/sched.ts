/**
 * `bench sched`: the cost of the world runtime itself (kernel/sched/runtime.ts).
 * - world switches per second: worlds whose quantum does no work, so every
 *   slice is pure scheduling (pick, two queue hops to the pCPU fiber, charge);
 * - Effect overhead per quantum: worlds that burn a fixed amount of real CPU
 *   per quantum (a xorshift loop, ~0.5 ms: the size of a real guest quantum),
 *   timed through the runtime and as a plain loop; the difference over the
 *   plain time is the overhead (STACK.md: under 1 % needs slices >= 0.5 ms).
 * Wall time is read here, in scripts/, the only layer allowed to.
 */
import { Effect, Layer } from "effect"
import { type WorldBody, Worlds } from "../../kernel/sched/runtime.ts"
import { Trace } from "../../kernel/trace/trace.ts"

export interface SchedBench {
  readonly switchesPerSecond: number
  readonly slices: number
  readonly workPerQuantumMs: number
  readonly plainMs: number
  readonly runtimeMs: number
  readonly overheadPercent: number
}

const QUANTUM_NS = 1_000_000

let sink = 1
/** A fixed amount of host CPU work (xorshift), as a guest quantum would burn. */
const burn = (iterations: number): void => {
  let x = sink | 1
  for (let i = 0; i < iterations; i++) {
    x ^= x << 13
    x ^= x >>> 17
    x ^= x << 5
  }
  sink = x
}

const timed = (effect: Effect.Effect<void, never, Worlds>, pcpus: number): Effect.Effect<number> =>
  Effect.gen(function* () {
    const start = performance.now()
    yield* effect.pipe(
      Effect.provide(Layer.provideMerge(Worlds.layer({ pcpus, quantum: QUANTUM_NS }), Trace.layer(1024))),
      Effect.scoped
    )
    return performance.now() - start
  })

const scenario = (worlds: number, body: WorldBody, slices: number) =>
  Effect.gen(function* () {
    const w = yield* Worlds
    for (let i = 0; i < worlds; i++) {
      const vm = yield* w.addVm({ name: `vm${i}` })
      yield* w.addWorld(vm, body)
    }
    yield* w.runFor(slices * QUANTUM_NS)
  })

export const benchSched = (options: { slices: number; burnIterations: number }): Effect.Effect<SchedBench> =>
  Effect.gen(function* () {
    const idle: WorldBody = { run: (_p, _s, budget) => ({ used: budget, next: "runnable" }) }
    yield* timed(scenario(4, idle, 1000), 1) // warm-up
    const switchMs = yield* timed(scenario(4, idle, options.slices), 1)
    const working: WorldBody = {
      run: (_p, _s, budget) => {
        burn(options.burnIterations)
        return { used: budget, next: "runnable" }
      }
    }
    const workSlices = Math.max(50, Math.round(options.slices / 50))
    const startPlain = performance.now()
    for (let i = 0; i < workSlices; i++) burn(options.burnIterations)
    const plainMs = performance.now() - startPlain
    const runtimeMs = yield* timed(scenario(4, working, workSlices), 1)
    return {
      switchesPerSecond: options.slices / (switchMs / 1000),
      slices: options.slices,
      workPerQuantumMs: plainMs / workSlices,
      plainMs,
      runtimeMs,
      overheadPercent: ((runtimeMs - plainMs) / plainMs) * 100
    }
  })

export const formatSchedBench = (r: SchedBench): string =>
  [
    `world switches: ${Math.round(r.switchesPerSecond).toLocaleString("en-US")}/s (${r.slices} empty slices, 4 worlds, 1 pCPU)`,
    `Effect overhead: ${r.overheadPercent.toFixed(2)} % per quantum of ${r.workPerQuantumMs.toFixed(2)} ms host work (runtime ${r.runtimeMs.toFixed(0)} ms vs plain ${r.plainMs.toFixed(0)} ms)`
  ].join("\n")
