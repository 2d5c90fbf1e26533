/**
 * One 8254 counter as a state machine over CLK pulses (Intel 8254 datasheet,
 * "Mode Definitions" (modes 0-5), "Operation Common to All Modes" (control
 * word, GATE, counter wrap-around), "Read Operations" (counter latch,
 * read-back, status byte) and Table "Minimum and Maximum Initial Counts").
 *
 * Time is never stepped pulse by pulse: `advance(c, n)` jumps `n` pulses in
 * closed form, so a counter left alone for a virtual hour costs the same as
 * one left for a microsecond. Events (control words, count writes, gate
 * changes) happen between pulses, after the device has advanced the counter
 * to the current pulse. Datasheet points the model follows:
 * - A count written (or a trigger) is loaded into the CE on the next pulse,
 *   which does not decrement it: mode 0/4 OUT changes N+1 pulses after the
 *   write.
 * - Mode 0: OUT low from the control word or a count write until the CE
 *   reaches 0. The first byte of a two-byte write stops counting; GATE low
 *   suspends counting but not the load. The CE wraps and keeps counting.
 * - Mode 1: a GATE rising edge loads the CE on the next pulse and drives OUT
 *   low until the CE reaches 0 (retriggerable).
 * - Mode 2: OUT low for the one pulse during which the CE holds 1, then the
 *   CE reloads; period N. A count written while running takes effect at the
 *   end of the period; GATE low forces OUT high and stops, a GATE rising
 *   edge reloads on the next pulse. A count of 1 is illegal (here: OUT stays
 *   low).
 * - Mode 3: square wave. Even N: the CE goes N, N-2, ..., 2, and OUT toggles
 *   as it would reach 0 (N/2 pulses high, N/2 low). Odd N: the CE goes N-1,
 *   ..., 2, 0 with OUT high for (N+1)/2 pulses, then N-1, ..., 2 with OUT low
 *   for (N-1)/2 pulses. A count written while running takes effect at the
 *   end of the current half-cycle. A count of 1 is illegal (here: OUT stays
 *   high).
 * - Mode 4: OUT strobes low for one pulse when the CE reaches 0; GATE low
 *   suspends counting. Mode 5: the same, triggered by a GATE rising edge.
 * - Before a count is loaded after a control word, the CE is undefined; here
 *   it holds its previous value.
 */
import {
  CW_BCD,
  CW_MODE_SHIFT,
  CW_PROGRAM_MASK,
  CW_RW_SHIFT,
  RW_LSB,
  RW_MSB,
  STATUS_NULL_COUNT,
  STATUS_OUT
} from "./registers.ts"
import type { CounterState } from "./state.ts"

/** A counter as after power-on: mode 0, LSB-then-MSB, binary, no count, OUT low, GATE high. */
export const newCounter = (): CounterState => ({
  control: 0x30,
  mode: 0,
  rw: 3,
  bcd: false,
  cr: 0,
  crLow: 0,
  writeMsb: false,
  readMsb: false,
  latched: false,
  latchValue: 0,
  statusLatched: false,
  statusValue: 0,
  nullCount: true,
  gate: true,
  out: false,
  ce: 0,
  hasCount: false,
  running: false,
  loadPending: false,
  newCount: false,
  strobed: false,
  high: true,
  period: 0
})

/** 2^16 binary or 10^4 BCD: the count a CR of 0 stands for. */
export const modulus = (c: CounterState): number => (c.bcd ? 10_000 : 0x10000)

const mod = (a: number, m: number) => ((a % m) + m) % m

const fromBcd = (x: number): number =>
  (((x >> 12) & 15) * 1000 + ((x >> 8) & 15) * 100 + ((x >> 4) & 15) * 10 + (x & 15)) % 10_000

const toBcd = (v: number): number =>
  ((Math.floor(v / 1000) % 10) << 12) | ((Math.floor(v / 100) % 10) << 8) | ((Math.floor(v / 10) % 10) << 4) | (v % 10)

/** The initial count the CR stands for, 1..modulus. */
export const countValue = (c: CounterState): number => {
  const n = c.bcd ? fromBcd(c.cr) : c.cr & 0xffff
  return n === 0 ? modulus(c) : n
}

