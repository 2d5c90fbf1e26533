/**
 * The virtual MC146818A RTC + CMOS (vmm/devices/cmos-rtc) against the
 * MC146818A datasheet (each test names its section) and QEMU's pc machine:
 * time registers from an injected virtual clock in BCD and binary, 12 and
 * 24 hours, rollover at midnight, month, year and century; SET and the
 * divider; UIP; registers C and D; periodic, update-ended and alarm
 * interrupts with their deadlines; the CMOS memory bytes; reset and
 * snapshot. The calendar is checked against the JS Date's UTC arithmetic.
 */
import { describe, expect, it } from "@effect/vitest"
import fc from "fast-check"
import { recordingIrq } from "../../../hw/machine/device.ts"
import { brokenDown, unixSeconds } from "../../../vmm/devices/cmos-rtc/calendar.ts"
import { CmosRtc, DEFAULT_EPOCH_SECONDS } from "../../../vmm/devices/cmos-rtc/cmos-rtc.ts"
import { pcCmosBytes } from "../../../vmm/devices/cmos-rtc/pc-cmos.ts"
import { periodicCycles, Reg, rtcCycles, rtcCycleTime } from "../../../vmm/devices/cmos-rtc/registers.ts"

const S = 1_000_000_000
const utc = (y: number, mo: number, d: number, h = 0, mi = 0, s = 0) => Date.UTC(y, mo - 1, d, h, mi, s) / 1000

const makeRtc = (options: { epoch?: number; ramBytes?: number; cpus?: number; start?: number } = {}) => {
  const time = { now: options.start ?? 0 }
  const irq = recordingIrq()
  const rtc = new CmosRtc({
    clock: () => time.now,
    epochSeconds: options.epoch,
    irq,
    ramBytes: options.ramBytes,
    cpus: options.cpus
  })
  const reg = (index: number) => {
    rtc.write(0, 1, index)
    return rtc.read(1, 1)
  }
  const set = (index: number, value: number) => {
    rtc.write(0, 1, index)
    rtc.write(1, 1, value)
  }
  const clock = () =>
    [Reg.Seconds, Reg.Minutes, Reg.Hours, Reg.DayOfWeek, Reg.DayOfMonth, Reg.Month, Reg.Year, Reg.Century].map(reg)
  return { rtc, time, irq, reg, set, clock }
}

describe("calendar: Unix seconds <-> proleptic Gregorian date (UTC)", () => {
  it("agrees with Date.UTC for every second from year 0 to 9999", () => {
    fc.assert(
      fc.property(fc.integer({ min: -62_167_219_200, max: 253_402_300_799 }), (seconds) => {
        const t = brokenDown(seconds)
        const d = new Date(seconds * 1000)
        expect([t.year, t.month, t.day, t.hour, t.minute, t.second, t.weekday]).toEqual([
          d.getUTCFullYear(),
          d.getUTCMonth() + 1,
          d.getUTCDate(),
          d.getUTCHours(),
          d.getUTCMinutes(),
          d.getUTCSeconds(),
          d.getUTCDay()
        ])
        expect(unixSeconds(t)).toBe(seconds)
      }),
      { seed: 146818, numRuns: 2000 }
    )
  })

  it("normalises out-of-range fields like mktime (month 13, day 0, hour 24)", () => {
    expect(unixSeconds({ year: 2023, month: 13, day: 1, hour: 0, minute: 0, second: 0 })).toBe(utc(2024, 1, 1))
    expect(unixSeconds({ year: 2024, month: 3, day: 0, hour: 24, minute: 0, second: -1 })).toBe(utc(2024, 3, 1) - 1)
  })
})

