/**
 * The world runtime: the scheduler (scheduler.ts, a pure algorithm) driven by
 * Effect fibers, one per pCPU, over virtual time.
 *
 * A discrete-event loop keeps virtual time monotonic across pCPUs: each pCPU
 * has its own clock and at most one pending event, either "pick a world at
 * time t" or "charge the running world at t + used". The coordinator
 * (`runFor`) always advances the pCPU with the earliest event (ties by pCPU
 * number, so runs are deterministic):
 *
 *   coordinator                                pCPU fiber i
 *   -----------                                ------------
 *   earliest event is a pick on pCPU i:
 *     world = scheduler.pick(i, t)
 *     offer slice (world, t, budget)  ----->   take slice
 *                                              world.run(i, t, budget)  (sync: the VMM's vCPU loop)
 *     take result                     <-----   offer result
 *     pending charge at t + used
 *   earliest event is a charge: scheduler.charge(...), next pick at that time
 *   no world to pick: the pCPU idles until the next event anywhere (another
 *   pCPU's charge, a virtual timer, a limit lift, a device deadline);
 *   when every pCPU idles, time jumps there at once.
 *
 * A slice is up to one quantum of virtual time (milliseconds of guest
 * execution), so the two queue hops per slice (~15 µs, STACK.md) stay noise.
 * A world's `run` is a plain synchronous call: the CPU hot loop never touches
 * Effect.
 */
import { Context, Effect, Layer, Queue, type Scope } from "effect"
import type { Machine } from "../../hw/machine/machine.ts"
import { countQuantum } from "../trace/metrics.ts"
import { Trace } from "../trace/trace.ts"
import type { SchedulerConfig, VmConfig } from "./config.ts"
import { Scheduler } from "./scheduler.ts"
import type { NextState, SchedulerStats, VmId, WorldId, WorldOptions } from "./types.ts"

/** What a world does with CPU time: the VMM's vCPU loop (or a synthetic load in tests). */
export interface WorldBody {
  /**
   * Run on pCPU `pcpu` from virtual time `start` for at most `budget` ns;
   * return how much was used and what the world does next. Synchronous.
   */
  readonly run: (pcpu: number, start: number, budget: number) => { readonly used: number; readonly next: NextState }
}

interface Timer {
  readonly at: number
  readonly seq: number
  readonly fire: () => void
}

const earlier = (a: Timer, b: Timer): boolean => a.at < b.at || (a.at === b.at && a.seq < b.seq)

/**
 * The pending virtual timers as a binary min-heap by (at, seq): the earliest
 * first, ties in the order they were set. O(log n) per timer, so a host with
 * thousands of VMs, each with a device deadline pending, pays no sort per event.
 */
class TimerHeap {
  private readonly items: Array<Timer> = []

  get first(): Timer | undefined {
    return this.items[0]
  }

  push(timer: Timer): void {
    const items = this.items
    let i = items.length
    items.push(timer)
    while (i > 0) {
      const parent = (i - 1) >> 1
      if (!earlier(timer, items[parent]!)) break
      items[i] = items[parent]!
      i = parent
    }
    items[i] = timer
  }

  pop(): Timer | undefined {
    const items = this.items
    const top = items[0]
    const last = items.pop()
    if (top === undefined || last === undefined || items.length === 0) return top
    let i = 0
    for (;;) {
      const left = 2 * i + 1
      if (left >= items.length) break
      const right = left + 1
      const child = right < items.length && earlier(items[right]!, items[left]!) ? right : left
      if (!earlier(items[child]!, last)) break
      items[i] = items[child]!
      i = child
    }
    items[i] = last
    return top
  }
}

export interface WorldsApi {
  readonly scheduler: Scheduler
  readonly now: Effect.Effect<number>
  readonly addVm: (config: VmConfig) => Effect.Effect<VmId>
  readonly addWorld: (vm: VmId, body: WorldBody, options?: WorldOptions) => Effect.Effect<WorldId>
  readonly removeVm: (vm: VmId) => Effect.Effect<void>
  /** Make a halted world runnable (a virtual interrupt arrived); no-op for a removed one. Safe to call from inside a quantum. */
  readonly wakeUnsafe: (world: WorldId) => void
  /** Call `fire` when virtual time reaches `at` (ns). Safe to call from inside a quantum. */
  readonly timerAtUnsafe: (at: number, fire: () => void) => void
  /** Advance virtual time by `ns`, running worlds on every pCPU. */
  readonly runFor: (ns: number) => Effect.Effect<void>
  readonly stats: Effect.Effect<SchedulerStats>
  /** Host-side counters: rounds and quanta dispatched (for `bench sched`). */
  readonly counters: Effect.Effect<{ readonly rounds: number; readonly quanta: number }>
}

export class Worlds extends Context.Service<Worlds, WorldsApi>()("fibervisor/Worlds") {
  /** The runtime over `pcpus` pCPUs; pass the machine to tick its devices as virtual time advances. */
  static readonly layer = (config: SchedulerConfig, machine?: Machine) =>
    Layer.effect(Worlds, makeWorlds(config, machine))
}

