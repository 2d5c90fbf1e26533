/**
 * The virtual I/O APIC as a named plain record (snapshots, migration,
 * tests). Each redirection entry is kept as its two dwords, as software
 * reads them through IOWIN.
 */
export interface RedirectionEntryState {
  /** Bits 31:0: vector, delivery mode, destination mode, status, polarity, remote IRR, trigger, mask. */
  readonly low: number
  /** Bits 63:32: destination in bits 31:24. */
  readonly high: number
}

export interface IoApicState {
  /** IOAPICID bits 27:24. */
  readonly id: number
  /** IOREGSEL. */
  readonly ioregsel: number
  /** The 24 redirection entries. */
  readonly entries: readonly RedirectionEntryState[]
  /** The level each input pin is driven to (asserted = true). */
  readonly pinLevels: readonly boolean[]
}
