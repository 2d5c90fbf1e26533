/**
 * Must-show (a): proportional share. Three CPU-bound single-vCPU VMs with
 * shares 2000/1000/1000 on one pCPU get 50/25/25 % of it, within +-2 %, over
 * 10^4 quanta (stride scheduling's bound is one quantum of error at any
 * time: Waldspurger, "Lottery and Stride Scheduling", 1995, ch. 4). ESX's
 * named levels (high/normal/low = 2000/1000/500 per vCPU) give 4:2:1.
 */
import { describe, expect, it } from "vitest"
import { Scheduler } from "../../../kernel/sched/scheduler.ts"
import { runLockstep, shareOf, vmWith } from "./sim.ts"

const quantum = 1000

describe("proportional share (a)", () => {
  it("shares 2000/1000/1000 on 1 pCPU give 50/25/25 % within 2 % over 10^4 quanta", () => {
    const s = new Scheduler({ pcpus: 1, quantum })
    const vms = [2000, 1000, 1000].map((shares) => vmWith(s, { shares }).vm)
    runLockstep(s, { quantum, quanta: 10_000 })
    const got = vms.map((vm) => shareOf(s, 10_000 * quantum, vm))
    for (const [i, want] of [0.5, 0.25, 0.25].entries()) expect(Math.abs(got[i]! - want)).toBeLessThanOrEqual(0.02)
    // the pCPU is never idle while a world is ready, and everyone else waits as ready time
    const st = s.stats(10_000 * quantum)
    expect(st.pcpus[0]!.idle).toBe(0)
    for (const w of st.worlds) expect(w.used + w.ready).toBe(10_000 * quantum)
  })

  it("stays proportional at every moment, not only on average (lag within a few quanta)", () => {
    const s = new Scheduler({ pcpus: 1, quantum })
    const vms = [2000, 1000, 1000].map((shares) => vmWith(s, { shares }).vm)
    let worst = 0
    runLockstep(s, {
      quantum,
      quanta: 2000,
      after: (_, t) => {
        const st = s.stats()
        const ideal = [0.5, 0.25, 0.25].map((f) => f * t)
        vms.forEach((vm, i) => {
          worst = Math.max(worst, Math.abs(st.vms[vm]!.used - ideal[i]!))
        })
      }
    })
    expect(worst).toBeLessThanOrEqual(2 * quantum)
  })

  it("named levels high/normal/low weigh 2000/1000/500", () => {
    const s = new Scheduler({ pcpus: 1, quantum })
    const vms = (["high", "normal", "low"] as const).map((shares) => vmWith(s, { shares }).vm)
    runLockstep(s, { quantum, quanta: 7000 })
    for (const [i, want] of [4 / 7, 2 / 7, 1 / 7].entries())
      expect(Math.abs(shareOf(s, 7000 * quantum, vms[i]!) - want)).toBeLessThanOrEqual(0.02)
    expect(s.stats().vms.map((v) => v.shares)).toEqual([2000, 1000, 500])
  })
})
