/**
 * Timer drivers: the PIT's channel 0 as a periodic tick on IRQ0, and a
 * pCPU's local APIC timer (one-shot or periodic, on a vector of our choice).
 *
 * PIT: Intel 8254 datasheet, "Programming the 8254" (control word: SC = 00
 * counter 0, RW = 11 LSB then MSB, M = 010 mode 2, BCD = 0, i.e. 0x34) and
 * "Mode 2 - Rate Generator" (OUT pulses once every N CLK pulses; N = 1 is
 * illegal, 0 stands for 65536), with the PC's 1.193182 MHz CLK. Ticks are
 * taken from the 8259A pair in polled mode (drivers/pic.ts): each rising
 * edge of OUT0 latches IRQ0, a poll takes it, a specific EOI ends it. The
 * PIC holds one request per line, so the kernel must poll at least once per
 * period; `runUntil` does it by stopping at every device deadline (the PIT's
 * deadline is its next rising edge).
 *
 * LAPIC: Intel SDM Vol. 3A 11.5.4 "APIC Timer" (divide configuration
 * register, Figure 11-10; initial and current count; LVT timer entry with
 * the one-shot / periodic mode bits 18:17, Figure 11-8), 11.4.3 / 11.9 (SVR
 * bit 8 software enable, spurious vector), 11.8.4-11.8.5 (IRR, INTA moves
 * the vector to ISR, EOI write). The window is the pCPU's own 4 KiB APIC
 * page (each pCPU sees its own at 0xFEE00000), addressed by offset. The
 * kernel takes a timer interrupt the way its pCPU would: it sees the
 * vector's IRR bit, runs the pCPU's interrupt-acknowledge cycle (the
 * `acknowledge` callback: `machine.cpus[i].acknowledge`), counts the tick
 * and writes EOI. The bus clock is not in the firmware table: it is an
 * option (default LAPIC_BUS_HZ, what the machine is built with).
 */
import { divisorOf, LapicReg, LVT_MASK, LVT_TIMER_PERIODIC, SVR_ENABLE } from "../hw/devices/lapic/registers.ts"
import { CONTROL, PIT_HZ } from "../hw/devices/pit8254/registers.ts"
import { LAPIC_BUS_HZ } from "../hw/machine/machine.ts"
import type { PicDriver } from "./pic.ts"
import { advanceTo, err, ok, type Platform, type RegisterBus, type Result } from "./platform.ts"

export const PIT_BASE = 0x40
/** Counter 0, LSB then MSB, mode 2 (rate generator), binary. */
export const PIT_CW_RATE = 0x34
/** Counter 0, LSB then MSB, mode 0, binary: with no count written OUT stays low (stopped). */
export const PIT_CW_STOP = 0x30
/** The PIT's OUT0 on the PC. */
export const PIT_IRQ = 0
/** The slowest and fastest programmable rates (count 65536 and count 2). */
export const PIT_MIN_HZ = PIT_HZ / 0x10000
export const PIT_MAX_HZ = PIT_HZ / 2

export type TimerError =
  | { readonly _tag: "BadRate"; readonly hz: number; readonly min: number; readonly max: number }
  | { readonly _tag: "BadPeriod"; readonly periodNs: number; readonly reason: string }
  | { readonly _tag: "BadVector"; readonly vector: number }

export interface PitOptions {
  readonly base?: number
  /** Another IRQ the poll loop took from the PIC (already EOI'd); default: counted in `unhandled`. */
  readonly onOtherIrq?: (irq: number) => void
}

export class PitTimer {
  readonly base: number
  private readonly ports: RegisterBus
  private readonly pic: PicDriver
  private readonly onOtherIrq: ((irq: number) => void) | undefined
  /** The programmed count (1..65536) and the resulting rate, once started. */
  divisor = 0
  hz = 0
  ticks = 0
  unhandled = 0

  constructor(ports: RegisterBus, pic: PicDriver, options: PitOptions = {}) {
    this.ports = ports
    this.pic = pic
    this.base = options.base ?? PIT_BASE
    this.onOtherIrq = options.onOtherIrq
  }

  /** Program channel 0 as a rate generator at (about) `hz`; returns the exact rate, PIT_HZ / count. */
  start(hz: number): Result<number, TimerError> {
    if (!(Number.isFinite(hz) && hz >= PIT_MIN_HZ && hz <= PIT_MAX_HZ))
      return err({ _tag: "BadRate", hz, min: PIT_MIN_HZ, max: PIT_MAX_HZ })
    const count = Math.min(0x10000, Math.max(2, Math.round(PIT_HZ / hz)))
    this.ports.write(this.base + CONTROL, 1, PIT_CW_RATE)
    this.ports.write(this.base, 1, count & 0xff)
    this.ports.write(this.base, 1, (count >>> 8) & 0xff) // 65536 is written as 0
    this.divisor = count
    this.hz = PIT_HZ / count
    this.pic.unmask(PIT_IRQ)
    return ok(this.hz)
  }

  /** Mask IRQ0 and leave counter 0 in mode 0 without a count (OUT low: no more edges). */
  stop(): void {
    this.pic.mask(PIT_IRQ)
    this.ports.write(this.base + CONTROL, 1, PIT_CW_STOP)
    this.divisor = 0
    this.hz = 0
  }

