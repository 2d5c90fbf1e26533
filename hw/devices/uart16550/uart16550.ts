/**
 * The host's serial console: a National Semiconductor / TI PC16550D UART
 * (datasheet "PC16550D Universal Asynchronous Receiver/Transmitter with
 * FIFOs": section 8 "Registers", Table II "Interrupt Control Functions",
 * Table IV "UART Reset Configuration", 8.10 "FIFO Interrupt Mode
 * Operation"), as the 16550A that PC software expects (IIR bits 6-7 = 11
 * with FIFOs on).
 *
 * Time. Transmission and reception are instantaneous in virtual time: a THR
 * write reaches the back-end at once, so THR and the transmit shift register
 * are always empty again when the CPU next looks (LSR.THRE = LSR.TEMT = 1),
 * and `tick` returns Infinity. The divisor latch and LCR are kept (and
 * `baudRate` reports them) but pace nothing. Two consequences, both
 * deliberate:
 * - THRE interrupt: a THR write clears it and the (instant) end of the
 *   transmission sets it again, so the IRQ line shows a low pulse: an
 *   edge-triggered PIC sees a fresh request, as it would after one character
 *   time on real hardware.
 * - Character timeout (FIFO mode, 8.10): "no character in or out of the RCVR
 *   FIFO for four character times" happens as soon as a burst from the
 *   back-end ends. So `receive()` arms the timeout when the FIFO holds data,
 *   and an RBR read that leaves data in the FIFO clears and re-arms it (a low
 *   pulse on the IRQ line, as the four-character timer restarts).
 *
 * Interrupt priorities (Table II): receiver line status > received data
 * available / character timeout > THR empty > modem status. The PC wiring
 * gates the interrupt output with MCR.OUT2; we gate with the OUT2 register
 * bit, also in loopback mode, as the UARTs integrated in PC super-I/O chips
 * do (a discrete 16550 forces its OUT2 pin inactive in loopback, which on an
 * ISA card would cut the IRQ: not modelled).
 *
 * Characters are passed as whole bytes: LCR's word length, parity and stop
 * bits are stored (and `bitsPerCharacter` reports them) but do not truncate
 * or check what the back-end sends and receives (QEMU does the same; it
 * keeps a driver that forgot LCR from garbling the console).
 *
 * Not modelled: parity/framing errors and break (the back-end delivers
 * bytes; LSR.PE/FE/BI and LSR bit 7 stay 0), the DMA-mode RXRDY/TXRDY pins
 * (FCR bit 3 is stored only), the transmitter FIFO contents (always empty).
 *
 * Invariants: never throws on any offset/size/value; accesses wider than a
 * byte are split into byte accesses at consecutive offsets (ISA bus
 * sizing); offsets outside 0-7 read 0xFF and ignore writes.
 */
import type { AccessSize, BusDevice, IrqLine, TimedDevice } from "../../machine/device.ts"
import * as R from "./registers.ts"
import type { UartState } from "./state.ts"

/** Where transmitted characters go (scripts/ wires stdout, a socket, a test buffer). */
export interface UartBackend {
  transmit(byte: number): void
}

export interface Uart16550Options {
  readonly name?: string | undefined
  readonly backend?: UartBackend | undefined
  /** The interrupt output after the PC's OUT2 gate (COM1 = IRQ4 is the machine's wiring). */
  readonly irq?: IrqLine | undefined
  /**
   * What the far end drives on the modem inputs, as MSR bits 4-7 (CTS 0x10,
   * DSR 0x20, RI 0x40, DCD 0x80). Default 0xB0: a console with CTS, DSR and
   * DCD asserted, as QEMU presents its serial back-ends.
   */
  readonly modemInputs?: number | undefined
}

const DEFAULT_MODEM_INPUTS = R.MSR_CTS | R.MSR_DSR | R.MSR_DCD

export class Uart16550 implements BusDevice, TimedDevice {
  readonly name: string
  private readonly backend: UartBackend | undefined
  private readonly irq: IrqLine | undefined

  private ier = 0
  private lcr = 0
  private mcr = 0
  private scr = 0
  private dll = 0
  private dlm = 0
  private fcr = 0
  private lsrErrors = 0
  private msrInputs: number
  private msrDeltas = 0
  private lineInputs: number
  private rx: number[] = []
  private rbr = 0
  private thrInterrupt = false
  private timeout = false
  private irqLevel = false