/** The CE as a read shows it (16 bits, BCD-encoded in BCD mode). */
export const readoutCe = (c: CounterState): number => {
  const v = mod(c.ce, modulus(c))
  return c.bcd ? toBcd(v) : v
}

// ------------------------------------------------------------- events

/** A control word for this counter (not a latch command): "all control logic is reset". */
export const controlWord = (c: CounterState, value: number): void => {
  const m = (value >> CW_MODE_SHIFT) & 7
  c.control = value & CW_PROGRAM_MASK
  c.mode = m > 5 ? m & 3 : m
  c.rw = (value >> CW_RW_SHIFT) & 3
  c.bcd = (value & CW_BCD) !== 0
  c.writeMsb = false
  c.readMsb = false
  c.latched = false
  c.statusLatched = false
  c.nullCount = true
  c.hasCount = false
  c.running = false
  c.loadPending = false
  c.newCount = false
  c.strobed = false
  c.high = true
  c.out = c.mode !== 0
  c.ce = mod(c.ce, modulus(c))
}

/** A byte written to the counter's port: part or all of a new count. */
export const writeCount = (c: CounterState, byte: number): void => {
  byte &= 0xff
  if (c.rw === RW_LSB) c.cr = byte
  else if (c.rw === RW_MSB) c.cr = byte << 8
  else if (!c.writeMsb) {
    c.crLow = byte
    c.writeMsb = true
    if (c.mode === 0) {
      // mode 0: writing the first byte stops counting and drives OUT low at once
      c.running = false
      c.loadPending = false
      c.out = false
    }
    return
  } else {
    c.cr = c.crLow | (byte << 8)
    c.writeMsb = false
  }
  c.nullCount = true
  c.hasCount = true
  switch (c.mode) {
    case 0:
      c.out = false
      c.loadPending = true
      break
    case 4:
      c.loadPending = true
      break
    case 2:
    case 3:
      if (c.running) c.newCount = true
      else if (c.gate) c.loadPending = true
      break
    default: // modes 1 and 5 wait for a trigger
  }
}

/** A byte read from the counter's port: latched status, then latched count, else the live CE. */
export const readCount = (c: CounterState): number => {
  if (c.statusLatched) {
    c.statusLatched = false
    return c.statusValue
  }
  const value = c.latched ? c.latchValue : readoutCe(c)
  if (c.rw === RW_LSB || c.rw === RW_MSB) {
    c.latched = false
    return c.rw === RW_LSB ? value & 0xff : (value >> 8) & 0xff
  }
  if (!c.readMsb) {
    c.readMsb = true
    return value & 0xff
  }
  c.readMsb = false
  c.latched = false
  return (value >> 8) & 0xff
}

/** Counter latch command (or read-back COUNT): ignored while a latched count is unread. */
export const latchCount = (c: CounterState): void => {
  if (c.latched) return
  c.latched = true
  c.latchValue = readoutCe(c)
}

/** Read-back STATUS: ignored while a latched status is unread. */
export const latchStatus = (c: CounterState): void => {
  if (c.statusLatched) return
  c.statusLatched = true
  c.statusValue = (c.out ? STATUS_OUT : 0) | (c.nullCount ? STATUS_NULL_COUNT : 0) | c.control
}

/** The GATE input changed (between pulses). */
export const setGate = (c: CounterState, level: boolean): void => {
  if (level === c.gate) return
  c.gate = level
  const periodic = c.mode === 2 || c.mode === 3
  if (level) {
    // a trigger: modes 1, 2, 3 and 5 (re)load on the next pulse
    if (c.hasCount && c.mode !== 0 && c.mode !== 4) c.loadPending = true
  } else if (periodic) {
    c.out = true
    c.running = false
    c.loadPending = false
  }
}

// --------------------------------------------------------------- time

const loadAllowed = (c: CounterState) => c.gate || (c.mode !== 2 && c.mode !== 3)

/** The CR -> CE transfer on a pulse. */
const load = (c: CounterState): void => {
  const n = countValue(c)
  c.loadPending = false
  c.nullCount = false
  c.newCount = false
  c.running = true
  c.strobed = false
  c.period = n
  c.high = true
  c.ce = c.mode === 3 && n % 2 === 1 ? n - 1 : n
  if (c.mode === 1) c.out = false
  else if (c.mode !== 0) c.out = true
}

