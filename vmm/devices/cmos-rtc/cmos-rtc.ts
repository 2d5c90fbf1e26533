/**
 * The guest's real-time clock and CMOS RAM: a Motorola MC146818A at ports
 * 0x70/0x71, IRQ 8, as QEMU's `mc146818rtc` presents it on the pc machine
 * (MC146818A datasheet: "Address Map", "Time, Calendar and Alarm
 * Locations", "Update Cycle", "Interrupts", Registers A-D; QEMU
 * hw/rtc/mc146818rtc.c). registers.ts has the map and bits, calendar.ts
 * the date arithmetic, time-registers.ts the BCD / binary / 12-hour
 * encodings and the alarm match, pc-cmos.ts the memory-size bytes.
 *
 * Time. The clock is never stepped: while it runs, the time registers are
 * computed on every read from the injected virtual clock,
 *   RTC second = baseSeconds + floor((now + phaseNs) / 1e9),
 * where `epochSeconds` (Unix time at virtual time 0) seeds baseSeconds.
 * The wall clock is never read. The registers are encoded per register B
 * (BCD or binary, 12 or 24 hours; day of week 1 = Sunday; the century at
 * 0x32, aliased at 0x37, as QEMU). Setting SET (register B) or holding the
 * divider (register A DV != 000/001/010) stops the clock: the current time
 * is frozen into the registers, which the guest may then write; restarting
 * reads them back (mktime-style normalisation, day of week ignored), keeps
 * the sub-second phase after SET (QEMU), and starts the first update half a
 * second later after a divider reset (datasheet). A time register written
 * while the clock runs sets the time at once, phase kept.
 *
 * UIP simplification: updates are instantaneous, so the time registers are
 * always consistent; register A's UIP reads 1 during the last 244 us
 * (8 cycles of 32 kHz) before each second boundary while the clock runs,
 * exactly QEMU's window, so guests that wait for UIP to fall behave alike.
 *
 * Interrupts (register C flags, IRQF, the IRQ 8 line) are computed lazily
 * from virtual time at every access and `tick(now)`:
 * - PF: periodic interrupt, rate from register A RS (Table 5), counted on
 *   the 32.768 kHz cycles of virtual time from the moment it was
 *   programmed. As in QEMU, the periodic timer (and PF) runs only while PIE
 *   is set (the datasheet sets PF whatever PIE); a rate change keeps the
 *   time since the last interrupt (QEMU `periodic_timer_update`).
 * - UF: at every second boundary unless the divider is in reset (also
 *   under SET, as the datasheet allows); setting SET clears UIE (QEMU).
 * - AF: at the second boundary that reaches the alarm time (bytes 0xC0-0xFF
 *   are "don't care"; alarm hours use their own PM bit in 12-hour mode).
 * IRQF and the line rise when an enabled flag is set; reading register C
 * returns and clears every flag and drops the line; writing B re-evaluates
 * IRQF against the flags already set (QEMU). `tick(now)` returns the next
 * time an enabled flag can rise, or Infinity while IRQF is already set (the
 * line cannot change until C is read), so an idle machine jumps straight
 * there. Lost-tick reinjection (QEMU's `lost_tick_policy=slew`) is not
 * modelled (QEMU's pc default is `discard`).
 *
 * Reset (`reset()`, the chipset RESET): as QEMU's rtc_reset, PIE, AIE and
 * SQWE and every register C flag are cleared, the line drops, CMOS byte
 * 0x0F (shutdown status) is cleared unless it holds 0xFE (S3 resume); the
 * time and the CMOS RAM survive (battery-backed).
 *
 * Invariants: deterministic; never throws on any offset/size/value or clock
 * reading; wider accesses split into byte accesses at consecutive offsets
 * (ISA bus sizing, QEMU impl size 1); offsets outside 0-1 and reads of the
 * index port return 0xFF; time never goes backwards (an earlier clock
 * reading is ignored).
 */
