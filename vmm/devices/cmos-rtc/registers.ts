/**
 * Ports, register indexes, bits and time base of the Motorola MC146818A
 * real-time clock + CMOS RAM (MC146818A datasheet: "Address Map" (Figure 3),
 * "Time, Calendar and Alarm Locations" (Table 2: binary and BCD data modes),
 * "Register A" (UIP, DV2-DV0, RS3-RS0; Table 5 "Periodic Interrupt Rate"),
 * "Register B" (SET, PIE, AIE, UIE, SQWE, DM, 24/12, DSE), "Register C"
 * (IRQF, PF, AF, UF), "Register D" (VRT)), and the PC/AT CMOS layout as
 * QEMU's pc machine fills it (hw/i386/pc.c `pc_cmos_init_late`,
 * `set_boot_dev`; hw/i386/x86.c `x86_rtc_set_cpus_count`).
 *
 * ```
 * port  offset  write                               read
 * 0x70    0     bit 7 NMI disable, bits 6-0 index    0xFF (index is write-only, as QEMU)
 * 0x71    1     CMOS[index]                          CMOS[index]
 *
 * index  register                 index  PC/AT CMOS byte (QEMU pc)
 * 0x00   seconds                  0x0F   shutdown status
 * 0x01   seconds alarm            0x10   floppy drive types
 * 0x02   minutes                  0x12   hard disk types
 * 0x03   minutes alarm            0x14   equipment byte
 * 0x04   hours (bit 7 = PM, 12h)  0x15-16 base memory in KiB (<= 640)
 * 0x05   hours alarm              0x17-18 extended memory in KiB (1 MiB..65 MiB)
 * 0x06   day of week (1 = Sun)    0x30-31 same as 0x17-18
 * 0x07   day of month             0x32   century (0x37: IBM PS/2 alias)
 * 0x08   month                    0x34-35 memory above 16 MiB in 64 KiB units
 * 0x09   year (two digits)        0x38, 0x3D boot order
 * 0x0A-0x0D  registers A-D        0x5B-5D memory above 4 GiB in 64 KiB units
 *                                 0x5F   number of CPUs - 1
 * ```
 */

export const RTC_PORTS = 2
export const INDEX_PORT = 0
export const DATA_PORT = 1
/** Bit 7 of a write to the index port: NMI disable (the PC's NMI mask lives here). */
export const NMI_DISABLE = 0x80
export const INDEX_MASK = 0x7f
export const CMOS_SIZE = 128

export const Reg = {
  Seconds: 0x00,
  SecondsAlarm: 0x01,
  Minutes: 0x02,
  MinutesAlarm: 0x03,
  Hours: 0x04,
  HoursAlarm: 0x05,
  DayOfWeek: 0x06,
  DayOfMonth: 0x07,
  Month: 0x08,
  Year: 0x09,
  A: 0x0a,
  B: 0x0b,
  C: 0x0c,
  D: 0x0d,
  ShutdownStatus: 0x0f,
  FloppyTypes: 0x10,
  HardDiskTypes: 0x12,
  Equipment: 0x14,
  BaseMemoryLow: 0x15,
  BaseMemoryHigh: 0x16,
  ExtendedMemoryLow: 0x17,
  ExtendedMemoryHigh: 0x18,
  ExtendedMemory2Low: 0x30,
  ExtendedMemory2High: 0x31,
  Century: 0x32,
  MemoryAbove16MLow: 0x34,
  MemoryAbove16MHigh: 0x35,
  Ps2Century: 0x37,
  BootOrder3: 0x38,
  AtaTranslation: 0x39,
  BootOrder12: 0x3d,
  MemoryAbove4GLow: 0x5b,
  MemoryAbove4GMid: 0x5c,
  MemoryAbove4GHigh: 0x5d,
  CpuCount: 0x5f
} as const

/** The registers derived from the clock while it runs (the century included, as QEMU does). */
export const TIME_REGISTERS: ReadonlyArray<number> = [
  Reg.Seconds,
  Reg.Minutes,
  Reg.Hours,
  Reg.DayOfWeek,
  Reg.DayOfMonth,
  Reg.Month,
  Reg.Year,
  Reg.Century
]