describe("MC146818A 'Time, Calendar and Alarm Locations': registers from the virtual clock", () => {
  it("power-on: BCD, 24-hour mode (register B 0x02), time = epoch at virtual time 0; default epoch 2000-01-01", () => {
    const m = makeRtc()
    expect(m.reg(Reg.B)).toBe(0x02)
    expect(m.clock()).toEqual([0x00, 0x00, 0x00, 0x07, 0x01, 0x01, 0x00, 0x20]) // a Saturday
    expect(m.rtc.currentSeconds()).toBe(DEFAULT_EPOCH_SECONDS)
  })

  it("BCD and binary (DM, register B bit 2) views of the same instant", () => {
    const m = makeRtc({ epoch: utc(2024, 2, 29, 23, 59, 58) })
    expect(m.clock()).toEqual([0x58, 0x59, 0x23, 0x05, 0x29, 0x02, 0x24, 0x20]) // Thursday = 5
    m.set(Reg.B, 0x06)
    expect(m.clock()).toEqual([58, 59, 23, 5, 29, 2, 24, 20])
  })

  it("the clock follows virtual time only: rollover at midnight into 1 March of a leap year", () => {
    const m = makeRtc({ epoch: utc(2024, 2, 29, 23, 59, 58) })
    m.time.now = 1.999 * S
    expect(m.reg(Reg.Seconds)).toBe(0x59)
    m.time.now = 2 * S
    expect(m.clock()).toEqual([0x00, 0x00, 0x00, 0x06, 0x01, 0x03, 0x24, 0x20])
  })

  it("year and century rollover: 1999 -> 2000 and 2099 -> 2100 (century at 0x32)", () => {
    const a = makeRtc({ epoch: utc(1999, 12, 31, 23, 59, 59) })
    expect([a.reg(Reg.Year), a.reg(Reg.Century)]).toEqual([0x99, 0x19])
    a.time.now = S
    expect(a.clock()).toEqual([0x00, 0x00, 0x00, 0x07, 0x01, 0x01, 0x00, 0x20])
    const b = makeRtc({ epoch: utc(2099, 12, 31, 23, 59, 59) })
    b.set(Reg.B, 0x06)
    b.time.now = 10 * S
    expect(b.clock()).toEqual([9, 0, 0, 6, 1, 1, 0, 21])
  })

  it("12-hour mode (24/12 bit clear): hours 1-12 with bit 7 = PM", () => {
    const m = makeRtc({ epoch: utc(2024, 6, 1, 0, 30, 0) })
    m.set(Reg.B, 0x00)
    expect(m.reg(Reg.Hours)).toBe(0x12) // 12 AM
    m.time.now = 12 * 3600 * S
    expect(m.reg(Reg.Hours)).toBe(0x92) // 12 PM
    m.time.now = 23 * 3600 * S
    expect(m.reg(Reg.Hours)).toBe(0x91) // 11 PM (23:30)
    m.set(Reg.B, 0x04)
    expect(m.reg(Reg.Hours)).toBe(0x80 | 11)
  })

  it("the IBM PS/2 century byte 0x37 is an alias of 0x32 that moves the index (QEMU)", () => {
    const m = makeRtc({ epoch: utc(2024, 1, 1) })
    expect(m.reg(Reg.Ps2Century)).toBe(0x20)
    expect(m.rtc.read(1, 1)).toBe(0x20) // the index now is 0x32
  })
})

describe("MC146818A 'Register B' SET and 'Register A' divider: stopping and setting the clock", () => {
  it("SET freezes the registers, lets the guest write them, and restarts from them keeping the phase", () => {
    const m = makeRtc({ epoch: utc(2024, 1, 1, 10, 0, 0) })
    m.time.now = 0.25 * S
    m.set(Reg.B, 0x82 | 0x10) // SET (UIE is cleared by SET, as QEMU)
    expect(m.reg(Reg.B)).toBe(0x82)
    m.time.now = 5 * S
    expect(m.reg(Reg.Seconds)).toBe(0x00) // frozen
    for (const [r, v] of [
      [Reg.Seconds, 0x30],
      [Reg.Minutes, 0x45],
      [Reg.Hours, 0x08],
      [Reg.DayOfMonth, 0x15],
      [Reg.Month, 0x07],
      [Reg.Year, 0x31],
      [Reg.Century, 0x20]
    ] as const)
      m.set(r, v)
    m.time.now = 7.5 * S
    expect(m.reg(Reg.Seconds)).toBe(0x30)
    m.set(Reg.B, 0x02)
    expect(m.rtc.currentSeconds()).toBe(utc(2031, 7, 15, 8, 45, 30))
    expect(m.reg(Reg.DayOfWeek)).toBe(0x03) // recomputed: 2031-07-15 is a Tuesday
    m.time.now = 7.999 * S
    expect(m.reg(Reg.Seconds)).toBe(0x30)
    m.time.now = 8 * S // the second boundary stays on whole virtual seconds
    expect(m.reg(Reg.Seconds)).toBe(0x31)
  })

  it("restarting decodes the frozen registers in the format they were written in (QEMU)", () => {
    const m = makeRtc({ epoch: utc(2024, 1, 1) })
    m.set(Reg.B, 0x82) // SET, BCD
    m.set(Reg.Minutes, 0x59)
    m.set(Reg.B, 0x06) // binary; SET cleared: 0x59 was BCD 59
    expect(m.reg(Reg.Minutes)).toBe(59)
  })

  it("a time register written while the clock runs sets the time at once", () => {
    const m = makeRtc({ epoch: utc(2024, 1, 1, 10, 0, 0) })
    m.set(Reg.Hours, 0x13)
    expect(m.rtc.currentSeconds()).toBe(utc(2024, 1, 1, 13, 0, 0))
  })

  it("divider reset (DV = 11x) stops the clock; releasing it starts the first update 500 ms later", () => {
    const m = makeRtc({ epoch: utc(2024, 1, 1, 0, 0, 0) })
    m.time.now = 3.2 * S
    m.set(Reg.A, 0x66)
    m.time.now = 9 * S
    expect(m.reg(Reg.Seconds)).toBe(0x03)
    m.set(Reg.A, 0x26)
    m.time.now = 9.499 * S
    expect(m.reg(Reg.Seconds)).toBe(0x03)
    m.time.now = 9.5 * S
    expect(m.reg(Reg.Seconds)).toBe(0x04)
    m.time.now = 10.5 * S
    expect(m.reg(Reg.Seconds)).toBe(0x05)
  })
})