  constructor(options: Uart16550Options = {}) {
    this.name = options.name ?? "uart16550"
    this.backend = options.backend
    this.irq = options.irq
    this.lineInputs = (options.modemInputs ?? DEFAULT_MODEM_INPUTS) & R.MSR_INPUTS
    this.msrInputs = this.lineInputs
  }

  // ---------------------------------------------------------------- bus

  read(offset: number, size: AccessSize): number {
    const n = size === 2 ? 2 : size === 4 ? 4 : 1
    let value = 0
    for (let i = 0; i < n; i++) value |= this.readRegister(offset + i) << (8 * i)
    return value >>> 0
  }

  write(offset: number, size: AccessSize, value: number): void {
    const n = size === 2 ? 2 : size === 4 ? 4 : 1
    const v = Number.isFinite(value) ? value : 0
    for (let i = 0; i < n; i++) this.writeRegister(offset + i, (v >>> (8 * i)) & 0xff)
  }

  /** Transmission is instantaneous: nothing ever becomes due. */
  tick(_now: number): number {
    return Number.POSITIVE_INFINITY
  }

  private readRegister(offset: number): number {
    if (!Number.isInteger(offset) || offset < 0 || offset >= R.UART_PORTS) return 0xff
    const dlab = (this.lcr & R.LCR_DLAB) !== 0
    switch (offset) {
      case 0:
        return dlab ? this.dll : this.readRbr()
      case 1:
        return dlab ? this.dlm : this.ier
      case 2:
        return this.readIir()
      case 3:
        return this.lcr
      case 4:
        return this.mcr
      case 5:
        return this.readLsr()
      case 6:
        return this.readMsr()
      default:
        return this.scr
    }
  }

  private writeRegister(offset: number, value: number): void {
    if (!Number.isInteger(offset) || offset < 0 || offset >= R.UART_PORTS) return
    const dlab = (this.lcr & R.LCR_DLAB) !== 0
    switch (offset) {
      case 0:
        if (dlab) this.dll = value
        else this.writeThr(value)
        return
      case 1:
        if (dlab) this.dlm = value
        else this.writeIer(value)
        return
      case 2:
        this.writeFcr(value)
        return
      case 3:
        this.lcr = value
        return
      case 4:
        this.mcr = value & R.MCR_MASK
        this.updateModemInputs()
        this.updateIrq()
        return
      case 7:
        this.scr = value
        return
      default:
        // LSR writes are for factory test and MSR is read-only: ignored.
        return
    }
  }

  // ---------------------------------------------------------- registers

  /** 8.4: RBR. Reading clears DR when the FIFO (or the 16450 holding register) empties. */
  private readRbr(): number {
    const byte = this.rx.shift()
    if (byte === undefined) return this.rbr
    this.rbr = byte
    if (this.timeout) {
      // the four-character timer restarts: the indication drops, and comes back if data remains
      this.timeout = false
      this.updateIrq()
      this.timeout = this.fifoEnabled() && this.rx.length > 0
    }
    this.updateIrq()
    return byte
  }

  /** 8.6: IIR. Reading it clears a THRE interrupt when THRE is the source it reports. */
  private readIir(): number {
    const id = this.pendingInterrupt()
    if (id === R.IIR_THRE) {
      this.thrInterrupt = false
      this.updateIrq()
    }
    return id | (this.fifoEnabled() ? R.IIR_FIFOS_ENABLED : 0)
  }

  /** 8.4: LSR. Reading clears the error bits (and so a receiver line status interrupt). */
  private readLsr(): number {
    const value = (this.rx.length > 0 ? R.LSR_DR : 0) | this.lsrErrors | R.LSR_THRE | R.LSR_TEMT
    if (this.lsrErrors !== 0) {
      this.lsrErrors = 0
      this.updateIrq()
    }
    return value
  }

  /** 8.9: MSR. Reading clears the delta bits (and so a modem status interrupt). */
  private readMsr(): number {
    const value = this.msrInputs | this.msrDeltas
    if (this.msrDeltas !== 0) {
      this.msrDeltas = 0
      this.updateIrq()
    }
    return value
  }

  private writeThr(value: number): void {
    this.thrInterrupt = false
    this.updateIrq()
    const byte = value & 0xff
    if (this.mcr & R.MCR_LOOP) {
      // 8.8 loopback: the transmitter output is looped to the receiver input
      this.receiveByte(byte)
      this.timeout = this.fifoEnabled() && this.rx.length > 0
    } else {
      this.backend?.transmit(byte)
    }
    // the (instant) transmission has left THR empty again
    this.thrInterrupt = true
    this.updateIrq()
  }

