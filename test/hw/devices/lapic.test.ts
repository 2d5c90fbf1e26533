/**
 * The local APIC (hw/devices/lapic) against Intel SDM Vol. 3A ch. 11 (ch. 10
 * in older editions): one describe per SDM section, then snapshot/restore
 * and fast-check properties (random register traffic never throws, keeps the
 * priority invariants, and the APIC works again after reset).
 */
import { describe, expect, it } from "@effect/vitest"
import fc from "fast-check"
import { type IpiMessage, routeIpi } from "../../../hw/devices/lapic/ipi.ts"
import { LocalApic } from "../../../hw/devices/lapic/lapic.ts"
import { DeliveryMode, divisorOf, LapicReg as R, Shorthand } from "../../../hw/devices/lapic/registers.ts"

const BUS_HZ = 100_000_000 // 10 ns per bus clock

const makeApic = (id = 0, busHz = BUS_HZ) => {
  const time = { now: 0 }
  const apic = new LocalApic({ id, busHz, clock: () => time.now })
  return { apic, time }
}
const enabled = (id = 0, busHz = BUS_HZ) => {
  const m = makeApic(id, busHz)
  m.apic.write(R.SVR, 4, 0x1ff)
  return m
}
/** A small SMP: n APICs wired to each other through routeIpi. */
const smp = (n: number) => {
  const time = { now: 0 }
  const apics = Array.from({ length: n }, (_, id) => new LocalApic({ id, busHz: BUS_HZ, clock: () => time.now }))
  for (const a of apics) {
    a.write(R.SVR, 4, 0x1ff)
    a.onIpi((ipi) => routeIpi(apics, a, ipi))
  }
  return { apics, time }
}
const irrHas = (apic: LocalApic, v: number) => (apic.read(R.IRR0 + (v >>> 5) * 16, 4) & (1 << (v & 31))) !== 0
const isrHas = (apic: LocalApic, v: number) => (apic.read(R.ISR0 + (v >>> 5) * 16, 4) & (1 << (v & 31))) !== 0
const icr = (apic: LocalApic, low: number, dest = 0) => {
  apic.write(R.ICR_HIGH, 4, dest << 24)
  apic.write(R.ICR_LOW, 4, low)
}
const readEsr = (apic: LocalApic) => {
  apic.write(R.ESR, 4, 0)
  return apic.read(R.ESR, 4)
}

describe("11.4.7.1 power-up state, 11.4.6 ID, 11.4.8 version", () => {
  it("resets to the SDM values", () => {
    const { apic } = makeApic(3)
    expect(apic.read(R.ID, 4)).toBe(0x03000000)
    expect(apic.read(R.VERSION, 4)).toBe(0x00050014)
    expect(apic.read(R.DFR, 4)).toBe(0xffffffff)
    expect(apic.read(R.SVR, 4)).toBe(0xff)
    expect(apic.softwareEnabled).toBe(false)
    for (const lvt of [R.LVT_TIMER, R.LVT_THERMAL, R.LVT_PERF, R.LVT_LINT0, R.LVT_LINT1, R.LVT_ERROR])
      expect(apic.read(lvt, 4)).toBe(0x00010000)
    for (const reg of [R.TPR, R.PPR, R.LDR, R.ICR_LOW, R.ICR_HIGH, R.TIMER_INITIAL, R.TIMER_CURRENT, R.TIMER_DIVIDE])
      expect(apic.read(reg, 4)).toBe(0)
  })

  it("the ID is writable (bits 31:24) and the version is read-only", () => {
    const { apic } = makeApic(0)
    apic.write(R.ID, 4, 0x07123456)
    expect(apic.read(R.ID, 4)).toBe(0x07000000)
    expect(apic.apicId).toBe(7)
    apic.write(R.VERSION, 4, 0)
    expect(apic.read(R.VERSION, 4)).toBe(0x00050014)
  })

  it("byte and word reads see the dword's low bytes; narrow or unaligned writes are ignored", () => {
    const { apic } = makeApic(0x42)
    expect(apic.read(R.ID + 3, 1)).toBe(0x42)
    expect(apic.read(R.VERSION + 2, 2)).toBe(0x0005)
    expect(apic.read(R.VERSION + 4, 4)).toBe(0)
    expect(apic.read(R.VERSION + 1, 4)).toBe(0x000500)
    apic.write(R.TPR, 1, 0x20)
    apic.write(R.TPR + 4, 4, 0x20)
    expect(apic.read(R.TPR, 4)).toBe(0)
    expect(apic.read(-4, 4)).toBe(0xffffffff)
    expect(apic.read(0x1000, 2)).toBe(0xffff)
  })
})

