/**
 * The `lapic` case of the fuzz suite `devices` (scripts/fuzz/suites/devices.ts):
 * the local APIC, Intel SDM Vol. 3A ch. 11 (hw/devices/lapic), under random
 * MMIO traffic, accepted interrupts, INTAs, EOIs, LINT levels, incoming
 * IPIs, NMI/INIT/SIPI takes, virtual-time steps and ticks, with a peer APIC
 * to route IPIs to. It never holds an illegal vector 0-15 in IRR/ISR (SDM
 * 11.5.2) and every IPI it sends names a vector 0-255 and a legal
 * destination. After `reset()` (11.4.7.1 power-up state) and SVR software
 * enable it accepts, acknowledges and EOIs a fixed interrupt, fires a
 * one-shot timer at the exact nanosecond, and delivers a self IPI (SDM
 * 11.4.7, 11.5.4, 11.6.1, 11.8.4-11.8.5).
 */
import fc from "fast-check"
import { type IpiMessage, routeIpi } from "../../../hw/devices/lapic/ipi.ts"
import { LocalApic } from "../../../hw/devices/lapic/lapic.ts"
import { type DeliveryMode, LapicReg, LVT_MASK, type Shorthand } from "../../../hw/devices/lapic/registers.ts"
import type { AccessSize } from "../../../hw/machine/device.ts"
import {
  accesses,
  advance,
  checkDeadline,
  checkRead,
  garbageTimeInf,
  hex,
  isU32,
  must,
  type Ops,
  offsetArb,
  opList,
  relativeTick,
  tickArb,
  w,
  weird
} from "./ops.ts"

export type LapicCase = {
  readonly device: "lapic"
  /** Software-enabled (SVR bit 8) before the traffic, as a guest's APIC mostly is. */
  readonly enabled: boolean
  readonly busHz: number
  readonly vector: number
  readonly timerCount: number
  readonly ops: Ops
}

const LAPIC_HOT = [...Object.values(LapicReg), 0x3f0, 0x2f0, 0x170, 0x270, 0x3ff]
const vectorArb = fc.oneof(fc.integer({ min: -3, max: 300 }), fc.integer({ min: 0, max: 31 }), weird)
export const lapicCase: fc.Arbitrary<LapicCase> = fc.record({
  device: fc.constant("lapic" as const),
  enabled: fc.boolean(),
  busHz: fc.constantFrom(100_000_000, 1_000_000_000, 66_666_667, 3),
  vector: fc.integer({ min: 0x10, max: 0xfe }),
  timerCount: fc.integer({ min: 1, max: 1_000_000 }),
  ops: opList(
    ...accesses(offsetArb(0x1008, LAPIC_HOT)),
    w(2, fc.record({ kind: fc.constant("accept" as const), vector: vectorArb, level: fc.boolean() })),
    w(1, fc.constant({ kind: "inta" as const })),
    w(1, fc.record({ kind: fc.constant("eoi" as const), vector: fc.constant(0) })),
    w(
      1,
      fc.record({
        kind: fc.constant("lint" as const),
        pin: fc.constantFrom(0 as const, 1 as const),
        level: fc.boolean()
      })
    ),
    w(
      1,
      fc.record({
        kind: fc.constant("ipi" as const),
        vector: vectorArb,
        mode: fc.integer({ min: 0, max: 7 }),
        levelTriggered: fc.boolean(),
        assert: fc.boolean()
      })
    ),
    w(1, fc.constant({ kind: "take" as const })),
    advance,
    tickArb(garbageTimeInf)
  )
})

