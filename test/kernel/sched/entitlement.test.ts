/**
 * Must-show (b) and (c): ESX reservation and limit ("vSphere Resource
 * Management Guide", "CPU Virtualization Basics": a reservation is a
 * guaranteed minimum, a limit a maximum even on an idle host).
 * (b) VM A (1000 shares, reservation 0.6) against three CPU-bound VMs of
 *     1000 shares on one pCPU gets >= 60 % - 2 % (its fair share alone
 *     would be 25 %); the other three split the rest equally.
 * (c) a VM limited to 0.3, alone on the machine, gets 30 % +- 2 %; the rest
 *     is idle time of the pCPU and limited (%MLMTD) time of the world.
 */
import { describe, expect, it } from "vitest"
import { SchedulerError } from "../../../kernel/sched/config.ts"
import { Scheduler } from "../../../kernel/sched/scheduler.ts"
import { runLockstep, shareOf, vmWith } from "./sim.ts"

const quantum = 1000
const quanta = 10_000
const end = quanta * quantum

describe("reservation (b)", () => {
  it("a 0.6 reservation is honoured against three equal CPU-bound VMs", () => {
    const s = new Scheduler({ pcpus: 1, quantum })
    const a = vmWith(s, { shares: 1000, reservation: 0.6 }).vm
    const others = [1, 2, 3].map(() => vmWith(s, { shares: 1000 }).vm)
    runLockstep(s, { quantum, quanta })
    expect(shareOf(s, end, a)).toBeGreaterThanOrEqual(0.6 - 0.02)
    for (const vm of others) expect(Math.abs(shareOf(s, end, vm) - 0.4 / 3)).toBeLessThanOrEqual(0.02)
  })

  it("without the reservation the same VM gets its fair 25 % (control)", () => {
    const s = new Scheduler({ pcpus: 1, quantum })
    const a = vmWith(s, { shares: 1000 }).vm
    for (let i = 0; i < 3; i++) vmWith(s, { shares: 1000 })
    runLockstep(s, { quantum, quanta })
    expect(Math.abs(shareOf(s, end, a) - 0.25)).toBeLessThanOrEqual(0.02)
  })

  it("a reservation below the fair share changes nothing: A gets max(reservation, share)", () => {
    const s = new Scheduler({ pcpus: 1, quantum })
    const a = vmWith(s, { shares: 1000, reservation: 0.1 }).vm
    const b = vmWith(s, { shares: 1000 }).vm
    runLockstep(s, { quantum, quanta })
    expect(Math.abs(shareOf(s, end, a) - 0.5)).toBeLessThanOrEqual(0.02)
    expect(Math.abs(shareOf(s, end, b) - 0.5)).toBeLessThanOrEqual(0.02)
  })

  it("admission control refuses reservations beyond the pCPUs, and a reservation above the limit", () => {
    const s = new Scheduler({ pcpus: 1, quantum })
    s.addVm({ reservation: 0.7 })
    expect(() => s.addVm({ reservation: 0.4 })).toThrow(SchedulerError)
    expect(() => s.addVm({ reservation: 0.2, limit: 0.1 })).toThrow(SchedulerError)
    expect(s.addVm({ reservation: 0.3 })).toBeTypeOf("number")
  })
})

describe("limit (c)", () => {
  it("a 0.3 limit caps the only VM of an idle machine at 30 % +- 2 %", () => {
    const s = new Scheduler({ pcpus: 1, quantum })
    const { vm, worlds } = vmWith(s, { limit: 0.3 })
    runLockstep(s, { quantum, quanta })
    expect(Math.abs(shareOf(s, end, vm) - 0.3)).toBeLessThanOrEqual(0.02)
    const st = s.stats(end)
    const cpu = st.pcpus[0]!
    expect(cpu.used + cpu.idle).toBe(quanta * quantum)
    expect(Math.abs(cpu.idle / cpu.elapsed - 0.7)).toBeLessThanOrEqual(0.02)
    const w = st.worlds.find((x) => x.id === worlds[0])!
    expect(w.ready).toBe(0)
    expect(w.used + w.limited).toBe(quanta * quantum)
  })

  it("a limited VM under contention still gets no more than its cap, and the rest goes to the others", () => {
    const s = new Scheduler({ pcpus: 1, quantum })
    const l = vmWith(s, { shares: 4000, limit: 0.2 }).vm
    const b = vmWith(s, { shares: 1000 }).vm
    runLockstep(s, { quantum, quanta })
    expect(Math.abs(shareOf(s, end, l) - 0.2)).toBeLessThanOrEqual(0.02)
    expect(Math.abs(shareOf(s, end, b) - 0.8)).toBeLessThanOrEqual(0.02)
  })

  it("nextLimitLift tells an idle pCPU when the limited world is eligible again", () => {
    const s = new Scheduler({ pcpus: 1, quantum, window: quantum })
    const { worlds } = vmWith(s, { limit: 0.25 })
    const w = s.pick(0, 0)!
    expect(w).toBe(worlds[0])
    s.charge(w, quantum, quantum, "runnable") // budget min(250, 250 + 250) - 1000 = -750
    expect(s.stateOf(w)).toBe("limited")
    expect(s.pick(0, quantum)).toBeUndefined()
    const at = s.nextLimitLift()!
    expect(at).toBe(4 * quantum) // 750 / 0.25 later
    expect(s.pick(0, at - 1)).toBeUndefined()
    expect(s.pick(0, at)).toBe(w)
  })
})