describe("11.4.7.2 software enable (SVR bit 8) and 11.9 spurious vector", () => {
  it("while disabled, LVT masks stay set and fixed interrupts are dropped", () => {
    const { apic } = makeApic()
    apic.write(R.LVT_TIMER, 4, 0x40)
    expect(apic.read(R.LVT_TIMER, 4)).toBe(0x10040)
    expect(apic.accept(0x40)).toBe(false)
    expect(apic.hasInterrupt()).toBe(false)
  })

  it("clearing the enable bit masks every LVT entry; re-enabling does not unmask", () => {
    const { apic } = enabled()
    apic.write(R.LVT_LINT0, 4, 0x700)
    apic.write(R.SVR, 4, 0xff)
    expect(apic.read(R.LVT_LINT0, 4)).toBe(0x10700)
    apic.write(R.SVR, 4, 0x1ff)
    expect(apic.read(R.LVT_LINT0, 4)).toBe(0x10700)
  })

  it("INTA with nothing deliverable returns the spurious vector without touching ISR", () => {
    const { apic } = enabled()
    apic.write(R.SVR, 4, 0x1ef)
    expect(apic.acknowledge()).toBe(0xef)
    expect(apic.read(R.ISR0 + 0x70, 4)).toBe(0)
  })
})

describe("11.8.3 TPR/PPR, 11.8.4 IRR/ISR/TMR, 11.8.5 EOI", () => {
  it("accepts into IRR, acknowledges into ISR, EOI clears the highest ISR bit", () => {
    const { apic } = enabled()
    apic.accept(0x31)
    apic.accept(0x52)
    expect(irrHas(apic, 0x31) && irrHas(apic, 0x52)).toBe(true)
    expect(apic.hasInterrupt()).toBe(true)
    expect(apic.acknowledge()).toBe(0x52)
    expect(isrHas(apic, 0x52) && !irrHas(apic, 0x52)).toBe(true)
    expect(apic.read(R.PPR, 4)).toBe(0x50)
    expect(apic.hasInterrupt()).toBe(false) // 0x31's class 3 is below PPR class 5
    apic.write(R.EOI, 4, 0)
    expect(isrHas(apic, 0x52)).toBe(false)
    expect(apic.acknowledge()).toBe(0x31)
  })

  it("a higher class nests over an in-service one", () => {
    const { apic } = enabled()
    apic.accept(0x41)
    expect(apic.acknowledge()).toBe(0x41)
    apic.accept(0x61)
    expect(apic.acknowledge()).toBe(0x61)
    apic.write(R.EOI, 4, 0)
    expect(isrHas(apic, 0x61)).toBe(false)
    expect(isrHas(apic, 0x41)).toBe(true)
  })

  it("TPR blocks classes at or below it; PPR is max(TPR, ISR class)", () => {
    const { apic } = enabled()
    apic.write(R.TPR, 4, 0x1234_56)
    expect(apic.read(R.TPR, 4)).toBe(0x56)
    apic.accept(0x55)
    expect(apic.hasInterrupt()).toBe(false)
    expect(apic.read(R.PPR, 4)).toBe(0x56)
    apic.write(R.TPR, 4, 0x40)
    expect(apic.hasInterrupt()).toBe(true)
  })

  it("TMR records level-triggered vectors and their EOI is reported for the I/O APIC", () => {
    const { apic } = enabled()
    const eois: Array<number> = []
    apic.onEoi((v) => eois.push(v))
    apic.accept(0x80, true)
    apic.accept(0x70)
    expect(apic.read(R.TMR0 + 0x40, 4)).toBe(1)
    apic.acknowledge()
    apic.write(R.EOI, 4, 0)
    apic.acknowledge()
    apic.write(R.EOI, 4, 0)
    expect(eois).toEqual([0x80])
  })

  it("ISR/TMR/IRR banks are read-only", () => {
    const { apic } = enabled()
    apic.write(R.IRR0 + 0x10, 4, 0xffffffff)
    apic.write(R.ISR0 + 0x10, 4, 0xffffffff)
    expect(apic.read(R.IRR0 + 0x10, 4)).toBe(0)
    expect(apic.read(R.ISR0 + 0x10, 4)).toBe(0)
    expect(readEsr(apic)).toBe(0)
  })
})