/** Register A: update in progress (read-only), divider chain DV2-DV0, rate selector RS3-RS0. */
export const A_UIP = 0x80
export const A_DIVIDER = 0x70
export const A_RATE = 0x0f
/** DV = 010: the 32.768 kHz time base that runs the clock (QEMU also runs on 000 and 001). */
export const A_DIVIDER_32K = 0x20
/** DV = 11x: divider chain held in reset. */
export const A_DIVIDER_RESET = 0x60

/** Register B. */
export const B_SET = 0x80
export const B_PIE = 0x40
export const B_AIE = 0x20
export const B_UIE = 0x10
export const B_SQWE = 0x08
/** Data mode: 1 = binary, 0 = BCD. */
export const B_DM_BINARY = 0x04
/** 1 = 24-hour mode, 0 = 12-hour mode (hours bit 7 = PM). */
export const B_24H = 0x02
export const B_DSE = 0x01

/** Register C (read-only, cleared by a read). */
export const C_IRQF = 0x80
export const C_PF = 0x40
export const C_AF = 0x20
export const C_UF = 0x10
/** The interrupt flags that pair with B's enable bits (PF/PIE, AF/AIE, UF/UIE). */
export const C_FLAGS = C_PF | C_AF | C_UF

/** Register D: valid RAM and time (the battery is good). */
export const D_VRT = 0x80

/** Power-on values QEMU gives registers A-D (mc146818rtc.c `rtc_realizefn`): 32 kHz, 1024 Hz, BCD, 24h. */
export const POWER_ON = { a: 0x26, b: 0x02, c: 0x00, d: D_VRT } as const

/** Hours register bit 7 in 12-hour mode. */
export const HOURS_PM = 0x80
/** An alarm byte with bits 7-6 set is "don't care" (matches every value). */
export const ALARM_DONT_CARE = 0xc0

/** The time base: a 32.768 kHz crystal. */
export const RTC_HZ = 32_768
export const NS_PER_S = 1_000_000_000
/** UIP is set this long before every update (QEMU's UIP_HOLD_LENGTH: 8 cycles of 32 kHz, in integer ns). */
export const UIP_HOLD_NS = Math.floor((8 * NS_PER_S) / RTC_HZ)
/** Leaving divider reset starts the first update cycle half a second later (datasheet, "Divider Chain Control"). */
export const FIRST_UPDATE_AFTER_RESET_NS = 500_000_000

/**
 * The periodic interrupt period for rate selector RS (Table 5), in 32.768
 * kHz cycles: 0 = none; 1 and 2 are 256 Hz and 128 Hz (as rates 8 and 9);
 * 3-15 are 2^(RS-1) cycles, 8192 Hz down to 2 Hz (QEMU
 * `periodic_period_to_clock`).
 */
export const periodicCycles = (rate: number): number => {
  let rs = rate & A_RATE
  if (rs === 0) return 0
  if (rs <= 2) rs += 7
  return 1 << (rs - 1)
}

/** floor(a / b) for non-negative integers below 2^53, corrected against rounding. */
const divFloor = (a: number, b: number): number => {
  let q = Math.floor(a / b)
  if (q * b > a) q--
  else if ((q + 1) * b <= a) q++
  return q
}

/** 32.768 kHz cycles elapsed by virtual time `now` (ns): floor(now * 32768 / 1e9), exact up to 2^53 ns. */
export const rtcCycles = (now: number): number => {
  if (!(now > 0)) return 0
  const ns = Math.floor(Math.min(now, Number.MAX_SAFE_INTEGER))
  const seconds = divFloor(ns, NS_PER_S)
  return seconds * RTC_HZ + divFloor((ns - seconds * NS_PER_S) * RTC_HZ, NS_PER_S)
}

/** The first virtual time (ns) at which `cycle` 32 kHz cycles have elapsed: the inverse of `rtcCycles`. */
export const rtcCycleTime = (cycle: number): number => {
  if (!(cycle > 0)) return 0
  const seconds = divFloor(cycle, RTC_HZ)
  const scaled = (cycle - seconds * RTC_HZ) * NS_PER_S
  const q = divFloor(scaled, RTC_HZ)
  return seconds * NS_PER_S + (q * RTC_HZ === scaled ? q : q + 1)
}