export const checkLapic = (c: LapicCase): void => {
  const time = { now: 0 }
  const apic = new LocalApic({ id: 0, busHz: c.busHz, clock: () => time.now })
  const peer = new LocalApic({ id: 1, busHz: c.busHz, clock: () => time.now })
  peer.write(LapicReg.SVR, 4, 0x1ff)
  if (c.enabled) apic.write(LapicReg.SVR, 4, 0x1ff)
  const apics = [apic, peer]
  const ipis: IpiMessage[] = []
  for (const a of apics)
    a.onIpi((ipi) => {
      ipis.push(ipi)
      routeIpi(apics, a, ipi)
    })
  const illegalHeld = () => ((apic.read(LapicReg.IRR0, 4) | apic.read(LapicReg.ISR0, 4)) & 0xffff) !== 0
  for (const op of c.ops) {
    switch (op.kind) {
      case "read":
        checkRead("lapic", op, apic.read(op.offset, op.size as AccessSize))
        break
      case "write":
        apic.write(op.offset, op.size as AccessSize, op.value)
        break
      case "accept":
        apic.accept(op.vector, op.level)
        break
      case "inta": {
        const had = apic.hasInterrupt()
        const spurious = apic.read(LapicReg.SVR, 4) & 0xff
        const v = apic.acknowledge()
        must(Number.isInteger(v) && v >= 0 && v <= 0xff, `lapic: INTA returned ${v}`)
        if (!had) must(v === spurious, `lapic: INTA with nothing deliverable returned ${v}, not spurious ${spurious}`)
        else must(v >= 16, `lapic: INTA delivered illegal vector ${v}`)
        break
      }
      case "eoi":
        apic.write(LapicReg.EOI, 4, 0)
        break
      case "lint":
        apic.setLint(op.pin, op.level)
        break
      case "ipi":
        apic.receiveIpi({
          vector: op.vector,
          deliveryMode: op.mode as DeliveryMode,
          logical: false,
          destination: 0,
          shorthand: 0 as Shorthand,
          assert: op.assert,
          levelTriggered: op.levelTriggered
        })
        break
      case "take": {
        apic.takeNmi()
        apic.takeInit()
        const sipi = apic.takeStartup()
        must(sipi === undefined || (Number.isInteger(sipi) && sipi >= 0 && sipi <= 0xff), `lapic: SIPI vector ${sipi}`)
        break
      }
      case "advance":
        time.now += op.ns
        break
      case "tick": {
        const at = relativeTick(time, op.dt)
        checkDeadline("lapic", apic.tick(at), at)
        break
      }
      default:
        break
    }
    must(!illegalHeld(), "lapic: an illegal vector 0-15 is held in IRR or ISR")
  }
  for (const m of ipis)
    must(
      isU32(m.vector) && m.vector <= 0xff && isU32(m.destination) && m.destination <= 0xff,
      `lapic: sent IPI ${JSON.stringify(m)}`
    )
  // 11.4.7.1 power-up state, then software enable through SVR (11.4.7.2)
  apic.reset()
  const powerUp: Array<[string, number, number]> = [
    ["ID", LapicReg.ID, 0],
    ["TPR", LapicReg.TPR, 0],
    ["LDR", LapicReg.LDR, 0],
    ["DFR", LapicReg.DFR, 0xffffffff],
    ["SVR", LapicReg.SVR, 0xff],
    ["ICR low", LapicReg.ICR_LOW, 0],
    ["timer initial count", LapicReg.TIMER_INITIAL, 0],
    ["timer current count", LapicReg.TIMER_CURRENT, 0],
    ...[LapicReg.LVT_TIMER, LapicReg.LVT_THERMAL, LapicReg.LVT_PERF, LapicReg.LVT_LINT0, LapicReg.LVT_LINT1].map(
      (r): [string, number, number] => [`LVT ${hex(r)}`, r, LVT_MASK]
    ),
    ["LVT error", LapicReg.LVT_ERROR, LVT_MASK]
  ]
  for (const [name, offset, want] of powerUp) {
    const got = apic.read(offset, 4)
    must(got === want, `lapic: after reset ${name} reads ${hex(got)}, not ${hex(want)} (SDM 11.4.7.1)`)
  }
  must(!apic.hasInterrupt(), "lapic: an interrupt is pending after reset")
  apic.write(LapicReg.SVR, 4, 0x1ff)
  // a fixed interrupt: IRR -> INTA -> ISR -> EOI (11.8.4, 11.8.5)
  must(apic.accept(c.vector), `lapic: enabled APIC refused vector ${hex(c.vector)}`)
  must(apic.hasInterrupt(), `lapic: accepted vector ${hex(c.vector)} is not deliverable`)
  const got = apic.acknowledge()
  must(got === c.vector, `lapic: INTA returned ${hex(got)}, not ${hex(c.vector)}`)
  const isrWord = () => apic.read(LapicReg.ISR0 + (c.vector >>> 5) * 0x10, 4)
  const bit = 2 ** (c.vector & 31)
  must(Math.floor(isrWord() / bit) % 2 === 1, `lapic: vector ${hex(c.vector)} not in ISR after INTA`)
  apic.write(LapicReg.EOI, 4, 0)
  must(Math.floor(isrWord() / bit) % 2 === 0, `lapic: vector ${hex(c.vector)} still in ISR after EOI`)
  // a one-shot timer at divide-by-1 fires at the first nanosecond the count has elapsed (11.5.4)
  const timerVector = c.vector === 0xfe ? 0xfd : c.vector + 1
  apic.write(LapicReg.TIMER_DIVIDE, 4, 0b1011)
  apic.write(LapicReg.LVT_TIMER, 4, timerVector)
  apic.write(LapicReg.TIMER_INITIAL, 4, c.timerCount)
  const hz = BigInt(c.busHz)
  const due = time.now + Number((BigInt(c.timerCount) * 1_000_000_000n + hz - 1n) / hz)
  const deadline = apic.nextDeadline()
  must(deadline === due, `lapic: one-shot count ${c.timerCount} at ${c.busHz} Hz due at ${deadline}, expected ${due}`)
  time.now = due - 1
  apic.tick(due - 1)
  must(!apic.hasInterrupt(), "lapic: the timer fired a nanosecond early")
  time.now = due
  const after = apic.tick(due)
  must(after === Number.POSITIVE_INFINITY, `lapic: a fired one-shot timer asks for a tick at ${after}`)
  const fired = apic.acknowledge()
  must(fired === timerVector, `lapic: timer INTA returned ${hex(fired)}, not ${hex(timerVector)}`)
  apic.write(LapicReg.EOI, 4, 0)
  // a fixed self IPI (11.6.1, shorthand "self")
  apic.write(LapicReg.ICR_LOW, 4, (1 << 18) | c.vector)
  const ipi = apic.acknowledge()
  must(ipi === c.vector, `lapic: self IPI of ${hex(c.vector)} delivered ${hex(ipi)}`)
  apic.write(LapicReg.EOI, 4, 0)
  must(!apic.hasInterrupt() && !illegalHeld(), "lapic: an interrupt is left pending after the EOIs")
}