describe("11.5.2 illegal vectors, 11.5.3 ESR", () => {
  it("receiving a vector 0-15 logs an error, delivered through the error LVT", () => {
    const { apic } = enabled()
    apic.write(R.LVT_ERROR, 4, 0xfe)
    expect(apic.accept(7)).toBe(false)
    expect(apic.read(R.ESR, 4)).toBe(0) // not latched until written
    expect(readEsr(apic)).toBe(0x40)
    expect(readEsr(apic)).toBe(0)
    expect(apic.acknowledge()).toBe(0xfe)
  })

  it("sending an illegal fixed vector logs 'send illegal vector' and sends nothing", () => {
    const { apic } = enabled()
    const sent: Array<IpiMessage> = []
    apic.onIpi((ipi) => sent.push(ipi))
    icr(apic, 0x0000_4005, 1)
    expect(sent).toEqual([])
    expect(readEsr(apic)).toBe(0x20)
  })

  it("a reserved register logs 'illegal register address'", () => {
    const { apic } = enabled()
    apic.read(0x2f0, 4)
    expect(readEsr(apic)).toBe(0x80)
    apic.write(0x400, 4, 1)
    expect(readEsr(apic)).toBe(0x80)
  })

  it("an illegal error-LVT vector does not recurse", () => {
    const { apic } = enabled()
    apic.write(R.LVT_ERROR, 4, 0x03)
    apic.accept(1)
    expect(readEsr(apic)).toBe(0x40)
    expect(apic.hasInterrupt()).toBe(false)
  })
})

