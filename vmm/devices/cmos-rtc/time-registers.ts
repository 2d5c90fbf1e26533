/**
 * The MC146818A's time, calendar and alarm bytes as register B formats them
 * (MC146818A datasheet, Table 2 "Time, Calendar and Alarm Data Modes":
 * BCD or binary per DM, 12-hour hours with bit 7 = PM per 24/12; "Alarm":
 * bytes 0xC0-0xFF are "don't care"). Pure functions of register B and the
 * CMOS bytes; the day of week is 1 = Sunday and the century sits at 0x32,
 * as QEMU's pc machine keeps them (hw/rtc/mc146818rtc.c rtc_set_cmos /
 * rtc_get_time, whose lenient decoding of out-of-range values this keeps).
 */
import { type RtcBrokenDown, SECONDS_PER_DAY, unixSeconds } from "./calendar.ts"
import { ALARM_DONT_CARE, B_24H, B_DM_BINARY, HOURS_PM, Reg } from "./registers.ts"

const mod = (a: number, m: number) => ((a % m) + m) % m

/** A register byte as a number: -1 for "don't care" (0xC0-0xFF, QEMU rtc_from_bcd), else BCD or binary. */
export const fromRegister = (b: number, byte: number): number => {
  if ((byte & ALARM_DONT_CARE) === ALARM_DONT_CARE) return -1
  return b & B_DM_BINARY ? byte : (byte >> 4) * 10 + (byte & 0x0f)
}

/** A number 0-255 as a register byte, BCD or binary (QEMU rtc_to_bcd, truncated to 8 bits). */
export const toRegister = (b: number, value: number): number => {
  const v = mod(value, 256)
  return (b & B_DM_BINARY ? v : (Math.floor(v / 10) << 4) | (v % 10)) & 0xff
}

/** An hours (or hours alarm) byte as 0-23: in 12-hour mode 12 AM is 0 and bit 7 adds 12. */
export const hourFromRegister = (b: number, byte: number): number => {
  const h = fromRegister(b, byte & ~HOURS_PM)
  if (b & B_24H) return h
  return (h % 12) + (byte & HOURS_PM ? 12 : 0)
}

/** The value of time register `index` for the broken-down time `t`. */
export const encodeTimeRegister = (b: number, t: RtcBrokenDown, index: number): number => {
  switch (index) {
    case Reg.Seconds:
      return toRegister(b, t.second)
    case Reg.Minutes:
      return toRegister(b, t.minute)
    case Reg.Hours: {
      if (b & B_24H) return toRegister(b, t.hour)
      const h = t.hour % 12 === 0 ? 12 : t.hour % 12
      return toRegister(b, h) | (t.hour >= 12 ? HOURS_PM : 0)
    }
    case Reg.DayOfWeek:
      return toRegister(b, t.weekday + 1)
    case Reg.DayOfMonth:
      return toRegister(b, t.day)
    case Reg.Month:
      return toRegister(b, t.month)
    case Reg.Year:
      return toRegister(b, mod(t.year, 100))
    default:
      return toRegister(b, Math.floor(t.year / 100))
  }
}

/** The time registers in `cmos` as a Unix second (day of week ignored; mktime-style normalisation). */
export const decodeTimeRegisters = (b: number, cmos: Uint8Array): number =>
  unixSeconds({
    year: fromRegister(b, cmos[Reg.Year]!) + fromRegister(b, cmos[Reg.Century]!) * 100,
    month: fromRegister(b, cmos[Reg.Month]!),
    day: fromRegister(b, cmos[Reg.DayOfMonth]!),
    hour: hourFromRegister(b, cmos[Reg.Hours]!),
    minute: fromRegister(b, cmos[Reg.Minutes]!),
    second: fromRegister(b, cmos[Reg.Seconds]!)
  })

/**
 * Seconds from RTC second `after` to the next second whose time of day
 * matches the alarm registers (1..86400), or Infinity if an alarm byte
 * holds a value no time can match. Alarm hours use their own PM bit in
 * 12-hour mode (QEMU's get_next_alarm uses the current hour's, a bug).
 */
export const alarmDelay = (b: number, cmos: Uint8Array, after: number): number => {
  const hourByte = cmos[Reg.HoursAlarm]!
  const h = (hourByte & ALARM_DONT_CARE) === ALARM_DONT_CARE ? -1 : hourFromRegister(b, hourByte)
  const m = fromRegister(b, cmos[Reg.MinutesAlarm]!)
  const s = fromRegister(b, cmos[Reg.SecondsAlarm]!)
  if (h > 23 || m > 59 || s > 59) return Number.POSITIVE_INFINITY
  const tod = mod(after, SECONDS_PER_DAY)
  // the first matching time of day after `tod`, in order; whole hours / minutes already past are skipped
  for (let i = 0; i < (h < 0 ? 24 : 1); i++) {
    const hh = h < 0 ? i : h
    if (hh * 3600 + 3599 <= tod) continue
    for (let j = 0; j < (m < 0 ? 60 : 1); j++) {
      const mm = m < 0 ? j : m
      if (hh * 3600 + mm * 60 + 59 <= tod) continue
      for (let k = 0; k < (s < 0 ? 60 : 1); k++) {
        const t = hh * 3600 + mm * 60 + (s < 0 ? k : s)
        if (t > tod) return t - tod
      }
    }
  }
  // none left today: the first match tomorrow
  return Math.max(h, 0) * 3600 + Math.max(m, 0) * 60 + Math.max(s, 0) + SECONDS_PER_DAY - tod
}