/** Pulses left in the current half-cycle of mode 3, counting the one that toggles OUT. */
const halfRemaining = (c: CounterState): number => {
  if (c.period % 2 === 0) return Math.max(1, c.ce >> 1)
  return c.high ? (c.ce <= 0 ? 1 : (c.ce >> 1) + 1) : Math.max(1, c.ce >> 1)
}

const pendingPeriod = (c: CounterState) => (c.newCount ? countValue(c) : c.period)

const takeNewCount = (c: CounterState): void => {
  if (!c.newCount) return
  c.period = countValue(c)
  c.newCount = false
  c.nullCount = false
}

/** Mode 3 from the first pulse of a half-cycle, `d` pulses on. */
const squareFrom = (c: CounterState, d: number): void => {
  const n = c.period
  const start = n % 2 === 1 ? n - 1 : n
  const highLength = (n + 1) >> 1
  const lowLength = n - highLength
  if (!c.high) {
    if (d < lowLength) {
      c.ce = start - 2 * d
      c.out = false
      return
    }
    d -= lowLength
  }
  d %= n
  c.high = d < highLength
  c.ce = start - 2 * (c.high ? d : d - highLength)
  c.out = c.high
}

/** Bring the counter `pulses` CLK pulses forward (GATE constant meanwhile). */
export const advance = (c: CounterState, pulses: number): void => {
  let d = pulses
  if (!(d > 0)) return
  if (c.loadPending && loadAllowed(c)) {
    load(c)
    d -= 1
  }
  if (!c.running || d === 0) return
  const m = modulus(c)
  switch (c.mode) {
    case 0:
    case 1:
      if (c.mode === 0 && !c.gate) return
      if (!c.out && d >= c.ce) c.out = true
      c.ce = mod(c.ce - d, m)
      return
    case 4:
    case 5:
      if (c.mode === 4 && !c.gate) return
      if (!c.strobed) {
        if (!c.out) {
          c.out = true
          c.strobed = true
        } else if (d === c.ce) {
          c.out = false
        } else if (d > c.ce) {
          c.strobed = true
        }
      }
      c.ce = mod(c.ce - d, m)
      return
    case 2: {
      let v = c.ce
      if (d < v) v -= d
      else {
        takeNewCount(c)
        v = c.period - ((d - v) % c.period)
      }
      c.ce = v
      c.out = v !== 1
      return
    }
    default: {
      const r = halfRemaining(c)
      if (d < r) {
        c.ce -= 2 * d
        return
      }
      c.high = !c.high
      takeNewCount(c)
      squareFrom(c, d - r)
    }
  }
}

/** Pulses until OUT next changes, with nothing loaded meanwhile (Infinity: never). */
const nextChange = (c: CounterState): number => {
  if (!c.running) return Number.POSITIVE_INFINITY
  switch (c.mode) {
    case 0:
    case 1:
      if ((c.mode === 0 && !c.gate) || c.out) return Number.POSITIVE_INFINITY
      return c.ce
    case 4:
    case 5:
      if ((c.mode === 4 && !c.gate) || c.strobed) return Number.POSITIVE_INFINITY
      return c.out ? c.ce : 1
    case 2:
      if (c.ce !== 1) return c.ce - 1
      return pendingPeriod(c) === 1 ? Number.POSITIVE_INFINITY : 1
    default:
      if (c.high && pendingPeriod(c) === 1) return Number.POSITIVE_INFINITY
      return halfRemaining(c)
  }
}

/** The scratch copy nextRise runs ahead on (reused: the VMM ticks the PIT at every VM exit). */
const probe: CounterState = newCounter()

/** Pulses from now until OUT's next rising edge (Infinity: none without a new event). */
export const nextRise = (c: CounterState): number => {
  Object.assign(probe, c)
  let t = 0
  if (probe.loadPending && loadAllowed(probe)) {
    const before = probe.out
    advance(probe, 1)
    t = 1
    if (!before && probe.out) return t
  }
  for (let i = 0; i < 2; i++) {
    const n = nextChange(probe)
    if (!(n >= 1) || n === Number.POSITIVE_INFINITY) return Number.POSITIVE_INFINITY
    advance(probe, n)
    t += n
    if (probe.out) return t
  }
  return Number.POSITIVE_INFINITY
}
