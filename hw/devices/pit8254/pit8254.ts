/**
 * The host's interval timer: an Intel 8254 PIT (Intel 8254 datasheet,
 * "Functional Description", "Programming the 8254", "Read Operations",
 * "Mode Definitions") clocked at 1.193182 MHz as on the PC. Counter 0's OUT
 * is the machine's IRQ0, counter 2's GATE and OUT belong to port 0x61 (the
 * machine's business: `setGate` / `readOut`). counter.ts holds the per-mode
 * behaviour; this file is time and ports.
 *
 * Time. CLK pulse k happens at the first virtual nanosecond t with
 * floor(t * 1193182 / 1e9) >= k (`pitTicks`, `pitTickTime`: exact integer
 * arithmetic). Counters are never stepped per pulse: every port access,
 * gate change and tick first brings all counters to the current pulse in
 * closed form, then applies the access. The bus passes no time, so the PIT
 * reads virtual time from the `clock` it is given; `tick(now)` also brings
 * it to `now`. Time never goes backwards (an earlier `now` is ignored).
 *
 * Deadlines. `tick` returns the exact time of the next rising edge of every
 * OUT that has a line connected (counter 0 on a PC), so an idle machine can
 * jump straight there. A connected line is driven to OUT's level whenever
 * the PIT is brought up to date; if OUT rose at least once since the last
 * update (ticks came late), the line gets a fresh 0 -> 1 edge, so an
 * edge-triggered PIC never misses a timer interrupt entirely (several
 * periods missed in one jump still give one edge: the machine ticks at the
 * deadlines to get them all). Falling edges between updates are not
 * scheduled.
 *
 * Invariants: deterministic (same clock readings, same results); never
 * throws; wide accesses split into byte accesses at consecutive offsets;
 * offsets outside 0-3 read 0xFF and ignore writes; reading the control port
 * reads 0xFF (the 8254 floats its data bus there).
 */
import type { AccessSize, BusDevice, IrqLine, TimedDevice } from "../../machine/device.ts"
import {
  advance,
  controlWord,
  latchCount,
  latchStatus,
  newCounter,
  nextRise,
  readCount,
  setGate as setCounterGate,
  writeCount
} from "./counter.ts"
import {
  CONTROL,
  CW_RW_SHIFT,
  CW_SC_SHIFT,
  PIT_PORTS,
  pitTicks,
  pitTickTime,
  READBACK_COUNTER0,
  READBACK_NO_COUNT,
  READBACK_NO_STATUS
} from "./registers.ts"
import type { CounterState, PitState } from "./state.ts"

export interface Pit8254Options {
  readonly name?: string | undefined
  /** Current virtual time in ns (read at every port access, gate change and `readOut`). */
  readonly clock: () => number
  /** OUT of counter 0 (IRQ0 on a PC), 1 and 2. Only connected counters produce deadlines. */
  readonly out0?: IrqLine | undefined
  readonly out1?: IrqLine | undefined
  readonly out2?: IrqLine | undefined
}

type Counters = [CounterState, CounterState, CounterState]

const copyCounter = (c: CounterState): CounterState => ({ ...c })

export class Pit8254 implements BusDevice, TimedDevice {
  readonly name: string
  private readonly clock: () => number
  private readonly outs: readonly (IrqLine | undefined)[]
  private counters: Counters = [newCounter(), newCounter(), newCounter()]
  /** The CLK pulse every counter has been brought up to. */
  private synced = 0
  /** The level each connected line was last driven to. */
  private readonly lineLevels = [false, false, false]
  /** Absolute pulse of each connected counter's next OUT rising edge. */
  private readonly rises = [Number.POSITIVE_INFINITY, Number.POSITIVE_INFINITY, Number.POSITIVE_INFINITY]

  constructor(options: Pit8254Options) {
    this.name = options.name ?? "pit8254"
    this.clock = options.clock
    this.outs = [options.out0, options.out1, options.out2]
  }

  // ---------------------------------------------------------------- bus

  read(offset: number, size: AccessSize): number {
    this.catchUp(this.clock())
    const n = size === 2 ? 2 : size === 4 ? 4 : 1
    let value = 0
    for (let i = 0; i < n; i++) value |= this.readRegister(offset + i) << (8 * i)
    this.settle()
    return value >>> 0
  }

  write(offset: number, size: AccessSize, value: number): void {
    this.catchUp(this.clock())
    const n = size === 2 ? 2 : size === 4 ? 4 : 1
    const v = Number.isFinite(value) ? value : 0
    for (let i = 0; i < n; i++) this.writeRegister(offset + i, (v >>> (8 * i)) & 0xff)
    this.settle()
  }

  private counter(index: number): CounterState | undefined {
    return Number.isInteger(index) && index >= 0 && index < 3 ? this.counters[index] : undefined
  }