  private writeIer(value: number): void {
    const old = this.ier
    this.ier = value & R.IER_MASK
    // enabling ETBEI while THR is empty (always, here) raises the THRE interrupt
    if (this.ier & R.IER_ETBEI && !(old & R.IER_ETBEI)) this.thrInterrupt = true
    this.updateIrq()
  }

  /** 8.5: FCR. Changing FCR0 clears both FIFOs; the other bits are programmed only with FCR0 = 1. */
  private writeFcr(value: number): void {
    const enable = (value & R.FCR_ENABLE) !== 0
    if (enable !== this.fifoEnabled()) this.clearRx()
    if (enable) {
      if (value & R.FCR_CLEAR_RX) this.clearRx()
      // FCR_CLEAR_TX: the transmitter FIFO is always empty
      this.fcr = value & (R.FCR_ENABLE | R.FCR_DMA_MODE | (3 << R.FCR_TRIGGER_SHIFT))
    } else {
      this.fcr &= ~R.FCR_ENABLE
    }
    this.updateIrq()
  }

  // ------------------------------------------------------------ receive

  /**
   * Characters arriving on SIN from the back-end (the low 8 bits of each).
   * A full receiver is an overrun (LSR.OE): in FIFO
   * mode the new character is lost, in 16450 mode it overwrites RBR. In
   * loopback mode SIN is disconnected and the characters are dropped.
   */
  receive(bytes: ArrayLike<number>): void {
    if (this.mcr & R.MCR_LOOP) return
    for (let i = 0; i < bytes.length; i++) this.receiveByte((bytes[i] ?? 0) & 0xff)
    if (this.fifoEnabled() && this.rx.length > 0) this.timeout = true
    this.updateIrq()
  }

  /** How many characters `receive` can take now without an overrun (0 in loopback mode). */
  receiveSpace(): number {
    if (this.mcr & R.MCR_LOOP) return 0
    return this.rxCapacity() - this.rx.length
  }

  private receiveByte(byte: number): void {
    if (this.rx.length < this.rxCapacity()) {
      this.rx.push(byte)
      return
    }
    this.lsrErrors |= R.LSR_OE
    if (!this.fifoEnabled()) this.rx[0] = byte
  }

  private clearRx(): void {
    this.rx = []
    this.timeout = false
  }

  // ------------------------------------------------------- modem inputs

  /** The far end changed CTS/DSR/RI/DCD (MSR bit positions 4-7); deltas are latched. */
  setModemInputs(bits: number): void {
    this.lineInputs = (Number.isFinite(bits) ? bits : 0) & R.MSR_INPUTS
    this.updateModemInputs()
    this.updateIrq()
  }

  private currentInputs(): number {
    if (!(this.mcr & R.MCR_LOOP)) return this.lineInputs
    // 8.8 loopback: DTR->DSR, RTS->CTS, OUT1->RI, OUT2->DCD
    const m = this.mcr
    return (
      (m & R.MCR_DTR ? R.MSR_DSR : 0) |
      (m & R.MCR_RTS ? R.MSR_CTS : 0) |
      (m & R.MCR_OUT1 ? R.MSR_RI : 0) |
      (m & R.MCR_OUT2 ? R.MSR_DCD : 0)
    )
  }

  private updateModemInputs(): void {
    const now = this.currentInputs()
    const changed = now ^ this.msrInputs
    if (changed & R.MSR_CTS) this.msrDeltas |= R.MSR_DCTS
    if (changed & R.MSR_DSR) this.msrDeltas |= R.MSR_DDSR
    if (changed & R.MSR_DCD) this.msrDeltas |= R.MSR_DDCD
    // TERI: RI went from asserted to deasserted (the trailing edge of a ring)
    if (this.msrInputs & R.MSR_RI && !(now & R.MSR_RI)) this.msrDeltas |= R.MSR_TERI
    this.msrInputs = now
  }

  // --------------------------------------------------------- interrupts

