/**
 * The scheduler's API contract: misuse is a SchedulerError (a hypervisor
 * bug, reported at once, losing nothing), and the lifecycle calls (remove a
 * VM, retire or hot-add a world, affinity) behave as documented in
 * kernel/sched/scheduler.ts.
 */
import { describe, expect, it } from "vitest"
import { RECOMMENDED_QUANTUM_NS, SchedulerError } from "../../../kernel/sched/config.ts"
import { Scheduler } from "../../../kernel/sched/scheduler.ts"

describe("scheduler API", () => {
  it("defaults: the recommended quantum, a 3-quantum skew threshold, a 10-quantum window", () => {
    const s = new Scheduler({ pcpus: 1 })
    expect(s.quantum).toBe(RECOMMENDED_QUANTUM_NS)
    expect(s.config.skewThreshold).toBe(3 * RECOMMENDED_QUANTUM_NS)
    expect(s.config.window).toBe(10 * RECOMMENDED_QUANTUM_NS)
  })

  it("rejects misuse with SchedulerError", () => {
    expect(() => new Scheduler({ pcpus: 0 })).toThrow(SchedulerError)
    expect(() => new Scheduler({ pcpus: 1, quantum: 10, window: 5 })).toThrow(SchedulerError)
    const s = new Scheduler({ pcpus: 2, quantum: 100 })
    expect(() => s.addVm({ shares: 0 })).toThrow(SchedulerError)
    expect(() => s.addVm({ limit: -1 })).toThrow(SchedulerError)
    const vm = s.addVm({})
    expect(() => s.addWorld(vm, 0, { affinity: [] })).toThrow(SchedulerError)
    expect(() => s.addWorld(vm, 0, { affinity: [2] })).toThrow(SchedulerError)
    expect(() => s.addWorld(99, 0)).toThrow(SchedulerError)
    const w = s.addWorld(vm, 0)
    expect(() => s.pick(5, 0)).toThrow(SchedulerError)
    expect(() => s.charge(w, 0, 10, "runnable")).toThrow(SchedulerError) // not dispatched
    expect(s.pick(0, 0)).toBe(w)
    expect(() => s.pick(0, 10)).toThrow(SchedulerError) // pCPU 0 not charged yet
    expect(() => s.halt(w, 10)).toThrow(SchedulerError) // running: halts through charge
    expect(() => s.charge(w, 200, 100, "runnable")).toThrow(SchedulerError) // used > dispatch
    s.charge(w, 100, 100, "exited")
    expect(() => s.pick(0, 50)).toThrow(SchedulerError) // time went backwards
    expect(() => s.wake(w, 100)).toThrow(SchedulerError) // exited
    expect(s.pick(0, 100)).toBeUndefined()
  })

  it("hard affinity keeps a world on its pCPUs; free worlds migrate", () => {
    const s = new Scheduler({ pcpus: 2, quantum: 100 })
    const vm = s.addVm({})
    const pinned = s.addWorld(vm, 0, { affinity: [1] })
    expect(s.pick(0, 0)).toBeUndefined()
    expect(s.pick(1, 0)).toBe(pinned)
    const free = s.addWorld(s.addVm({}), 0)
    expect(s.pick(0, 0)).toBe(free)
    s.charge(free, 100, 100, "runnable")
    s.charge(pinned, 100, 100, "runnable")
    expect(s.pick(1, 100)).toBe(pinned)
    expect(s.pick(0, 100)).toBe(free)
  })

  it("removing a VM frees its reservation and its worlds; a retired world is never picked", () => {
    const s = new Scheduler({ pcpus: 1, quantum: 100 })
    const a = s.addVm({ reservation: 1 })
    const wa = s.addWorld(a, 0)
    expect(() => s.addVm({ reservation: 0.1 })).toThrow(SchedulerError)
    expect(s.pick(0, 0)).toBe(wa)
    expect(() => s.removeVm(a, 50)).toThrow(SchedulerError) // its world is running
    s.charge(wa, 50, 50, "runnable")
    s.removeVm(a, 50)
    expect(s.stats(50).vms).toEqual([])
    const b = s.addVm({ reservation: 0.5 })
    const w1 = s.addWorld(b, 50)
    const w2 = s.addWorld(b, 50)
    s.removeWorld(w1, 60)
    expect(s.stateOf(w1)).toBe("exited")
    expect(s.pick(0, 60)).toBe(w2)
    const st = s.stats(70)
    expect(st.vms[0]!.vcpus).toBe(1)
    expect(st.worlds.find((w) => w.id === w1)!.lifetime).toBe(10)
  })

  it("a hot-added vCPU starts level with its VM's laggard, so it neither lags nor co-stops anyone", () => {
    const s = new Scheduler({ pcpus: 1, quantum: 100, skewThreshold: 300 })
    const vm = s.addVm({})
    const first = s.addWorld(vm, 0)
    for (let t = 0; t < 10_000; t += 100) {
      const w = s.pick(0, t)!
      s.charge(w, 100, t + 100, "runnable")
    }
    const added = s.addWorld(vm, 10_000)
    const st = s.stats(10_000)
    expect(st.worlds.find((w) => w.id === added)!.progress).toBe(st.worlds.find((w) => w.id === first)!.progress)
    expect(st.vms[0]!.skew).toBe(0)
    expect(s.stateOf(first)).toBe("ready")
  })

  it("a woken or newly added world starts at the scheduler's virtual time, not at zero", () => {
    const s = new Scheduler({ pcpus: 1, quantum: 100 })
    const a = s.addWorld(s.addVm({}), 0)
    for (let t = 0; t < 5000; t += 100) {
      s.pick(0, t)
      s.charge(a, 100, t + 100, "runnable")
    }
    const b = s.addWorld(s.addVm({}), 5000)
    const st = s.stats(5000)
    expect(st.worlds.find((w) => w.id === b)!.vtime).toBe(st.virtualTime)
    expect(st.virtualTime).toBeGreaterThan(0)
  })
})