  private readRegister(offset: number): number {
    if (!Number.isInteger(offset) || offset < 0 || offset >= PIT_PORTS || offset === CONTROL) return 0xff
    const c = this.counter(offset)
    return c === undefined ? 0xff : readCount(c)
  }

  private writeRegister(offset: number, value: number): void {
    if (!Number.isInteger(offset) || offset < 0 || offset >= PIT_PORTS) return
    if (offset !== CONTROL) {
      const c = this.counter(offset)
      if (c !== undefined) writeCount(c, value)
      return
    }
    const select = value >> CW_SC_SHIFT
    if (select === 3) {
      this.readBack(value)
      return
    }
    const c = this.counter(select)
    if (c === undefined) return
    if (((value >> CW_RW_SHIFT) & 3) === 0) latchCount(c)
    else controlWord(c, value)
  }

  /** Read-back command: latch count and/or status of the selected counters. */
  private readBack(value: number): void {
    for (let i = 0; i < 3; i++) {
      if (!(value & (READBACK_COUNTER0 << i))) continue
      const c = this.counters[i]!
      if (!(value & READBACK_NO_STATUS)) latchStatus(c)
      if (!(value & READBACK_NO_COUNT)) latchCount(c)
    }
  }

  // --------------------------------------------------------------- time

  /** Bring every counter to virtual time `now`; emit the rising edges that happened on the way. False: nothing to do. */
  private catchUp(now: number): boolean {
    const target = pitTicks(now)
    if (!(target > this.synced)) return false
    const pulses = target - this.synced
    for (let i = 0; i < 3; i++) {
      const c = this.counters[i]!
      advance(c, pulses)
      this.drive(i, this.rises[i]! <= target)
    }
    this.synced = target
    return true
  }

  /** After any change: drive the lines to OUT and recompute the next rising edges. */
  private settle(): void {
    for (let i = 0; i < 3; i++) {
      if (this.outs[i] === undefined) continue
      this.drive(i, false)
      this.rises[i] = this.synced + nextRise(this.counters[i]!)
    }
  }

  private drive(index: number, rose: boolean): void {
    const line = this.outs[index]
    if (line === undefined) return
    const out = this.counters[index]!.out
    const was = this.lineLevels[index]!
    if (rose) {
      // at least one rising edge happened since the last update: show one, then settle on OUT
      if (was) line.set(false)
      line.set(true)
      if (!out) line.set(false)
    } else if (out !== was) {
      line.set(out)
    }
    this.lineLevels[index] = out
  }

  /** Advance to `now` (ns); the next rising edge of a connected OUT, or Infinity. */
  tick(now: number): number {
    // every other change settles at once, so with no pulse to catch up the lines and rises are already current
    // (the vCPU loop ticks at every VM exit: settling again would recompute nextRise for nothing)
    if (this.catchUp(now)) this.settle()
    return this.deadline()
  }

  /** The virtual time (ns) of the next rising edge of a connected OUT, or Infinity. */
  deadline(): number {
    let next = Number.POSITIVE_INFINITY
    for (let i = 0; i < 3; i++) if (this.outs[i] !== undefined) next = Math.min(next, this.rises[i]!)
    return next === Number.POSITIVE_INFINITY ? next : pitTickTime(next)
  }

  /** The CLK pulse the counters are brought up to. */
  get currentTick(): number {
    return this.synced
  }

  // -------------------------------------------------------- GATE and OUT

  /** Drive counter `channel`'s GATE input (counter 2 is port 0x61 bit 0 on a PC; 0 and 1 are tied high). */
  setGate(channel: number, level: boolean): void {
    const c = this.counter(channel)
    if (c === undefined) return
    this.catchUp(this.clock())
    setCounterGate(c, level)
    this.settle()
  }

  /** The level of counter `channel`'s OUT now (counter 2's is port 0x61 bit 5 on a PC). */
  readOut(channel: number): boolean {
    const c = this.counter(channel)
    if (c === undefined) return false
    this.catchUp(this.clock())
    this.settle()
    return c.out
  }

  // ------------------------------------------------- reset and snapshot

  /** Power-on: every counter in mode 0 with no count (OUT low); GATE levels are external and kept. */
  reset(): void {
    this.catchUp(this.clock())
    this.counters = this.counters.map((c) => ({ ...newCounter(), gate: c.gate })) as Counters
    this.settle()
  }

  snapshot(): PitState {
    this.catchUp(this.clock())
    this.settle()
    const [a, b, c] = this.counters
    return { tick: this.synced, counters: [copyCounter(a), copyCounter(b), copyCounter(c)] }
  }

  /** Load a snapshot taken at the same virtual time base; lines are driven to the restored OUT levels. */
  restore(state: PitState): void {
    const [a, b, c] = state.counters
    this.counters = [copyCounter(a), copyCounter(b), copyCounter(c)]
    this.synced = Number.isFinite(state.tick) && state.tick > 0 ? Math.floor(state.tick) : 0
    this.settle()
  }
}