describe("11.5.4 APIC timer", () => {
  it("maps the divide configuration register to its divisor (Figure 11-10)", () => {
    expect([0, 1, 2, 3, 8, 9, 10, 11].map(divisorOf)).toEqual([2, 4, 8, 16, 32, 64, 128, 1])
  })

  it("one-shot: fires exactly at the deadline, current count follows virtual time, then stays 0", () => {
    const { apic, time } = enabled()
    apic.write(R.TIMER_DIVIDE, 4, 0b1011) // divide by 1
    apic.write(R.LVT_TIMER, 4, 0x30)
    time.now = 1000
    apic.write(R.TIMER_INITIAL, 4, 1000) // 1000 ticks x 10 ns = 10 us
    expect(apic.nextDeadline()).toBe(11_000)
    time.now = 6_000
    expect(apic.read(R.TIMER_CURRENT, 4)).toBe(500)
    expect(apic.tick(10_999)).toBe(11_000)
    expect(apic.hasInterrupt()).toBe(false)
    expect(apic.tick(11_000)).toBe(Number.POSITIVE_INFINITY)
    expect(apic.acknowledge()).toBe(0x30)
    time.now = 50_000
    expect(apic.read(R.TIMER_CURRENT, 4)).toBe(0)
    expect(apic.read(R.TIMER_INITIAL, 4)).toBe(1000)
  })

  it("periodic: reloads from the initial count, one deadline per period, missed periods coalesce", () => {
    const { apic, time } = enabled()
    apic.write(R.TIMER_DIVIDE, 4, 0b0011) // divide by 16: 160 ns per tick
    apic.write(R.LVT_TIMER, 4, 0x20030)
    apic.write(R.TIMER_INITIAL, 4, 100) // 16 us period
    expect(apic.tick(16_000)).toBe(32_000)
    expect(apic.acknowledge()).toBe(0x30)
    apic.write(R.EOI, 4, 0)
    time.now = 32_000 + 160 * 30
    expect(apic.read(R.TIMER_CURRENT, 4)).toBe(70)
    expect(apic.tick(100_000)).toBe(112_000) // 32, 48, ..., 96 us: one interrupt
    expect(apic.acknowledge()).toBe(0x30)
    expect(apic.hasInterrupt()).toBe(false)
  })

  it("deadlines round up to the first nanosecond where the count is reached (3 Hz bus)", () => {
    const { apic, time } = enabled(0, 3)
    apic.write(R.TIMER_DIVIDE, 4, 0b1011)
    apic.write(R.LVT_TIMER, 4, 0x20040)
    apic.write(R.TIMER_INITIAL, 4, 1)
    expect(apic.nextDeadline()).toBe(333_333_334)
    time.now = 333_333_333
    expect(apic.read(R.TIMER_CURRENT, 4)).toBe(1)
    expect(apic.tick(333_333_334)).toBe(666_666_667) // computed from the start, no drift
  })

  it("writing 0 to the initial count stops the timer; a masked timer never asks for a tick", () => {
    const { apic } = enabled()
    apic.write(R.LVT_TIMER, 4, 0x10030)
    apic.write(R.TIMER_INITIAL, 4, 10)
    expect(apic.nextDeadline()).toBe(Number.POSITIVE_INFINITY)
    expect(apic.tick(1_000_000)).toBe(Number.POSITIVE_INFINITY)
    expect(apic.hasInterrupt()).toBe(false) // expired while masked: lost
    apic.write(R.LVT_TIMER, 4, 0x20030)
    apic.write(R.TIMER_INITIAL, 4, 10)
    expect(apic.nextDeadline()).toBeLessThan(Number.POSITIVE_INFINITY)
    apic.write(R.TIMER_INITIAL, 4, 0)
    expect(apic.nextDeadline()).toBe(Number.POSITIVE_INFINITY)
  })

  it("a divisor change continues from the current count", () => {
    const { apic, time } = enabled()
    apic.write(R.TIMER_DIVIDE, 4, 0b1011)
    apic.write(R.LVT_TIMER, 4, 0x30)
    apic.write(R.TIMER_INITIAL, 4, 1000)
    time.now = 4_000 // 400 ticks gone, 600 left
    apic.write(R.TIMER_DIVIDE, 4, 0b0000) // divide by 2: 20 ns per tick
    expect(apic.read(R.TIMER_CURRENT, 4)).toBe(600)
    expect(apic.nextDeadline()).toBe(4_000 + 600 * 20)
  })
})