import type { AccessSize, BusDevice, IrqLine, TimedDevice } from "../../../hw/machine/device.ts"
import { brokenDown } from "./calendar.ts"
import { pcCmosBytes } from "./pc-cmos.ts"
import {
  A_DIVIDER,
  A_DIVIDER_32K,
  A_DIVIDER_RESET,
  A_RATE,
  A_UIP,
  B_AIE,
  B_PIE,
  B_SET,
  B_SQWE,
  B_UIE,
  C_AF,
  C_FLAGS,
  C_IRQF,
  C_PF,
  C_UF,
  CMOS_SIZE,
  DATA_PORT,
  FIRST_UPDATE_AFTER_RESET_NS,
  INDEX_MASK,
  INDEX_PORT,
  NMI_DISABLE,
  NS_PER_S,
  POWER_ON,
  periodicCycles,
  Reg,
  rtcCycles,
  rtcCycleTime,
  TIME_REGISTERS,
  UIP_HOLD_NS
} from "./registers.ts"
import type { CmosRtcState } from "./state.ts"
import { alarmDelay, decodeTimeRegisters, encodeTimeRegister } from "./time-registers.ts"

export type { CmosRtcState }

export interface CmosRtcOptions {
  readonly name?: string | undefined
  /** Virtual time in ns (read at every port access); never the wall clock. */
  readonly clock: () => number
  /** The RTC's time at virtual time 0, in Unix seconds (UTC). Default 946684800: 2000-01-01 00:00:00. */
  readonly epochSeconds?: number | undefined
  /** IRQ 8 (the machine wires it to the slave PIC / IOAPIC pin 8). */
  readonly irq?: IrqLine | undefined
  /** Guest RAM in bytes: fills the CMOS memory-size bytes as QEMU's pc machine. Default 0. */
  readonly ramBytes?: number | undefined
  /** Number of vCPUs, for CMOS 0x5F. Default 1. */
  readonly cpus?: number | undefined
}

/** 2000-01-01 00:00:00 UTC. */
export const DEFAULT_EPOCH_SECONDS = 946_684_800

const mod = (a: number, m: number) => ((a % m) + m) % m
const byteCount = (size: number) => (size === 2 ? 2 : size === 4 ? 4 : 1)

/** Is register A's divider chain running the clock (DV = 000, 001 or 010, as QEMU accepts)? */
const dividerRuns = (a: number) => (a & A_DIVIDER) <= A_DIVIDER_32K
const dividerInReset = (a: number) => (a & A_DIVIDER_RESET) === A_DIVIDER_RESET

export class CmosRtc implements BusDevice, TimedDevice {
  readonly name: string
  private readonly clock: () => number
  private readonly irq: IrqLine | undefined
  private readonly cmos = new Uint8Array(CMOS_SIZE)
  private index = 0
  private nmiMasked = false
  private baseSeconds: number
  private phaseNs = 0
  private synced = 0
  private periodCycles = 0
  private nextPeriodic = 0
  private irqLevel = false

  constructor(options: CmosRtcOptions) {
    const epoch = options.epochSeconds ?? DEFAULT_EPOCH_SECONDS
    if (!Number.isSafeInteger(epoch)) throw new RangeError("RTC epochSeconds must be an integer")
    const ram = options.ramBytes ?? 0
    if (!Number.isSafeInteger(ram) || ram < 0) throw new RangeError("RTC ramBytes must be a non-negative integer")
    const cpus = options.cpus ?? 1
    if (!Number.isInteger(cpus) || cpus < 1) throw new RangeError("RTC cpus must be >= 1")
    this.name = options.name ?? "cmos-rtc"
    this.clock = options.clock
    this.irq = options.irq
    this.baseSeconds = epoch
    this.cmos[Reg.A] = POWER_ON.a
    this.cmos[Reg.B] = POWER_ON.b
    this.cmos[Reg.C] = POWER_ON.c
    this.cmos[Reg.D] = POWER_ON.d
    for (const [i, v] of pcCmosBytes(ram, cpus)) this.cmos[i] = v
    this.synced = this.readClock()
  }

  // ---------------------------------------------------------------- bus

  read(offset: number, size: AccessSize): number {
    this.sync(this.readClock())
    const n = byteCount(size)
    let value = 0
    for (let i = 0; i < n; i++) value |= this.readPort(offset + i) << (8 * i)
    this.sync(this.synced)
    return value >>> 0
  }

