/**
 * Must-show (d): halted worlds. A vCPU that executes HLT (charged with
 * nextState "halted") consumes nothing, is never picked, and accumulates
 * halted (esxtop %WAIT/%IDLE) time; `wake` (a virtual interrupt) makes it
 * runnable at the scheduler's current virtual time, so it gets no burst
 * from the credit it "saved" while asleep (start-time fair queueing's rule,
 * Goyal et al. 1996) and the worlds that kept running are not starved.
 */
import { describe, expect, it } from "vitest"
import { Scheduler } from "../../../kernel/sched/scheduler.ts"
import { runLockstep, vmWith } from "./sim.ts"

const quantum = 1000
const phase = 3000

/** Longest run of consecutive picks of `world` and longest gap between picks of `others` in a 1-pCPU trace. */
const runsAndGaps = (trace: ReadonlyArray<string>, world: number, others: ReadonlyArray<number>) => {
  const picks = trace.map((e) => e.split(":")[2])
  let longestRun = 0
  let run = 0
  for (const p of picks) {
    run = p === String(world) ? run + 1 : 0
    longestRun = Math.max(longestRun, run)
  }
  const longestGap = others.map((o) => {
    let gap = 0
    let worst = 0
    for (const p of picks) {
      gap = p === String(o) ? 0 : gap + 1
      worst = Math.max(worst, gap)
    }
    return worst
  })
  return { longestRun, longestGap }
}

describe("halted worlds (d)", () => {
  it("a halted VM consumes 0, its halted time accumulates, and it wakes without a burst or starving others", () => {
    const s = new Scheduler({ pcpus: 1, quantum })
    const a = vmWith(s, { shares: 1000 })
    const b = vmWith(s, { shares: 1000 })
    const c = vmWith(s, { shares: 1000 })
    const cw = c.worlds[0]!
    let usedAtStep100 = -1
    // phase 1: C runs one quantum, then halts (HLT) and stays halted
    runLockstep(s, {
      quantum,
      quanta: phase,
      next: (w) => (w === cw ? "halted" : "runnable"),
      after: (k, t) => {
        if (k === 100) usedAtStep100 = s.stats(t).vms[c.vm]!.used
      }
    })
    let st = s.stats(phase * quantum)
    const cStats = st.worlds.find((w) => w.id === cw)!
    expect(cStats.state).toBe("halted")
    expect(cStats.used).toBe(quantum) // its one quantum, then nothing
    expect(usedAtStep100).toBe(quantum)
    expect(cStats.halted).toBe(phase * quantum - 3 * quantum) // halted since the end of its quantum (step 2)
    expect(cStats.ready).toBe(2 * quantum) // waited behind A and B at the start
    for (const vm of [a.vm, b.vm])
      expect(Math.abs(st.vms[vm]!.used / (phase * quantum) - 0.5)).toBeLessThanOrEqual(0.02)

    // phase 2: a virtual interrupt wakes C; everybody CPU-bound again
    const before = st.vms.map((v) => v.used)
    const trace = runLockstep(s, {
      quantum,
      quanta: phase,
      start: phase * quantum,
      before: (k, t) => {
        if (k === 0) s.wake(cw, t)
      }
    })
    st = s.stats(2 * phase * quantum)
    for (const vm of [a.vm, b.vm, c.vm]) {
      const share = (st.vms[vm]!.used - before[vm]!) / (phase * quantum)
      expect(Math.abs(share - 1 / 3)).toBeLessThanOrEqual(0.02)
    }
    const { longestRun, longestGap } = runsAndGaps(trace, cw, [a.worlds[0]!, b.worlds[0]!])
    expect(longestRun).toBeLessThanOrEqual(2) // no burst from the credit of 3000 halted quanta
    for (const g of longestGap) expect(g).toBeLessThanOrEqual(3) // nobody starved after the wake
  })

  it("an interactive VM (runs a quarter quantum, then halts until an interrupt) uses only what it asks for", () => {
    const s = new Scheduler({ pcpus: 1, quantum })
    const a = vmWith(s, { shares: 1000 })
    const c = vmWith(s, { shares: 1000 })
    const cw = c.worlds[0]!
    const end = 4000 * quantum
    for (let t = 0; t < end; t += quantum) {
      if (t % (10 * quantum) === 0) s.wake(cw, t) // a timer interrupt every 10 quanta
      const w = s.pick(0, t)!
      const used = w === cw ? quantum / 4 : quantum
      s.charge(w, used, t + quantum, w === cw ? "halted" : "runnable")
    }
    const st = s.stats(end)
    const cs = st.worlds.find((w) => w.id === cw)!
    expect(cs.used).toBe((end / (10 * quantum)) * (quantum / 4)) // once per interrupt
    expect(cs.used + cs.ready + cs.halted).toBe(end)
    expect(st.vms[a.vm]!.used).toBe(end - st.pcpus[0]!.idle - cs.used)
    expect(st.pcpus[0]!.idle).toBe(cs.used * 3) // the rest of C's dispatches
  })

  it("with every world halted the pCPU is idle and nothing is picked", () => {
    const s = new Scheduler({ pcpus: 2, quantum })
    const vm = s.addVm({})
    const w = s.addWorld(vm, 0, { halted: true })
    expect(s.pick(0, 0)).toBeUndefined()
    expect(s.pick(1, 500)).toBeUndefined()
    const st = s.stats(1000)
    expect(st.worlds[0]!.halted).toBe(1000)
    expect(st.pcpus.map((p) => p.idle)).toEqual([1000, 1000])
    s.wake(w, 1000)
    expect(s.pick(1, 1000)).toBe(w)
  })
})