  /** Take every pending PIC request; returns the timer ticks among them. */
  poll(): number {
    let ticks = 0
    for (let irq = this.pic.poll(); irq !== undefined; irq = this.pic.poll()) {
      this.pic.eoi(irq)
      if (irq === PIT_IRQ) ticks++
      else if (this.onOtherIrq !== undefined) this.onOtherIrq(irq)
      else this.unhandled++
    }
    this.ticks += ticks
    return ticks
  }

  /** Advance virtual time to `until`, polling at every device deadline; returns the ticks taken. */
  runUntil(platform: Platform, until: number): number {
    const before = this.ticks
    advanceTo(platform, until, () => this.poll())
    return this.ticks - before
  }
}

export interface LapicTimerOptions {
  /** Timer input clock in Hz (default LAPIC_BUS_HZ). */
  readonly busHz?: number
  /** The pCPU's interrupt-acknowledge cycle: returns the vector it takes (machine.cpus[i].acknowledge). */
  readonly acknowledge: () => number
}

export interface LapicTimerProgram {
  /** 32..255. */
  readonly vector: number
  readonly periodic: boolean
  /** Time to the (first) expiry in virtual ns. */
  readonly periodNs: number
  /** Divide value: 1, 2, 4, ..., 128 (default 16). */
  readonly divide?: number
}

/** The divide configuration register value for a divisor (inverse of `divisorOf`, SDM Figure 11-10). */
export const divideConfig = (divide: number): number | undefined => {
  if (divide === 1) return 0b1011
  const code = Math.log2(divide) - 1
  if (!Number.isInteger(code) || code < 0 || code > 6) return undefined
  return ((code & 4) << 1) | (code & 3)
}

export class LapicTimer {
  private readonly apic: RegisterBus
  private readonly busHz: number
  private readonly acknowledge: () => number
  vector = 0
  /** The programmed initial count (0: stopped). */
  initialCount = 0
  /** The exact period the count gives, in ns. */
  periodNs = 0
  ticks = 0
  /** Vectors the acknowledge cycle returned that were not ours (EOI'd and dropped). */
  unhandled = 0

  /** `apic` is the pCPU's APIC page addressed by offset (e.g. machine.lapics[i]). */
  constructor(apic: RegisterBus, options: LapicTimerOptions) {
    this.apic = apic
    this.busHz = options.busHz ?? LAPIC_BUS_HZ
    this.acknowledge = options.acknowledge
  }

  /** Software-enable the APIC and start its timer; returns the exact period in ns. */
  start(program: LapicTimerProgram): Result<number, TimerError> {
    const { vector, periodic, periodNs } = program
    if (!Number.isInteger(vector) || vector < 32 || vector > 255) return err({ _tag: "BadVector", vector })
    const config = divideConfig(program.divide ?? 16)
    if (config === undefined)
      return err({ _tag: "BadPeriod", periodNs, reason: `divide ${program.divide} is not a power of two in 1..128` })
    const divide = divisorOf(config)
    const count = Math.round((periodNs * this.busHz) / (divide * 1e9))
    if (!Number.isFinite(count) || count < 1 || count > 0xffffffff)
      return err({ _tag: "BadPeriod", periodNs, reason: `needs a count of ${count} at divide ${divide}` })
    this.apic.write(LapicReg.SVR, 4, SVR_ENABLE | 0xff)
    this.apic.write(LapicReg.TIMER_DIVIDE, 4, config)
    this.apic.write(LapicReg.LVT_TIMER, 4, vector | (periodic ? LVT_TIMER_PERIODIC : 0))
    this.apic.write(LapicReg.TIMER_INITIAL, 4, count) // writing the initial count starts the countdown
    this.vector = vector
    this.initialCount = count
    this.periodNs = (count * divide * 1e9) / this.busHz
    return ok(this.periodNs)
  }

  /** Mask the timer's LVT entry and stop the countdown. */
  stop(): void {
    this.apic.write(LapicReg.LVT_TIMER, 4, LVT_MASK)
    this.apic.write(LapicReg.TIMER_INITIAL, 4, 0)
    this.initialCount = 0
  }

  currentCount(): number {
    return this.apic.read(LapicReg.TIMER_CURRENT, 4)
  }

  /** If the timer's vector is requested (IRR), take it (INTA), count it and EOI; returns 0 or 1. */
  poll(): number {
    if (this.vector === 0) return 0
    const irr = this.apic.read(LapicReg.IRR0 + (this.vector >>> 5) * 0x10, 4)
    if ((irr & (1 << (this.vector & 31))) === 0) return 0
    const taken = this.acknowledge()
    this.apic.write(LapicReg.EOI, 4, 0)
    if (taken !== this.vector) {
      this.unhandled++
      return 0
    }
    this.ticks++
    return 1
  }

  /** Advance virtual time to `until`, polling at every device deadline; returns the ticks taken. */
  runUntil(platform: Platform, until: number): number {
    const before = this.ticks
    advanceTo(platform, until, () => this.poll())
    return this.ticks - before
  }
}