  write(offset: number, size: AccessSize, value: number): void {
    this.sync(this.readClock())
    const n = byteCount(size)
    const v = Number.isFinite(value) ? value : 0
    for (let i = 0; i < n; i++) this.writePort(offset + i, (v >>> (8 * i)) & 0xff)
    this.sync(this.synced)
  }

  private readPort(offset: number): number {
    if (offset !== DATA_PORT) return 0xff // the index port is write-only; other offsets float
    const idx = this.index
    switch (idx) {
      case Reg.Ps2Century:
        this.index = Reg.Century // QEMU: the PS/2 century byte is an alias that moves the index
        return this.timeRegister(Reg.Century)
      case Reg.Seconds:
      case Reg.Minutes:
      case Reg.Hours:
      case Reg.DayOfWeek:
      case Reg.DayOfMonth:
      case Reg.Month:
      case Reg.Year:
      case Reg.Century:
        return this.timeRegister(idx)
      case Reg.A:
        return this.cmos[Reg.A]! | (this.updateInProgress() ? A_UIP : 0)
      case Reg.C: {
        const flags = this.cmos[Reg.C]!
        this.cmos[Reg.C] = 0
        this.drive(false)
        return flags
      }
      default:
        return this.cmos[idx]!
    }
  }

  private writePort(offset: number, byte: number): void {
    if (offset === INDEX_PORT) {
      this.index = byte & INDEX_MASK
      this.nmiMasked = (byte & NMI_DISABLE) !== 0
      return
    }
    if (offset !== DATA_PORT) return
    switch (this.index) {
      case Reg.Ps2Century:
        this.index = Reg.Century
        this.writeTimeRegister(Reg.Century, byte)
        return
      case Reg.Seconds:
      case Reg.Minutes:
      case Reg.Hours:
      case Reg.DayOfWeek:
      case Reg.DayOfMonth:
      case Reg.Month:
      case Reg.Year:
      case Reg.Century:
        this.writeTimeRegister(this.index, byte)
        return
      case Reg.A:
        this.writeA(byte)
        return
      case Reg.B:
        this.writeB(byte)
        return
      case Reg.C:
      case Reg.D:
        return // read-only
      default:
        this.cmos[this.index] = byte
    }
  }

  // ---------------------------------------------------------- the clock

  private running(): boolean {
    return (this.cmos[Reg.B]! & B_SET) === 0 && dividerRuns(this.cmos[Reg.A]!)
  }

  /** The RTC second at virtual time `t` while the clock runs. */
  private secondsAt(t: number): number {
    return this.baseSeconds + Math.floor((t + this.phaseNs) / NS_PER_S)
  }

  private updateInProgress(): boolean {
    return this.running() && mod(this.synced + this.phaseNs, NS_PER_S) >= NS_PER_S - UIP_HOLD_NS
  }

  private timeRegister(idx: number): number {
    if (!this.running()) return this.cmos[idx]!
    return encodeTimeRegister(this.cmos[Reg.B]!, brokenDown(this.secondsAt(this.synced)), idx)
  }

  private writeTimeRegister(idx: number, byte: number): void {
    if (!this.running()) {
      this.cmos[idx] = byte
      return
    }
    this.freeze()
    this.cmos[idx] = byte
    this.rebase(this.decodeHeld(), false)
  }

  /** Register A: UIP is read-only; DV may stop or restart the clock; RS reprograms the periodic timer. */
  private writeA(byte: number): void {
    const oldA = this.cmos[Reg.A]!
    const wasRunning = this.running()
    const oldPeriod = this.periodCycles
    if (wasRunning && !dividerRuns(byte)) this.freeze()
    this.cmos[Reg.A] = byte & ~A_UIP
    if (!wasRunning && this.running()) this.rebase(this.decodeHeld(), dividerInReset(oldA))
    if ((oldA ^ byte) & A_RATE) this.reprogramPeriodic(oldPeriod)
  }