describe("11.6 IPIs: ICR, destinations (11.6.2), shorthands", () => {
  it("a fixed physical IPI reaches only its destination", () => {
    const { apics } = smp(3)
    icr(apics[0]!, 0x4041, 2)
    expect(irrHas(apics[2]!, 0x41)).toBe(true)
    expect(irrHas(apics[1]!, 0x41) || irrHas(apics[0]!, 0x41)).toBe(false)
    expect(apics[0]!.read(R.ICR_LOW, 4)).toBe(0x4041) // delivery status idle
    expect(apics[0]!.read(R.ICR_HIGH, 4)).toBe(0x02000000)
  })

  it("shorthands: self, all including self, all excluding self", () => {
    const { apics } = smp(3)
    icr(apics[1]!, 0x44050) // self
    expect(apics.map((a) => irrHas(a, 0x50))).toEqual([false, true, false])
    icr(apics[1]!, 0x84051) // all including self
    expect(apics.map((a) => irrHas(a, 0x51))).toEqual([true, true, true])
    icr(apics[1]!, 0xc4052) // all excluding self
    expect(apics.map((a) => irrHas(a, 0x52))).toEqual([true, false, true])
    icr(apics[1]!, 0x44400) // self + NMI: invalid combination, dropped
    expect(apics[1]!.takeNmi()).toBe(false)
  })

  it("logical flat and cluster destinations match LDR under DFR", () => {
    const { apics } = smp(3)
    apics.forEach((a, i) => {
      a.write(R.LDR, 4, (1 << i) << 24)
    })
    icr(apics[0]!, 0x4860, 0b110) // logical, flat
    expect(apics.map((a) => irrHas(a, 0x60))).toEqual([false, true, true])
    for (const a of apics) a.write(R.DFR, 4, 0x0fffffff)
    expect(apics[0]!.read(R.DFR, 4)).toBe(0x0fffffff)
    apics[2]!.write(R.LDR, 4, 0x21 << 24) // cluster 2, member bit 0
    icr(apics[0]!, 0x4861, 0x21)
    expect(apics.map((a) => irrHas(a, 0x61))).toEqual([false, false, true])
  })

  it("INIT resets the target (ID kept), then SIPI hands the start vector to the core", () => {
    const { apics } = smp(2)
    const target = apics[1]!
    let wakes = 0
    target.onWake(() => wakes++)
    target.write(R.TPR, 4, 0x30)
    icr(apics[0]!, 0x4500, 1) // INIT, assert
    expect(target.takeInit()).toBe(true)
    expect(target.takeInit()).toBe(false)
    expect(target.read(R.TPR, 4)).toBe(0)
    expect(target.read(R.SVR, 4)).toBe(0xff)
    expect(target.apicId).toBe(1)
    icr(apics[0]!, 0x8500, 1) // INIT level de-assert: nothing
    expect(target.takeInit()).toBe(false)
    icr(apics[0]!, 0x4609, 1) // SIPI, vector 9 -> start at 0x9000
    expect(target.takeStartup()).toBe(9)
    expect(target.takeStartup()).toBeUndefined()
    expect(wakes).toBe(2)
  })

  it("NMI IPIs are pending for the core", () => {
    const { apics } = smp(2)
    icr(apics[0]!, 0x4400, 1)
    expect(apics[1]!.takeNmi()).toBe(true)
  })

  it("lowest priority goes to the matching APIC with the lowest PPR", () => {
    const { apics } = smp(3)
    apics[0]!.write(R.TPR, 4, 0x20)
    apics[1]!.write(R.TPR, 4, 0x10)
    apics[2]!.write(R.TPR, 4, 0x30)
    for (const a of apics) a.write(R.LDR, 4, 0x01000000)
    icr(apics[2]!, 0x4970, 0x01) // lowest priority, logical
    expect(apics.map((a) => irrHas(a, 0x70))).toEqual([false, true, false])
  })

  it("physical destination 0xFF broadcasts", () => {
    const { apics } = smp(2)
    icr(apics[0]!, 0x4071, 0xff)
    expect(apics.map((a) => irrHas(a, 0x71))).toEqual([true, true])
  })
})

describe("11.5.1 LINT0/LINT1", () => {
  it("ExtINT on LINT0 is a level seen by the core; NMI on LINT1 fires on the rising edge", () => {
    const { apic } = enabled()
    apic.write(R.LVT_LINT0, 4, 0x700)
    apic.write(R.LVT_LINT1, 4, 0x400)
    apic.setLint(0, true)
    expect(apic.extIntPending).toBe(true)
    apic.setLint(0, false)
    expect(apic.extIntPending).toBe(false)
    apic.setLint(1, true)
    apic.setLint(1, true)
    expect(apic.takeNmi()).toBe(true)
    expect(apic.takeNmi()).toBe(false)
  })

  it("a fixed LINT vector is accepted into IRR", () => {
    const { apic } = enabled()
    apic.write(R.LVT_LINT0, 4, 0x0035)
    apic.setLint(0, true)
    expect(apic.acknowledge()).toBe(0x35)
  })
})

describe("snapshot / restore", () => {
  it("a restored APIC continues exactly like the original", () => {
    const a = enabled()
    a.apic.write(R.LVT_TIMER, 4, 0x20030)
    a.apic.write(R.TIMER_INITIAL, 4, 777)
    a.apic.accept(0x90, true)
    a.apic.acknowledge()
    a.apic.accept(0x45)
    a.time.now = 12_345
    a.apic.tick(a.time.now)
    const state = a.apic.snapshot()
    const b = makeApic(9)
    b.time.now = a.time.now
    b.apic.restore(JSON.parse(JSON.stringify(state)))
    expect(b.apic.snapshot()).toEqual(state)
    for (const t of [20_000, 31_000, 50_000]) {
      a.time.now = b.time.now = t
      expect(b.apic.tick(t)).toBe(a.apic.tick(t))
      expect(b.apic.read(R.TIMER_CURRENT, 4)).toBe(a.apic.read(R.TIMER_CURRENT, 4))
      expect(b.apic.acknowledge()).toBe(a.apic.acknowledge())
    }
  })
})

