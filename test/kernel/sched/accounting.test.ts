/**
 * Must-show (g): accounting adds up exactly, over random scenarios
 * (fast-check): random pCPU counts, VMs (share levels or numbers, vCPU
 * counts, reservations within admission control, limits, hard affinities),
 * and a random event stream in which the pCPUs do NOT move in lockstep:
 * each pCPU has its own next event time, dispatches last random lengths,
 * worlds use a random part of their dispatch and then stay runnable, halt
 * or exit, and halted worlds are woken (and waiting ones halted) at random.
 * With integer times the identities of types.ts are exact:
 *   per pCPU:  used + idle (+ running) = elapsed
 *   per world: used + ready + halted + costop + limited (+ running) = lifetime
 * and so are the per-VM sums. Along the way: a world runs on one pCPU at a
 * time, only inside its affinity; and a VM never exceeds its limit by more
 * than one window of burst plus one dispatch per vCPU.
 */
import fc from "fast-check"
import { describe, expect, it } from "vitest"
import type { VmConfig } from "../../../kernel/sched/config.ts"
import { Scheduler } from "../../../kernel/sched/scheduler.ts"
import type { NextState, SchedulerStats, WorldId } from "../../../kernel/sched/types.ts"

const quantum = 1000
const maxDispatch = 3 * quantum

const vmArb = fc.record({
  shares: fc.oneof(
    fc.constantFrom("high" as const, "normal" as const, "low" as const),
    fc.integer({ min: 1, max: 8000 })
  ),
  vcpus: fc.integer({ min: 1, max: 3 }),
  reservation: fc.option(fc.integer({ min: 1, max: 100 }), { nil: undefined }),
  limit: fc.option(fc.integer({ min: 5, max: 200 }), { nil: undefined }),
  pinned: fc.boolean(),
  addedAt: fc.integer({ min: 0, max: 20 })
})

const opArb = fc.record({
  dispatch: fc.integer({ min: 1, max: maxDispatch }),
  usedPercent: fc.integer({ min: 0, max: 100 }),
  /** 0-2: exits, 3-19: halts, else stays runnable. */
  next: fc.integer({ min: 0, max: 99 }).map((n): NextState => (n < 3 ? "exited" : n < 20 ? "halted" : "runnable")),
  wake: fc.nat(),
  /** In one event out of ten, halt a waiting world (a guest paused from outside). */
  halt: fc.nat().map((n) => (n % 10 === 0 ? n / 10 : undefined)),
  check: fc.boolean()
})

const scenarioArb = fc.record({
  pcpus: fc.integer({ min: 1, max: 3 }),
  vms: fc.array(vmArb, { minLength: 1, maxLength: 5, size: "max" }),
  ops: fc.array(opArb, { minLength: 20, maxLength: 300, size: "max" })
})

type Scenario = typeof scenarioArb extends fc.Arbitrary<infer T> ? T : never

const checkIdentities = (st: SchedulerStats, requireQuiet: boolean): void => {
  for (const p of st.pcpus) {
    expect(p.used + p.idle + p.running).toBe(p.elapsed)
    if (requireQuiet) expect(p.running).toBe(0)
  }
  for (const w of st.worlds) expect(w.used + w.ready + w.halted + w.costop + w.limited + w.running).toBe(w.lifetime)
  for (const vm of st.vms) {
    const mine = st.worlds.filter((w) => w.vm === vm.id)
    for (const k of ["used", "ready", "halted", "costop", "limited", "running"] as const)
      expect(vm[k]).toBe(mine.reduce((s, w) => s + w[k], 0))
  }
  const used = st.pcpus.reduce((s, p) => s + p.used, 0)
  expect(st.worlds.reduce((s, w) => s + w.used, 0)).toBe(used)
}