  /** Register B: SET stops the clock (and clears UIE), clearing it restarts; IRQF re-evaluated; PIE. */
  private writeB(byte: number): void {
    const oldB = this.cmos[Reg.B]!
    const wasRunning = this.running()
    const oldPeriod = this.periodCycles
    let restart: number | undefined
    if (byte & B_SET) {
      if (wasRunning) this.freeze()
      byte &= ~B_UIE
    } else if (!wasRunning && oldB & B_SET && dividerRuns(this.cmos[Reg.A]!)) {
      restart = this.decodeHeld() // in the format the guest wrote them (old B), as QEMU
    }
    this.cmos[Reg.B] = byte
    if (restart !== undefined) this.rebase(restart, false)
    const c = this.cmos[Reg.C]!
    if (byte & c & C_FLAGS) {
      this.cmos[Reg.C] = c | C_IRQF
      this.drive(true)
    } else {
      this.cmos[Reg.C] = c & ~C_IRQF
      this.drive(false)
    }
    if ((oldB ^ byte) & B_PIE) this.reprogramPeriodic(oldPeriod)
  }

  /** The held time registers as an RTC second, decoded per the current register B. */
  private decodeHeld(): number {
    return decodeTimeRegisters(this.cmos[Reg.B]!, this.cmos)
  }

  /** Copy the running time into the time registers (in the current format) before the clock stops. */
  private freeze(): void {
    const t = brokenDown(this.secondsAt(this.synced))
    for (const idx of TIME_REGISTERS) this.cmos[idx] = encodeTimeRegister(this.cmos[Reg.B]!, t, idx)
  }

  /** Restart the clock at RTC second `seconds` now; `halfSecond`: first update 500 ms from now. */
  private rebase(seconds: number, halfSecond: boolean): void {
    if (halfSecond) this.phaseNs = mod(-(this.synced + FIRST_UPDATE_AFTER_RESET_NS), NS_PER_S)
    this.baseSeconds = seconds - Math.floor((this.synced + this.phaseNs) / NS_PER_S)
  }

  // ------------------------------------------------------- interrupts

  private reprogramPeriodic(oldPeriod: number): void {
    const period = this.cmos[Reg.B]! & B_PIE ? periodicCycles(this.cmos[Reg.A]!) : 0
    if (period === 0) {
      this.periodCycles = 0
      return
    }
    const cur = rtcCycles(this.synced)
    // a rate change keeps the time since the last interrupt; a fresh start waits one period
    this.nextPeriodic = oldPeriod > 0 ? Math.max(this.nextPeriodic - oldPeriod + period, cur) : cur + period
    this.periodCycles = period
  }

  /** Bring the flags up to virtual time `now`; raise IRQF and the line for enabled flags. */
  private sync(now: number): void {
    const t = Math.max(now, this.synced)
    let flags = 0
    if (this.periodCycles > 0) {
      const c = rtcCycles(t)
      if (c >= this.nextPeriodic) {
        flags |= C_PF
        this.nextPeriodic += (Math.floor((c - this.nextPeriodic) / this.periodCycles) + 1) * this.periodCycles
      }
    }
    if (t > this.synced && !dividerInReset(this.cmos[Reg.A]!)) {
      const from = Math.floor((this.synced + this.phaseNs) / NS_PER_S)
      const to = Math.floor((t + this.phaseNs) / NS_PER_S)
      if (to > from) {
        flags |= C_UF
        if (this.running() && alarmDelay(this.cmos[Reg.B]!, this.cmos, this.baseSeconds + from) <= to - from)
          flags |= C_AF
      }
    }
    this.synced = t
    if (flags === 0) return
    const c = this.cmos[Reg.C]! | flags
    this.cmos[Reg.C] = c
    if (c & this.cmos[Reg.B]! & C_FLAGS) {
      this.cmos[Reg.C] = c | C_IRQF
      this.drive(true)
    }
  }

  private drive(level: boolean): void {
    if (level === this.irqLevel) return
    this.irqLevel = level
    this.irq?.set(level)
  }

  private readClock(): number {
    const now = this.clock()
    return Number.isFinite(now) && now > 0 ? Math.floor(Math.min(now, Number.MAX_SAFE_INTEGER)) : 0
  }

  /** Advance to virtual time `now` (ns); the next time an enabled interrupt flag can rise, or Infinity. */
  tick(now: number): number {
    this.sync(Number.isFinite(now) && now > 0 ? Math.floor(Math.min(now, Number.MAX_SAFE_INTEGER)) : 0)
    return this.nextDeadline()
  }

