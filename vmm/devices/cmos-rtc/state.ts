/**
 * The virtual MC146818A RTC + CMOS as a named plain record (snapshots,
 * migration, tests). `CmosRtc.snapshot()` produces one, `restore()` takes
 * one. The clock is kept as "RTC second at a virtual-time origin plus a
 * sub-second phase", never as a wall-clock reading.
 */
export interface CmosRtcState {
  /** The 128 CMOS bytes; the time registers hold the frozen time while the clock is stopped (SET, divider). */
  readonly cmos: readonly number[]
  /** The index register (bits 6-0 of the last write to port 0x70). */
  readonly index: number
  /** Bit 7 of the last write to port 0x70. */
  readonly nmiDisabled: boolean
  /** RTC time (Unix seconds) = baseSeconds + floor((now + phaseNs) / 1e9) while the clock runs. */
  readonly baseSeconds: number
  /** 0..999_999_999: where in the RTC second virtual time 0 falls. */
  readonly phaseNs: number
  /** The virtual time (ns) the device has been brought up to. */
  readonly syncedNs: number
  /** The periodic interrupt period in 32.768 kHz cycles (0: off, i.e. PIE clear or rate 0). */
  readonly periodCycles: number
  /** The 32.768 kHz cycle (counted from virtual time 0) of the next periodic interrupt. */
  readonly nextPeriodicCycle: number
  /** The level the IRQ 8 line is driven to (IRQF). */
  readonly irqLevel: boolean
}
