/**
 * The PC16550D's state as a named plain record (snapshots, migration, tests).
 * Every field is a register or a latch the datasheet names; nothing is
 * positional. `Uart16550.snapshot()` produces one, `restore()` takes one.
 */
export interface UartState {
  /** Interrupt Enable Register (bits 0-3). */
  readonly ier: number
  /** Line Control Register (bit 7 is DLAB). */
  readonly lcr: number
  /** MODEM Control Register (bits 0-4). */
  readonly mcr: number
  /** Scratch register. */
  readonly scr: number
  /** Divisor latch, low and high byte. */
  readonly dll: number
  readonly dlm: number
  /** The programmed FIFO Control Register bits (0 enable, 3 DMA mode, 6-7 RX trigger). */
  readonly fcr: number
  /** LSR error bits (OE/PE/FE/BI) waiting to be read. */
  readonly lsrErrors: number
  /** MSR: inputs as last seen (bits 4-7) and the delta bits (0-3). */
  readonly msr: number
  /** What the far end drives on CTS/DSR/RI/DCD when not in loopback (MSR bit positions 4-7). */
  readonly lineInputs: number
  /** Received characters, oldest first (at most 16; at most 1 in 16450 mode). */
  readonly rxFifo: readonly number[]
  /** The last character read from RBR (what an empty RBR reads back as). */
  readonly rbr: number
  /** THRE interrupt latch (set when THR empties, cleared by an IIR read that reports it or a THR write). */
  readonly thrInterrupt: boolean
  /** Character-timeout latch (FIFO mode). */
  readonly timeout: boolean
}