  /** The next virtual time (ns) at which IRQF can rise (Infinity: not before the guest reads C). */
  nextDeadline(): number {
    const c = this.cmos[Reg.C]!
    if (c & C_IRQF) return Number.POSITIVE_INFINITY
    const b = this.cmos[Reg.B]!
    let next = Number.POSITIVE_INFINITY
    if (b & B_PIE && this.periodCycles > 0) next = rtcCycleTime(this.nextPeriodic)
    if (!dividerInReset(this.cmos[Reg.A]!) && b & (B_UIE | B_AIE)) {
      const boundary = (Math.floor((this.synced + this.phaseNs) / NS_PER_S) + 1) * NS_PER_S - this.phaseNs
      if (b & B_UIE) next = Math.min(next, boundary)
      if (b & B_AIE && this.running()) {
        const delay = alarmDelay(this.cmos[Reg.B]!, this.cmos, this.secondsAt(this.synced))
        if (delay !== Number.POSITIVE_INFINITY) next = Math.min(next, boundary + (delay - 1) * NS_PER_S)
      }
    }
    return next
  }

  // ------------------------------------------------------ VMM interface

  /** Bit 7 of the last index write: the PC's NMI mask. */
  get nmiDisabled(): boolean {
    return this.nmiMasked
  }

  /** A CMOS byte as stored, without side effects (time registers: as of the last freeze). */
  cmosByte(index: number): number {
    return Number.isInteger(index) && index >= 0 && index < CMOS_SIZE ? this.cmos[index]! : 0xff
  }

  /** Set a CMOS RAM byte from the VMM (QEMU `mc146818rtc_set_cmos_data`); registers A-D are left alone. */
  setCmosByte(index: number, value: number): void {
    if (!Number.isInteger(index) || index < 0 || index >= CMOS_SIZE) return
    if (index >= Reg.A && index <= Reg.D) return
    this.cmos[index] = Number.isFinite(value) ? value & 0xff : 0
  }

  /** The time the RTC shows now (frozen registers decoded while stopped), in Unix seconds. */
  currentSeconds(): number {
    this.sync(this.readClock())
    return this.running() ? this.secondsAt(this.synced) : this.decodeHeld()
  }

  // ----------------------------------------------- reset and snapshot

  /** Chipset RESET: PIE, AIE, SQWE and the C flags cleared, line low, 0x0F cleared unless 0xFE (QEMU rtc_reset). */
  reset(): void {
    this.sync(this.readClock())
    if (this.cmos[Reg.ShutdownStatus] !== 0xfe) this.cmos[Reg.ShutdownStatus] = 0
    this.cmos[Reg.B] = this.cmos[Reg.B]! & ~(B_PIE | B_AIE | B_SQWE)
    this.cmos[Reg.C] = 0
    this.periodCycles = 0
    this.drive(false)
  }

  snapshot(): CmosRtcState {
    this.sync(this.readClock())
    return {
      cmos: Array.from(this.cmos),
      index: this.index,
      nmiDisabled: this.nmiMasked,
      baseSeconds: this.baseSeconds,
      phaseNs: this.phaseNs,
      syncedNs: this.synced,
      periodCycles: this.periodCycles,
      nextPeriodicCycle: this.nextPeriodic,
      irqLevel: this.irqLevel
    }
  }

  /** Load a snapshot taken on the same virtual time base; the line is driven to the restored level. */
  restore(state: CmosRtcState): void {
    const int = (v: number, fallback: number) => (Number.isSafeInteger(v) ? v : fallback)
    for (let i = 0; i < CMOS_SIZE; i++) this.cmos[i] = (state.cmos[i] ?? 0) & 0xff
    this.index = int(state.index, 0) & INDEX_MASK
    this.nmiMasked = state.nmiDisabled
    this.baseSeconds = int(state.baseSeconds, DEFAULT_EPOCH_SECONDS)
    this.phaseNs = mod(int(state.phaseNs, 0), NS_PER_S)
    this.synced = Math.max(0, int(state.syncedNs, 0))
    this.periodCycles = Math.max(0, int(state.periodCycles, 0))
    this.nextPeriodic = Math.max(0, int(state.nextPeriodicCycle, 0))
    this.irqLevel = !state.irqLevel
    this.drive(state.irqLevel)
  }
}