describe("properties", () => {
  const offsets = fc.oneof(
    fc.constantFrom(...Object.values(R), 0x3f0, 0x2f0, 0x170, 0x270),
    fc.integer({ min: -8, max: 0x1008 })
  )
  const op = fc.oneof(
    fc.record({
      kind: fc.constant("write" as const),
      offset: offsets,
      size: fc.constantFrom(1 as const, 2 as const, 4 as const),
      value: fc.oneof(fc.nat({ max: 0xffffffff }), fc.constantFrom(Number.NaN, -1, 2 ** 40, 0.5))
    }),
    fc.record({
      kind: fc.constant("read" as const),
      offset: offsets,
      size: fc.constantFrom(1 as const, 2 as const, 4 as const)
    }),
    fc.record({ kind: fc.constant("accept" as const), vector: fc.integer({ min: -3, max: 300 }), level: fc.boolean() }),
    fc.record({ kind: fc.constant("ack" as const) }),
    fc.record({
      kind: fc.constant("lint" as const),
      pin: fc.constantFrom(0 as const, 1 as const),
      level: fc.boolean()
    }),
    fc.record({ kind: fc.constant("advance" as const), ns: fc.nat({ max: 200_000 }) })
  )

  it("random register traffic never throws, keeps vectors 0-15 out of IRR/ISR and deadlines ahead of now", () => {
    fc.assert(
      fc.property(fc.array(op, { maxLength: 60 }), (ops) => {
        const { apics, time } = smp(2)
        const apic = apics[0]!
        for (const o of ops) {
          if (o.kind === "write") apic.write(o.offset, o.size, o.value)
          else if (o.kind === "read") expect(apic.read(o.offset, o.size)).toBeLessThanOrEqual(0xffffffff)
          else if (o.kind === "accept") apic.accept(o.vector, o.level)
          else if (o.kind === "ack") {
            const had = apic.hasInterrupt()
            const v = apic.acknowledge()
            if (!had) expect(v).toBe(apic.read(R.SVR, 4) & 0xff)
            else expect(v).toBeGreaterThanOrEqual(16)
          } else if (o.kind === "lint") apic.setLint(o.pin, o.level)
          else {
            time.now += o.ns
            expect(apic.tick(time.now)).toBeGreaterThan(time.now)
          }
          expect(apic.read(R.IRR0, 4) & 0xffff).toBe(0)
          expect(apic.read(R.ISR0, 4) & 0xffff).toBe(0)
        }
        // after a reset the APIC works again: a one-shot timer fires on time
        apic.reset()
        apic.write(R.SVR, 4, 0x1ff)
        apic.write(R.TIMER_DIVIDE, 4, 0b1011)
        apic.write(R.LVT_TIMER, 4, 0x40)
        apic.write(R.TIMER_INITIAL, 4, 5)
        expect(apic.tick(time.now + 50)).toBe(Number.POSITIVE_INFINITY)
        expect(apic.acknowledge()).toBe(0x40)
      }),
      { seed: 0x1a91c, numRuns: 300 }
    )
  })

  it("restoring any snapshot round-trips through JSON", () => {
    fc.assert(
      fc.property(fc.array(op, { maxLength: 30 }), (ops) => {
        const { apic, time } = enabled()
        for (const o of ops) {
          if (o.kind === "write") apic.write(o.offset, o.size, o.value)
          else if (o.kind === "accept") apic.accept(o.vector, o.level)
          else if (o.kind === "advance") {
            time.now += o.ns
            apic.tick(time.now)
          }
        }
        const state = apic.snapshot()
        const copy = makeApic(1)
        copy.apic.restore(JSON.parse(JSON.stringify(state)))
        expect(copy.apic.snapshot()).toEqual(state)
      }),
      { seed: 0x1a91d, numRuns: 200 }
    )
  })
})

describe("DeliveryMode / Shorthand constants", () => {
  it("match the ICR encodings of Figure 11-12", () => {
    expect(DeliveryMode).toMatchObject({ Fixed: 0, LowestPriority: 1, Smi: 2, Nmi: 4, Init: 5, Startup: 6, ExtInt: 7 })
    expect(Shorthand).toMatchObject({ None: 0, Self: 1, AllIncludingSelf: 2, AllExcludingSelf: 3 })
  })
})
