/**
 * The PC system-control devices as named plain records (snapshots,
 * migration, tests).
 */

/** A byte in the 8042's output queue and the port it came from. */
export interface I8042Byte {
  readonly value: number
  /** From the auxiliary (mouse) port: status bit 5, IRQ 12. */
  readonly aux: boolean
}

export interface I8042State {
  readonly status: number
  /** The controller command byte. */
  readonly mode: number
  /** Output port P2 (bit 0 reset, bit 1 A20). */
  readonly outport: number
  /** The command waiting for its data byte at 0x60 (0: none). */
  readonly pendingCommand: number
  /** The keyboard command waiting for its argument (0: none). */
  readonly keyboardCommand: number
  /** The mouse command waiting for its argument (0: none). */
  readonly auxCommand: number
  /** Scan code set 1-3. */
  readonly scanCodeSet: number
  readonly queue: readonly I8042Byte[]
  /** What 0x60 reads when the queue is empty (the last byte read, as QEMU). */
  readonly lastData: number
}

export interface PortAState {
  /** The last value written to 0x92. */
  readonly value: number
}

export interface PortBState {
  /** Bit 0: PIT counter 2 GATE. */
  readonly gate2: boolean
  /** Bit 1: speaker data enable. */
  readonly speaker: boolean
  /** Bit 4: the refresh toggle, flipped by every read (QEMU). */
  readonly refresh: boolean
}