describe("MC146818A 'Register A': UIP and rate bits", () => {
  it("UIP reads 1 only in the last 244 us (8 cycles of 32 kHz) before each update, and is read-only", () => {
    const m = makeRtc()
    expect(m.reg(Reg.A)).toBe(0x26)
    m.time.now = S - 244_141
    expect(m.reg(Reg.A)).toBe(0x26)
    m.time.now = S - 244_140
    expect(m.reg(Reg.A)).toBe(0xa6)
    m.time.now = S - 1
    expect(m.reg(Reg.A) & 0x80).toBe(0x80)
    m.time.now = S
    expect(m.reg(Reg.A)).toBe(0x26)
    m.set(Reg.A, 0xa3)
    expect(m.rtc.cmosByte(Reg.A)).toBe(0x23)
    m.set(Reg.B, 0x82) // not while the clock is stopped
    m.time.now = 2 * S - 1
    expect(m.reg(Reg.A)).toBe(0x23)
  })
})

describe("MC146818A 'Register C' and 'Register D'", () => {
  it("D reads VRT (0x80) and ignores writes; C is read-only and cleared by a read", () => {
    const m = makeRtc()
    m.set(Reg.D, 0x00)
    expect(m.reg(Reg.D)).toBe(0x80)
    m.set(Reg.C, 0xff)
    expect(m.reg(Reg.C)).toBe(0x00)
    m.time.now = 1.5 * S // UF set by the update at 1 s, UIE off: no IRQF
    expect(m.reg(Reg.C)).toBe(0x10)
    expect(m.reg(Reg.C)).toBe(0x00)
    expect(m.irq.raises).toBe(0)
  })
})

