/**
 * Register map and bit names of the PC16550D UART (National Semiconductor /
 * Texas Instruments PC16550D datasheet, Table I "Register Summary" and
 * section 8 "Registers"). Offsets are from the port base (COM1: 0x3F8).
 *
 * ```
 * offset  DLAB=0 read   DLAB=0 write   DLAB=1
 *   0     RBR           THR            DLL (divisor latch, low byte)
 *   1     IER           IER            DLM (divisor latch, high byte)
 *   2     IIR           FCR
 *   3     LCR           LCR
 *   4     MCR           MCR
 *   5     LSR           (factory test: ignored)
 *   6     MSR           (ignored)
 *   7     SCR           SCR
 * ```
 */

export const UART_PORTS = 8

export const RBR = 0
export const THR = 0
export const DLL = 0
export const IER = 1
export const DLM = 1
export const IIR = 2
export const FCR = 2
export const LCR = 3
export const MCR = 4
export const LSR = 5
export const MSR = 6
export const SCR = 7

/** IER (8.7 "Interrupt Enable Register"); bits 4-7 are always 0. */
export const IER_ERBFI = 0x01 // received data available (and character timeout in FIFO mode)
export const IER_ETBEI = 0x02 // transmitter holding register empty
export const IER_ELSI = 0x04 // receiver line status
export const IER_EDSSI = 0x08 // modem status
export const IER_MASK = 0x0f

/** IIR (8.6 "Interrupt Identification Register", Table II): bit 0 = 1 means no interrupt pending. */
export const IIR_NONE = 0x01
export const IIR_LINE_STATUS = 0x06 // priority 1 (highest)
export const IIR_RX_DATA = 0x04 // priority 2
export const IIR_TIMEOUT = 0x0c // priority 2 (FIFO mode only)
export const IIR_THRE = 0x02 // priority 3
export const IIR_MODEM_STATUS = 0x00 // priority 4
export const IIR_FIFOS_ENABLED = 0xc0 // bits 6-7 mirror FCR0

/** FCR (8.5 "FIFO Control Register"), write-only. */
export const FCR_ENABLE = 0x01
export const FCR_CLEAR_RX = 0x02
export const FCR_CLEAR_TX = 0x04
export const FCR_DMA_MODE = 0x08
export const FCR_TRIGGER_SHIFT = 6
/** RCVR FIFO trigger level for FCR bits 7-6 = 00, 01, 10, 11. */
export const RX_TRIGGER_LEVELS = [1, 4, 8, 14] as const
export const FIFO_DEPTH = 16

/** LCR (8.1 "Line Control Register"). */
export const LCR_WORD_LENGTH = 0x03 // 5 + value bits
export const LCR_STOP_BITS = 0x04
export const LCR_PARITY_ENABLE = 0x08
export const LCR_EVEN_PARITY = 0x10
export const LCR_STICK_PARITY = 0x20
export const LCR_BREAK = 0x40
export const LCR_DLAB = 0x80

/** MCR (8.8 "MODEM Control Register"); bits 5-7 are always 0. */
export const MCR_DTR = 0x01
export const MCR_RTS = 0x02
export const MCR_OUT1 = 0x04
export const MCR_OUT2 = 0x08
export const MCR_LOOP = 0x10
export const MCR_MASK = 0x1f

/** LSR (8.4 "Line Status Register"). */
export const LSR_DR = 0x01 // data ready
export const LSR_OE = 0x02 // overrun error
export const LSR_PE = 0x04 // parity error
export const LSR_FE = 0x08 // framing error
export const LSR_BI = 0x10 // break interrupt
export const LSR_THRE = 0x20 // transmitter holding register (or TX FIFO) empty
export const LSR_TEMT = 0x40 // transmitter empty (THR and TSR)
export const LSR_FIFO_ERROR = 0x80 // error in RCVR FIFO
/** The error bits that raise a receiver line status interrupt and clear on an LSR read. */
export const LSR_ERRORS = LSR_OE | LSR_PE | LSR_FE | LSR_BI

/** MSR (8.9 "MODEM Status Register"): bits 0-3 are deltas (cleared on read), 4-7 the inputs. */
export const MSR_DCTS = 0x01
export const MSR_DDSR = 0x02
export const MSR_TERI = 0x04 // trailing edge of ring indicator
export const MSR_DDCD = 0x08
export const MSR_CTS = 0x10
export const MSR_DSR = 0x20
export const MSR_RI = 0x40
export const MSR_DCD = 0x80
export const MSR_DELTAS = 0x0f
export const MSR_INPUTS = 0xf0

/** The UART's reference clock on a PC (1.8432 MHz); baud = CLOCK / (16 * divisor). */
export const UART_CLOCK_HZ = 1_843_200