export const makeWorlds = (
  config: SchedulerConfig,
  machine?: Machine
): Effect.Effect<WorldsApi, never, Scope.Scope | Trace> =>
  Effect.gen(function* () {
    const trace = yield* Trace
    const scheduler = new Scheduler(config)
    const quantum = scheduler.quantum
    const bodies = new Map<WorldId, WorldBody>()
    const worldVm = new Map<WorldId, VmId>()
    const timers = new TimerHeap()
    let timerSeq = 0
    let now = scheduler.config.start
    let rounds = 0
    let quanta = 0

    const fireDueTimers = () => {
      while (timers.first !== undefined && timers.first.at <= now) timers.pop()!.fire()
    }

    // per-pCPU state: its clock and the slice it is running (charged when the clock reaches its end)
    const pcpus = scheduler.config.pcpus
    const clock: Array<number> = new Array<number>(pcpus).fill(now)
    const running: Array<{ world: WorldId; used: number; next: NextState } | undefined> = new Array(pcpus).fill(
      undefined
    )

    // one fiber per pCPU: it runs the slices the coordinator hands it
    const slices = yield* Effect.forEach(Array.from({ length: pcpus }), () =>
      Queue.unbounded<{ world: WorldId; start: number; budget: number }>()
    )
    const results = yield* Queue.unbounded<{ used: number; next: NextState }>()
    for (let pcpu = 0; pcpu < pcpus; pcpu++) {
      const inbox = slices[pcpu]!
      yield* Effect.forkScoped(
        Effect.forever(
          Effect.gen(function* () {
            const slice = yield* Queue.take(inbox)
            const result = yield* Effect.sync(() => bodies.get(slice.world)!.run(pcpu, slice.start, slice.budget))
            yield* countQuantum(pcpu, result.used)
            yield* Queue.offer(results, result)
          })
        )
      )
    }

    const nextTimer = () => timers.first?.at ?? Number.POSITIVE_INFINITY

    /** The next time anything outside pCPU `except` can change what is runnable. */
    const nextWakeup = (except: number, target: number) => {
      let t = Math.min(target, nextTimer(), scheduler.nextLimitLift() ?? Number.POSITIVE_INFINITY)
      if (machine !== undefined) t = Math.min(t, machine.advanceDevices(now))
      for (let i = 0; i < pcpus; i++) {
        if (i !== except && running[i] !== undefined) t = Math.min(t, clock[i]! + running[i]!.used)
      }
      return t
    }

    const runFor = (ns: number) =>
      Effect.gen(function* () {
        const target = now + ns
        for (;;) {
          // the pCPU with the earliest event: a pending charge at clock + used, else a pick at its clock;
          // at equal times charges go first (they can make worlds eligible), then lower pCPU numbers
          let i = -1
          let at = Number.POSITIVE_INFINITY
          let atIsCharge = false
          for (let p = 0; p < pcpus; p++) {
            const isCharge = running[p] !== undefined
            const t = clock[p]! + (running[p]?.used ?? 0)
            if (t < at || (t === at && isCharge && !atIsCharge)) {
              at = t
              i = p
              atIsCharge = isCharge
            }
          }
          // charges due at the target are settled; picks at the target belong to the next run
          if (i < 0 || at > target || (at === target && running[i] === undefined)) break
          now = Math.max(now, at)
          fireDueTimers()
          const slice = running[i]
          if (slice !== undefined) {
            clock[i] = at
            running[i] = undefined
            scheduler.charge(slice.world, slice.used, at, slice.next)
            trace.recordUnsafe({
              _tag: "Charge",
              at,
              pcpu: i,
              world: String(slice.world),
              used: slice.used,
              state: slice.next
            })
            continue
          }
          const world = scheduler.pick(i, at)
          if (world === undefined) {
            // idle until something elsewhere can change the picture
            const until = Math.max(at + 1, nextWakeup(i, target))
            clock[i] = until
            if (until - at > quantum) trace.recordUnsafe({ _tag: "Idle", at, pcpu: i, until })
            continue
          }
          trace.recordUnsafe({ _tag: "Dispatch", at, pcpu: i, world: String(world) })
          yield* Queue.offer(slices[i]!, { world, start: at, budget: quantum })
          const result = yield* Queue.take(results)
          const used = Math.max(0, Math.min(result.used, quantum))
          // a world that neither used time nor halted would spin: give it at least 1 ns
          running[i] = { world, used: used === 0 && result.next === "runnable" ? 1 : used, next: result.next }
          quanta++
          rounds++
        }
        now = target
        for (let p = 0; p < pcpus; p++) if (running[p] === undefined && clock[p]! < target) clock[p] = target
        fireDueTimers()
        machine?.advanceDevices(now)
        yield* Effect.yieldNow
      })

    return {
      scheduler,
      now: Effect.sync(() => now),
      addVm: (vmConfig) => Effect.sync(() => scheduler.addVm(vmConfig)),
      addWorld: (vm, body, options) =>
        Effect.sync(() => {
          const id = scheduler.addWorld(vm, now, options)
          bodies.set(id, body)
          worldVm.set(id, vm)
          return id
        }),
      removeVm: (vm) =>
        Effect.sync(() => {
          // a world of this VM may be mid-slice (dispatched, not yet charged): settle what it used up to now first
          for (let p = 0; p < pcpus; p++) {
            const slice = running[p]
            if (slice === undefined || worldVm.get(slice.world) !== vm) continue
            const used = Math.max(0, Math.min(slice.used, now - clock[p]!))
            running[p] = undefined
            clock[p] = clock[p]! + used
            scheduler.charge(slice.world, used, clock[p]!, "exited")
          }
          scheduler.removeVm(vm, now)
          // forget its worlds' bodies (they hold the whole VM); a timer set for one of them may still fire
          for (const [world, owner] of worldVm) {
            if (owner !== vm) continue
            worldVm.delete(world)
            bodies.delete(world)
          }
        }),
      wakeUnsafe: (world) => {
        // a world of a removed VM (a device timer it set before it was destroyed) has nothing to wake
        if (bodies.has(world) && scheduler.stateOf(world) === "halted") scheduler.wake(world, now)
      },
      timerAtUnsafe: (at, fire) => {
        timers.push({ at, seq: timerSeq++, fire })
      },
      runFor,
      stats: Effect.sync(() => scheduler.stats(now)),
      counters: Effect.sync(() => ({ rounds, quanta }))
    }
  })