const run = (sc: Scenario): void => {
  const s = new Scheduler({ pcpus: sc.pcpus, quantum })
  // reservations (percent of a pCPU) scaled down to pass admission control
  const asked = sc.vms.reduce((sum, v) => sum + (v.reservation ?? 0), 0)
  const scale = asked > 100 * sc.pcpus ? (100 * sc.pcpus) / asked : 1
  const worlds: Array<WorldId> = []
  const affinity = new Map<WorldId, ReadonlyArray<number>>()
  const limits = new Map<number, { limit: number; since: number }>()
  const pending = [...sc.vms].sort((a, b) => a.addedAt - b.addedAt)
  const addDue = (now: number): void => {
    while (pending.length > 0 && pending[0]!.addedAt * quantum <= now) {
      const v = pending.shift()!
      const reservation = Math.floor((v.reservation ?? 0) * scale) / 100
      const config: { -readonly [K in keyof VmConfig]: VmConfig[K] } = { shares: v.shares }
      if (reservation > 0) config.reservation = reservation
      if (v.limit !== undefined) config.limit = Math.max(v.limit / 100, reservation)
      const vm = s.addVm(config)
      if (config.limit !== undefined) limits.set(vm, { limit: config.limit, since: now })
      for (let i = 0; i < v.vcpus; i++) {
        const aff = v.pinned ? [(vm + i) % sc.pcpus] : undefined
        const w = s.addWorld(vm, now, aff === undefined ? {} : { affinity: aff })
        worlds.push(w)
        if (aff !== undefined) affinity.set(w, aff)
      }
    }
  }
  const nextAt = new Array<number>(sc.pcpus).fill(0)
  const dispatched: Array<{ world: WorldId; at: number } | undefined> = new Array(sc.pcpus).fill(undefined)
  for (const op of sc.ops) {
    let p = 0
    for (let i = 1; i < sc.pcpus; i++) if (nextAt[i]! < nextAt[p]!) p = i
    const t = nextAt[p]!
    addDue(t)
    const d = dispatched[p]
    if (d !== undefined) {
      s.charge(d.world, Math.floor(((t - d.at) * op.usedPercent) / 100), t, op.next)
      dispatched[p] = undefined
    }
    const halted = worlds.filter((w) => s.stateOf(w) === "halted")
    if (halted.length > 0) s.wake(halted[op.wake % halted.length]!, t)
    if (op.halt !== undefined) {
      const waiting = worlds.filter((w) => ["ready", "costop", "limited"].includes(s.stateOf(w)))
      if (waiting.length > 0) s.halt(waiting[op.halt % waiting.length]!, t)
    }
    const w = s.pick(p, t)
    if (w !== undefined) {
      expect(s.stateOf(w)).toBe("running")
      expect(dispatched.some((x) => x?.world === w)).toBe(false)
      const aff = affinity.get(w)
      if (aff !== undefined) expect(aff).toContain(p)
      dispatched[p] = { world: w, at: t }
    }
    nextAt[p] = t + op.dispatch
    if (op.check) checkIdentities(s.stats(t), false)
  }
  // drain: charge every dispatched world at its own end time, in time order
  const order = [...nextAt.keys()].sort((a, b) => nextAt[a]! - nextAt[b]! || a - b)
  for (const p of order) {
    const d = dispatched[p]
    if (d !== undefined) s.charge(d.world, nextAt[p]! - d.at, nextAt[p]!, "runnable")
  }
  const end = Math.max(...nextAt)
  const st = s.stats(end)
  checkIdentities(st, true)
  for (const p of st.pcpus) expect(p.used + p.idle).toBe(end)
  for (const w of st.worlds) expect(w.used + w.ready + w.halted + w.costop + w.limited).toBe(w.lifetime)
  // the limit holds over the whole run, up to one window of burst and one dispatch per vCPU
  for (const vm of st.vms) {
    const l = limits.get(vm.id)
    if (l === undefined) continue
    const bound = l.limit * (end - l.since) + l.limit * s.config.window + vm.worlds.length * maxDispatch
    expect(vm.used).toBeLessThanOrEqual(bound + 1e-6)
  }
}

describe("accounting (g)", () => {
  it("used + idle = elapsed per pCPU and the world columns = lifetime, exactly, over random scenarios", () => {
    fc.assert(fc.property(scenarioArb, run), { numRuns: 150 })
  })
})