  /** Table II: the highest-priority pending, enabled interrupt (an IIR bits 0-3 value). */
  private pendingInterrupt(): number {
    const ier = this.ier
    if (ier & R.IER_ELSI && this.lsrErrors !== 0) return R.IIR_LINE_STATUS
    if (ier & R.IER_ERBFI) {
      const fifo = this.fifoEnabled()
      if (fifo ? this.rx.length >= this.rxTrigger() : this.rx.length > 0) return R.IIR_RX_DATA
      if (fifo && this.timeout && this.rx.length > 0) return R.IIR_TIMEOUT
    }
    if (ier & R.IER_ETBEI && this.thrInterrupt) return R.IIR_THRE
    if (ier & R.IER_EDSSI && this.msrDeltas !== 0) return R.IIR_MODEM_STATUS
    return R.IIR_NONE
  }

  private updateIrq(): void {
    const level = this.pendingInterrupt() !== R.IIR_NONE && (this.mcr & R.MCR_OUT2) !== 0
    if (level === this.irqLevel) return
    this.irqLevel = level
    this.irq?.set(level)
  }

  /** Level of the (OUT2-gated) interrupt output. */
  get interruptAsserted(): boolean {
    return this.irqLevel
  }

  // ------------------------------------------------------------ helpers

  private fifoEnabled(): boolean {
    return (this.fcr & R.FCR_ENABLE) !== 0
  }

  private rxCapacity(): number {
    return this.fifoEnabled() ? R.FIFO_DEPTH : 1
  }

  private rxTrigger(): number {
    return R.RX_TRIGGER_LEVELS[(this.fcr >> R.FCR_TRIGGER_SHIFT) & 3] ?? 1
  }

  /** The divisor latch (DLM:DLL); 0 behaves as 65536 on real parts. */
  get divisor(): number {
    return (this.dlm << 8) | this.dll
  }

  /** The programmed line speed in bits per second (informational: transmission is instantaneous). */
  baudRate(): number {
    const divisor = this.divisor === 0 ? 0x10000 : this.divisor
    return R.UART_CLOCK_HZ / (16 * divisor)
  }

  /** Bits per character on the wire: start + data + parity + stop (informational). */
  bitsPerCharacter(): number {
    const data = 5 + (this.lcr & R.LCR_WORD_LENGTH)
    const parity = this.lcr & R.LCR_PARITY_ENABLE ? 1 : 0
    const stop = this.lcr & R.LCR_STOP_BITS ? 2 : 1
    return 1 + data + parity + stop
  }

  // ------------------------------------------------- reset and snapshot

  /**
   * Master reset (Table IV): IER, FCR, LCR, MCR and the FIFOs cleared, IIR
   * = 0x01, LSR = 0x60, MSR deltas cleared (bits 4-7 follow the inputs).
   * The divisor latch and the scratch register are not in Table IV and keep
   * their values.
   */
  reset(): void {
    this.ier = 0
    this.lcr = 0
    this.mcr = 0
    this.fcr = 0
    this.lsrErrors = 0
    this.msrDeltas = 0
    this.msrInputs = this.lineInputs
    this.clearRx()
    this.thrInterrupt = false
    this.updateIrq()
  }

  snapshot(): UartState {
    return {
      ier: this.ier,
      lcr: this.lcr,
      mcr: this.mcr,
      scr: this.scr,
      dll: this.dll,
      dlm: this.dlm,
      fcr: this.fcr,
      lsrErrors: this.lsrErrors,
      msr: this.msrInputs | this.msrDeltas,
      lineInputs: this.lineInputs,
      rxFifo: [...this.rx],
      rbr: this.rbr,
      thrInterrupt: this.thrInterrupt,
      timeout: this.timeout
    }
  }

  /** Load a snapshot; fields are masked to their register widths, and the IRQ line is driven to match. */
  restore(state: UartState): void {
    this.ier = state.ier & R.IER_MASK
    this.lcr = state.lcr & 0xff
    this.mcr = state.mcr & R.MCR_MASK
    this.scr = state.scr & 0xff
    this.dll = state.dll & 0xff
    this.dlm = state.dlm & 0xff
    this.fcr = state.fcr & (R.FCR_ENABLE | R.FCR_DMA_MODE | (3 << R.FCR_TRIGGER_SHIFT))
    this.lsrErrors = state.lsrErrors & R.LSR_ERRORS
    this.msrInputs = state.msr & R.MSR_INPUTS
    this.msrDeltas = state.msr & R.MSR_DELTAS
    this.lineInputs = state.lineInputs & R.MSR_INPUTS
    this.rx = state.rxFifo.slice(0, this.rxCapacity()).map((b) => b & 0xff)
    this.rbr = state.rbr & 0xff
    this.thrInterrupt = state.thrInterrupt
    this.timeout = state.timeout
    this.updateIrq()
  }
}
