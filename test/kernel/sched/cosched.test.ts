/**
 * Must-show (e): relaxed co-scheduling (VMware, "The CPU Scheduler in
 * VMware vSphere 5.1", "Relaxed Co-Scheduling"). A 2-vCPU VM on 2 pCPUs:
 * vCPU 0 has pCPU 0 to itself, vCPU 1 shares pCPU 1 with two other VMs, so
 * vCPU 1 progresses at about a third of vCPU 0's rate. The skew between them
 * must stay below threshold + one quantum (the leader is co-stopped),
 * while without co-scheduling it would grow without bound; and a halted
 * vCPU is progress, not skew: its sibling is never co-stopped because of it.
 */
import { describe, expect, it } from "vitest"
import { Scheduler } from "../../../kernel/sched/scheduler.ts"
import { runLockstep } from "./sim.ts"

const quantum = 1000
const quanta = 10_000

/** VM X (2 vCPUs, vCPU i pinned to pCPU i) plus two 1-vCPU VMs pinned to pCPU 1. */
const contended = (skewThreshold: number, haltSecond = false) => {
  const s = new Scheduler({ pcpus: 2, quantum, skewThreshold })
  const x = s.addVm({ name: "x", shares: "normal" })
  const lead = s.addWorld(x, 0, { affinity: [0] })
  const lag = s.addWorld(x, 0, { affinity: [1], halted: haltSecond })
  for (const name of ["y", "z"]) s.addWorld(s.addVm({ name }), 0, { affinity: [1] })
  return { s, x, lead, lag }
}

describe("relaxed co-scheduling (e)", () => {
  it("keeps a 2-vCPU VM's skew below threshold + one quantum when one vCPU competes on another pCPU", () => {
    const threshold = 3 * quantum
    const { s, x, lead, lag } = contended(threshold)
    let worst = 0
    runLockstep(s, {
      quantum,
      quanta,
      after: (_, t) => {
        worst = Math.max(worst, s.stats(t).vms[x]!.skew)
      }
    })
    expect(worst).toBeLessThan(threshold + quantum)
    const st = s.stats(quanta * quantum)
    const l = st.worlds.find((w) => w.id === lead)!
    const g = st.worlds.find((w) => w.id === lag)!
    expect(Math.abs(l.used - g.used)).toBeLessThan(threshold + quantum)
    expect(Math.abs(g.used / (quanta * quantum) - 1 / 3)).toBeLessThanOrEqual(0.02) // its fair share on pCPU 1
    expect(l.costop).toBeGreaterThan(0.6 * quanta * quantum) // the leader waits ~2/3 of the time, co-stopped
    expect(l.used + l.costop + l.ready).toBe(quanta * quantum)
  })

  it("without co-stop (a huge threshold) the same VM's skew grows without bound (control)", () => {
    const { s, x } = contended(1e15)
    runLockstep(s, { quantum, quanta })
    expect(s.stats(quanta * quantum).vms[x]!.skew).toBeGreaterThan(0.6 * quanta * quantum)
  })

  it("a halted vCPU is not skew: its running sibling is never co-stopped", () => {
    const threshold = 3 * quantum
    const { s, x, lead, lag } = contended(threshold, true)
    let worst = 0
    runLockstep(s, {
      quantum,
      quanta,
      after: (_, t) => {
        worst = Math.max(worst, s.stats(t).vms[x]!.skew)
      }
    })
    const st = s.stats(quanta * quantum)
    const l = st.worlds.find((w) => w.id === lead)!
    const g = st.worlds.find((w) => w.id === lag)!
    expect(worst).toBe(0)
    expect(l.costop).toBe(0)
    expect(l.used).toBe(quanta * quantum) // pCPU 0 to itself, all the time
    expect(g.halted).toBe(quanta * quantum)
    expect(g.used).toBe(0)
  })

  it("a vCPU that halts and wakes often (an idle SMP guest) never makes its sibling co-stop", () => {
    const threshold = 3 * quantum
    const s = new Scheduler({ pcpus: 2, quantum, skewThreshold: threshold })
    const x = s.addVm({ name: "x" })
    const lead = s.addWorld(x, 0, { affinity: [0] })
    const idler = s.addWorld(x, 0, { affinity: [1] })
    s.addWorld(s.addVm({ name: "y" }), 0, { affinity: [1] })
    let worst = 0
    runLockstep(s, {
      quantum,
      quanta,
      // the idler runs one quantum, then HLTs until the next 20-quantum timer tick
      next: (w) => (w === idler ? "halted" : "runnable"),
      before: (k, t) => {
        if (k % 20 === 0) s.wake(idler, t)
      },
      after: (_, t) => {
        worst = Math.max(worst, s.stats(t).vms[x]!.skew)
      }
    })
    expect(worst).toBeLessThan(threshold + quantum)
    expect(s.stats(quanta * quantum).worlds.find((w) => w.id === lead)!.costop).toBe(0)
  })
})
