/**
 * The 8254's state as named plain records (snapshots, migration, tests).
 * A counter's record is also its working state: counter.ts operates on it
 * directly, so a snapshot is a copy and a restore is a copy back.
 */
export interface CounterState {
  /** Bits 5-0 of the last control word (RW, M, BCD), as the status byte echoes them. */
  control: number
  /** Effective mode 0-5 (modes 6 and 7 are 2 and 3). */
  mode: number
  /** RW field: 1 LSB only, 2 MSB only, 3 LSB then MSB. */
  rw: number
  bcd: boolean
  /** The count register (CR) as written: 16 bits, BCD digits in BCD mode. */
  cr: number
  /** The first (LSB) byte of a two-byte count write. */
  crLow: number
  /** The next count byte written is the MSB (RW = 3). */
  writeMsb: boolean
  /** The next byte read is the MSB (RW = 3). */
  readMsb: boolean
  /** The output latch (OL) holds a latched count until it is read. */
  latched: boolean
  latchValue: number
  /** A latched status byte waits to be read (it is read before a latched count). */
  statusLatched: boolean
  statusValue: number
  /** Null count: the last count written has not been loaded into the CE yet. */
  nullCount: boolean
  gate: boolean
  out: boolean
  /**
   * The counting element, 0..modulus (a loaded count of 0 is the modulus:
   * 65536 binary, 10000 BCD); reads show it modulo the modulus.
   */
  ce: number
  /** A count has been written since the control word (the counter is armed). */
  hasCount: boolean
  /** The CE holds a loaded count and the mode's sequence is under way. */
  running: boolean
  /** The CR is loaded into the CE at the next CLK pulse. */
  loadPending: boolean
  /** Modes 2/3: a count written while running, loaded at the end of the period / half-cycle. */
  newCount: boolean
  /** Modes 4/5: the strobe for the current count has happened. */
  strobed: boolean
  /** Mode 3: in the high half of the square wave. */
  high: boolean
  /** Modes 2/3: the count (1..modulus) of the sequence under way. */
  period: number
}

export interface PitState {
  /** The CLK pulse the counters are brought up to. */
  readonly tick: number
  readonly counters: readonly [CounterState, CounterState, CounterState]
}