describe("MC146818A 'Periodic Interrupt' (Table 5) on IRQ 8, with tick() deadlines", () => {
  it("rates: 0 none, 1-2 as 8-9, 3-15 = 2^(RS-1) cycles of 32.768 kHz", () => {
    expect([0, 1, 2, 3, 6, 15].map(periodicCycles)).toEqual([0, 128, 256, 4, 32, 16384])
    expect(rtcCycleTime(32768)).toBe(S)
    expect(rtcCycles(rtcCycleTime(12345))).toBe(12345)
    expect(rtcCycles(rtcCycleTime(12345) - 1)).toBe(12344)
  })

  it("1024 Hz: PF + IRQF at each period from when PIE was set; C read acks; deadlines in between", () => {
    const m = makeRtc({ start: 1_000_000 }) // cycle 32
    expect(m.rtc.tick(m.time.now)).toBe(Number.POSITIVE_INFINITY)
    m.set(Reg.B, 0x42) // PIE
    const first = rtcCycleTime(64)
    expect(first).toBe(1_953_125)
    expect(m.rtc.tick(m.time.now)).toBe(first)
    expect(m.rtc.tick(first - 1)).toBe(first)
    expect(m.irq.level).toBe(false)
    expect(m.rtc.tick(first)).toBe(Number.POSITIVE_INFINITY) // IRQF set: nothing changes until C is read
    expect(m.irq.level).toBe(true)
    m.time.now = first + 10
    expect(m.reg(Reg.C)).toBe(0xc0)
    expect(m.irq.level).toBe(false)
    expect(m.rtc.nextDeadline()).toBe(rtcCycleTime(96))
    // a late tick covering several periods gives one interrupt and the next deadline after it
    expect(m.rtc.tick(rtcCycleTime(200))).toBe(Number.POSITIVE_INFINITY)
    expect(m.irq.raises).toBe(2)
    m.time.now = rtcCycleTime(200)
    m.reg(Reg.C)
    expect(m.rtc.nextDeadline()).toBe(rtcCycleTime(224))
  })

  it("2 Hz (RS = 15) every 500 ms; PIE off stops it (QEMU: no PF without PIE)", () => {
    const m = makeRtc()
    m.set(Reg.A, 0x2f)
    m.set(Reg.B, 0x42)
    expect(m.rtc.tick(0)).toBe(S / 2)
    m.time.now = S / 2
    m.rtc.tick(m.time.now)
    expect(m.reg(Reg.C)).toBe(0xc0)
    expect(m.rtc.nextDeadline()).toBe(S)
    m.set(Reg.B, 0x02)
    expect(m.rtc.tick(m.time.now)).toBe(Number.POSITIVE_INFINITY)
    m.time.now = 3 * S
    expect(m.reg(Reg.C) & 0x40).toBe(0)
  })

  it("a rate change keeps the time since the last interrupt (QEMU periodic_timer_update)", () => {
    const m = makeRtc()
    m.set(Reg.B, 0x42) // 1024 Hz from cycle 0: next at 32
    m.time.now = rtcCycleTime(40)
    m.rtc.tick(m.time.now)
    m.reg(Reg.C) // last interrupt at 32, next at 64
    m.set(Reg.A, 0x25) // 2048 Hz (16 cycles): 32 + 16 = 48
    expect(m.rtc.nextDeadline()).toBe(rtcCycleTime(48))
  })

  it("a register B write re-evaluates IRQF against the flags already set (QEMU)", () => {
    const m = makeRtc()
    m.set(Reg.B, 0x12) // UIE
    m.time.now = S
    expect(m.irq.level).toBe(false)
    m.rtc.tick(S)
    expect(m.irq.level).toBe(true)
    m.set(Reg.B, 0x02) // UIE off: IRQF re-evaluated against UF, line drops
    expect(m.irq.level).toBe(false)
    m.set(Reg.B, 0x12)
    expect(m.irq.level).toBe(true)
  })
})

describe("MC146818A 'Update-Ended Interrupt' and 'Alarm Interrupt'", () => {
  it("UIE: IRQF at every second boundary; deadline is the next boundary", () => {
    const m = makeRtc({ start: 0.3 * S })
    m.set(Reg.B, 0x12)
    expect(m.rtc.tick(m.time.now)).toBe(S)
    m.rtc.tick(S)
    expect(m.irq.level).toBe(true)
    m.time.now = S
    expect(m.reg(Reg.C)).toBe(0x90)
    expect(m.rtc.nextDeadline()).toBe(2 * S)
  })

  it("AIE: AF at the update that reaches the alarm time; 0xC0-0xFF are don't care", () => {
    const m = makeRtc({ epoch: utc(2024, 1, 1, 10, 0, 0) })
    m.set(Reg.HoursAlarm, 0x10)
    m.set(Reg.MinutesAlarm, 0x00)
    m.set(Reg.SecondsAlarm, 0x05)
    m.set(Reg.B, 0x22)
    expect(m.rtc.tick(0)).toBe(5 * S)
    m.time.now = 4.9 * S
    expect(m.reg(Reg.C) & 0x20).toBe(0)
    m.rtc.tick(5 * S)
    expect(m.irq.level).toBe(true)
    m.time.now = 5 * S
    expect(m.reg(Reg.C)).toBe(0xb0) // IRQF | AF | UF
    expect(m.rtc.nextDeadline()).toBe((5 + 86_400) * S) // same time tomorrow
    m.set(Reg.HoursAlarm, 0xc0)
    m.set(Reg.MinutesAlarm, 0xff)
    m.set(Reg.SecondsAlarm, 0x00) // every minute at :00
    expect(m.rtc.nextDeadline()).toBe(60 * S)
  })

  it("alarm hours in 12-hour mode use the alarm's own PM bit", () => {
    const m = makeRtc({ epoch: utc(2024, 1, 1, 13, 59, 59) })
    m.set(Reg.B, 0x20) // AIE, BCD, 12h
    m.set(Reg.HoursAlarm, 0x82) // 2 PM
    m.set(Reg.MinutesAlarm, 0x00)
    m.set(Reg.SecondsAlarm, 0x00)
    expect(m.rtc.nextDeadline()).toBe(S)
  })
})

