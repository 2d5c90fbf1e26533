/**
 * drivers/timer.ts on a real Machine: the PIT, programmed through the port
 * bus with the 8259A pair in polled mode, produces ticks at the programmed
 * rate in virtual time; the local APIC timer does the same in periodic mode
 * and fires once in one-shot mode.
 */
import { describe, expect, it } from "@effect/vitest"
import { PicDriver } from "../../drivers/pic.ts"
import { LapicTimer, PIT_MAX_HZ, PitTimer } from "../../drivers/timer.ts"
import { PIT_HZ } from "../../hw/devices/pit8254/registers.ts"
import { makeHost, unwrap } from "./harness.ts"

const MS = 1_000_000

describe("PIT driver", () => {
  it.each([100, 1000, 250])("ticks at %i Hz in virtual time", (hz) => {
    const { machine } = makeHost()
    const pic = new PicDriver(machine.ports)
    pic.init()
    const pit = new PitTimer(machine.ports, pic)
    const rate = unwrap(pit.start(hz))
    expect(rate).toBe(PIT_HZ / Math.round(PIT_HZ / hz))
    const ticks = pit.runUntil(machine, 500 * MS)
    const expected = 0.5 * rate
    expect(Math.abs(ticks - expected)).toBeLessThanOrEqual(1)
    expect(machine.now).toBe(500 * MS)
    // a second window: the count keeps to the rate (no drift, no lost ticks)
    pit.runUntil(machine, 1000 * MS)
    expect(Math.abs(pit.ticks - rate)).toBeLessThanOrEqual(1)
    expect(pit.unhandled).toBe(0)
  })

  it("stops ticking when stopped", () => {
    const { machine } = makeHost()
    const pic = new PicDriver(machine.ports)
    pic.init()
    const pit = new PitTimer(machine.ports, pic)
    unwrap(pit.start(1000))
    pit.runUntil(machine, 10 * MS)
    pit.stop()
    expect(pit.runUntil(machine, 50 * MS)).toBe(0)
  })

  it("rejects rates the 8254 cannot make", () => {
    const { machine } = makeHost()
    const pit = new PitTimer(machine.ports, new PicDriver(machine.ports))
    expect(pit.start(10).ok).toBe(false)
    expect(pit.start(PIT_MAX_HZ * 2).ok).toBe(false)
    expect(pit.start(Number.NaN).ok).toBe(false)
  })
})

describe("local APIC timer driver", () => {
  const setup = () => {
    const { machine } = makeHost()
    const timer = new LapicTimer(machine.lapics[0]!, { acknowledge: () => machine.cpus[0]!.acknowledge() })
    return { machine, timer }
  }

  it("ticks periodically at the programmed period", () => {
    const { machine, timer } = setup()
    expect(unwrap(timer.start({ vector: 0x40, periodic: true, periodNs: 2 * MS }))).toBe(2 * MS)
    expect(timer.runUntil(machine, 100 * MS)).toBe(50)
    expect(timer.unhandled).toBe(0)
  })

  it("fires once in one-shot mode", () => {
    const { machine, timer } = setup()
    unwrap(timer.start({ vector: 0x41, periodic: false, periodNs: 3 * MS, divide: 1 }))
    expect(timer.runUntil(machine, 2 * MS)).toBe(0)
    expect(timer.runUntil(machine, 20 * MS)).toBe(1)
    expect(timer.currentCount()).toBe(0)
  })

  it("rejects bad vectors and periods", () => {
    const { timer } = setup()
    expect(timer.start({ vector: 3, periodic: true, periodNs: MS }).ok).toBe(false)
    expect(timer.start({ vector: 0x40, periodic: true, periodNs: 0 }).ok).toBe(false)
    expect(timer.start({ vector: 0x40, periodic: true, periodNs: MS, divide: 3 }).ok).toBe(false)
  })
})
