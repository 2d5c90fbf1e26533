/**
 * Calendar arithmetic for the RTC: proleptic Gregorian dates <-> seconds
 * since 1970-01-01 00:00:00 UTC (Unix time, no leap seconds), in closed
 * form (H. Hinnant, "chrono-Compatible Low-Level Date Algorithms":
 * `days_from_civil`, `civil_from_days`). Pure integer arithmetic on
 * doubles, valid for every year the RTC can hold (and far beyond); never
 * reads the wall clock. Out-of-range fields are normalised the way C's
 * `mktime` does (month 13 is January of the next year, day 0 the last day
 * of the previous month), which is how QEMU's `mktimegm` treats whatever a
 * guest wrote into the time registers.
 */

export interface RtcDateTime {
  readonly year: number
  /** 1-12 */
  readonly month: number
  /** 1-31 */
  readonly day: number
  readonly hour: number
  readonly minute: number
  readonly second: number
}

export interface RtcBrokenDown extends RtcDateTime {
  /** 0 = Sunday ... 6 = Saturday. */
  readonly weekday: number
}

export const SECONDS_PER_DAY = 86_400

const mod = (a: number, m: number) => ((a % m) + m) % m

/** Days from 1970-01-01 to year-month-day (month 1-12). */
export const daysFromCivil = (year: number, month: number, day: number): number => {
  const y = year - (month <= 2 ? 1 : 0)
  const era = Math.floor(y / 400)
  const yoe = y - era * 400
  const mp = (month + 9) % 12
  const doy = Math.floor((153 * mp + 2) / 5) + day - 1
  const doe = yoe * 365 + Math.floor(yoe / 4) - Math.floor(yoe / 100) + doy
  return era * 146_097 + doe - 719_468
}

/** The date `days` days after 1970-01-01. */
export const civilFromDays = (days: number): { year: number; month: number; day: number } => {
  const z = days + 719_468
  const era = Math.floor(z / 146_097)
  const doe = z - era * 146_097
  const yoe = Math.floor((doe - Math.floor(doe / 1460) + Math.floor(doe / 36_524) - Math.floor(doe / 146_096)) / 365)
  const doy = doe - (365 * yoe + Math.floor(yoe / 4) - Math.floor(yoe / 100))
  const mp = Math.floor((5 * doy + 2) / 153)
  const day = doy - Math.floor((153 * mp + 2) / 5) + 1
  const month = mp < 10 ? mp + 3 : mp - 9
  return { year: yoe + era * 400 + (month <= 2 ? 1 : 0), month, day }
}

/** Unix seconds of a date-time; out-of-range fields carry over (mktime-style). */
export const unixSeconds = (t: RtcDateTime): number => {
  const months = t.month - 1
  const year = t.year + Math.floor(months / 12)
  const days = daysFromCivil(year, mod(months, 12) + 1, 1) + t.day - 1
  return days * SECONDS_PER_DAY + t.hour * 3600 + t.minute * 60 + t.second
}

/** The UTC date, time and weekday of Unix second `seconds` (an integer). */
export const brokenDown = (seconds: number): RtcBrokenDown => {
  const days = Math.floor(seconds / SECONDS_PER_DAY)
  const tod = seconds - days * SECONDS_PER_DAY
  const { year, month, day } = civilFromDays(days)
  return {
    year,
    month,
    day,
    hour: Math.floor(tod / 3600),
    minute: Math.floor(tod / 60) % 60,
    second: tod % 60,
    // 1970-01-01 was a Thursday
    weekday: mod(days + 4, 7)
  }
}
