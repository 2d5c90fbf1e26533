/**
 * The `cmos-rtc` case of the fuzz suite `devices` (scripts/fuzz/suites/devices.ts):
 * the MC146818 RTC + CMOS (vmm/devices/cmos-rtc) under random index / data
 * port traffic, virtual-time steps and `tick(at)` at absolute times, garbage
 * ones included (NaN, -Infinity, +Infinity, fractions, stale). Deadlines lie
 * after the latest time the RTC has seen. After `reset()` the battery-backed
 * CMOS RAM survives, and the RTC keeps time and raises its periodic interrupt
 * (MC146818 registers A-C).
 */
import fc from "fast-check"
import { recordingIrq } from "../../../hw/machine/device.ts"
import { CmosRtc } from "../../../vmm/devices/cmos-rtc/cmos-rtc.ts"
import { Reg } from "../../../vmm/devices/cmos-rtc/registers.ts"
import { accesses, advance, checkRead, hex, must, type Ops, offsetArb, opList, rd, tickAt, wr } from "./ops.ts"

export type CmosRtcCase = { readonly device: "cmos-rtc"; readonly epoch: number; readonly ops: Ops }

export const cmosCase: fc.Arbitrary<CmosRtcCase> = fc.record({
  device: fc.constant("cmos-rtc" as const),
  epoch: fc.integer({ min: 0, max: 4_102_444_800 }),
  ops: opList(...accesses(offsetArb(3)), advance, tickAt)
})

export const checkCmosRtc = (c: CmosRtcCase): void => {
  const time = { now: 0 }
  const irq = recordingIrq()
  const rtc = new CmosRtc({ clock: () => time.now, epochSeconds: c.epoch, irq, ramBytes: 64 << 20 })
  /** The latest time the RTC has seen: clock readings at port accesses, and tick arguments. */
  let latest = 0
  for (const op of c.ops) {
    if (op.kind === "read" || op.kind === "write") latest = Math.max(latest, time.now)
    if (op.kind === "read") checkRead("cmos-rtc", op, rd(rtc, op.offset, op.size))
    else if (op.kind === "write") wr(rtc, op.offset, op.size, op.value)
    else if (op.kind === "advance") time.now += op.ns
    else if (op.kind === "tickAt") {
      const d = rtc.tick(op.at)
      if (Number.isFinite(op.at)) latest = Math.max(latest, op.at)
      must(
        d === Number.POSITIVE_INFINITY || (Number.isInteger(d) && d > latest),
        `cmos-rtc: tick(${op.at}) returned deadline ${d}, not after ${latest}`
      )
    }
  }
  const set = (index: number, value: number) => {
    rtc.write(0, 1, index)
    rtc.write(1, 1, value)
  }
  const reg = (index: number) => {
    rtc.write(0, 1, index)
    return rtc.read(1, 1)
  }
  set(0x34, 0xa5) // a general-purpose CMOS RAM byte
  rtc.reset()
  must(!irq.level, "cmos-rtc: IRQ 8 still asserted after reset")
  must(reg(0x34) === 0xa5, `cmos-rtc: CMOS RAM byte 0x34 reads ${hex(reg(0x34))} after reset (battery-backed: 0xa5)`)
  time.now = Math.max(time.now, latest)
  set(Reg.A, 0x26)
  set(Reg.B, 0x82)
  const fields: Array<[number, number]> = [
    [Reg.Seconds, 0x00],
    [Reg.Minutes, 0x00],
    [Reg.Hours, 0x12],
    [Reg.DayOfMonth, 0x01],
    [Reg.Month, 0x01],
    [Reg.Year, 0x24],
    [Reg.Century, 0x20]
  ]
  for (const [r, v] of fields) set(r, v)
  set(Reg.B, 0x02)
  const seconds = rtc.currentSeconds()
  must(seconds === Date.UTC(2024, 0, 1, 12) / 1000, `cmos-rtc: after setting 2024-01-01 12:00 the time is ${seconds}`)
  time.now += 1_000_000_000
  must(reg(Reg.Seconds) === 0x01, `cmos-rtc: one second later the seconds register reads ${hex(reg(Reg.Seconds))}`)
  reg(Reg.C)
  set(Reg.B, 0x42)
  const deadline = rtc.tick(time.now)
  must(
    deadline > time.now && deadline <= time.now + 1_000_000,
    `cmos-rtc: periodic interrupt at 1024 Hz due at ${deadline}, now ${time.now}`
  )
  rtc.tick(deadline)
  must(irq.level, "cmos-rtc: the periodic interrupt did not raise IRQ 8")
  time.now = deadline
  must((reg(Reg.C) & 0xc0) === 0xc0, "cmos-rtc: register C does not show IRQF | PF")
  // CMOS RAM is the guest's to write (the random traffic may have changed the PC bytes): it still holds a write
  set(0x15, 0x80)
  set(0x16, 0x02)
  const base = reg(0x15) | (reg(0x16) << 8)
  must(base === 640, `cmos-rtc: CMOS base memory written as 640 KiB reads back ${base}`)
}