describe("CMOS RAM: the bytes QEMU's pc machine fills (hw/i386/pc.c pc_cmos_init_late)", () => {
  it("128 MiB, 2 CPUs: base 640 KiB, extended capped at 65535 KiB, 1792 x 64 KiB above 16 MiB", () => {
    const m = makeRtc({ ramBytes: 128 << 20, cpus: 2 })
    const bytes = (lo: number) => m.reg(lo) | (m.reg(lo + 1) << 8)
    expect(bytes(Reg.BaseMemoryLow)).toBe(640)
    expect(bytes(Reg.ExtendedMemoryLow)).toBe(0xffff)
    expect(bytes(Reg.ExtendedMemory2Low)).toBe(0xffff)
    expect(bytes(Reg.MemoryAbove16MLow)).toBe(1792)
    expect(m.reg(Reg.Equipment)).toBe(0x06)
    expect(m.reg(Reg.CpuCount)).toBe(1)
    expect([m.reg(Reg.BootOrder12), m.reg(Reg.BootOrder3)]).toEqual([0x12, 0x30])
    expect([m.reg(0x5b), m.reg(0x5c), m.reg(0x5d)]).toEqual([0, 0, 0])
  })

  it("32 MiB: extended 31744 KiB; 512 KiB: base 512, no extended memory", () => {
    const at = (ram: number) => new Map(pcCmosBytes(ram, 1))
    const b32 = at(32 << 20)
    expect(b32.get(0x17)! | (b32.get(0x18)! << 8)).toBe(31_744)
    expect(b32.get(0x34)! | (b32.get(0x35)! << 8)).toBe(256)
    const small = at(512 << 10)
    expect(small.get(0x15)! | (small.get(0x16)! << 8)).toBe(512)
    expect(small.get(0x17)).toBe(0)
    expect(small.get(0x34)).toBe(0)
    const big = at(4 * 2 ** 30) // 3 GiB below 4 GiB, 1 GiB above
    expect(big.get(0x34)! | (big.get(0x35)! << 8)).toBe(48_896) // (3 GiB - 16 MiB) / 64 KiB
    expect(big.get(0x5b)! | (big.get(0x5c)! << 8) | (big.get(0x5d)! << 16)).toBe(16_384)
  })

  it("ordinary CMOS bytes are RAM; the index port reads 0xFF; bit 7 of an index write is the NMI mask", () => {
    const m = makeRtc()
    m.set(0x40, 0xa5)
    expect(m.reg(0x40)).toBe(0xa5)
    expect(m.rtc.read(0, 1)).toBe(0xff)
    m.rtc.write(0, 1, 0x80 | 0x40)
    expect(m.rtc.nmiDisabled).toBe(true)
    expect(m.rtc.read(1, 1)).toBe(0xa5)
    m.rtc.write(0, 2, 0x5a_40) // index 0x40, then data 0x5a (byte lanes)
    expect(m.reg(0x40)).toBe(0x5a)
    expect(m.rtc.nmiDisabled).toBe(false)
    expect(m.rtc.read(5, 1)).toBe(0xff)
  })
})

describe("reset and snapshot", () => {
  it("reset clears PIE/AIE/SQWE, the flags and the line, CMOS 0x0F unless 0xFE; time and RAM survive", () => {
    const m = makeRtc({ epoch: utc(2024, 1, 1) })
    m.set(Reg.B, 0x7a)
    m.set(Reg.ShutdownStatus, 0x05)
    m.time.now = S
    m.rtc.tick(S)
    expect(m.irq.level).toBe(true)
    m.rtc.reset()
    expect(m.irq.level).toBe(false)
    expect(m.reg(Reg.B)).toBe(0x12)
    expect(m.reg(Reg.ShutdownStatus)).toBe(0)
    expect(m.rtc.currentSeconds()).toBe(utc(2024, 1, 1) + 1)
    m.set(Reg.ShutdownStatus, 0xfe)
    m.rtc.reset()
    expect(m.reg(Reg.ShutdownStatus)).toBe(0xfe)
  })

  it("snapshot/restore round-trips into a fresh RTC on the same time base", () => {
    const a = makeRtc({ epoch: utc(2030, 5, 6, 7, 8, 9), ramBytes: 64 << 20 })
    a.set(Reg.A, 0x2a)
    a.set(Reg.B, 0x46)
    a.time.now = 2.5 * S
    a.rtc.tick(a.time.now)
    const snap = a.rtc.snapshot()
    const b = makeRtc({ start: a.time.now })
    b.rtc.restore(snap)
    expect(b.irq.level).toBe(a.irq.level)
    expect(b.rtc.snapshot()).toEqual(snap)
    expect(b.clock()).toEqual(a.clock())
    expect(b.rtc.nextDeadline()).toBe(a.rtc.nextDeadline())
  })
})
