/**
 * Command words and bits of the Intel 8259A Programmable Interrupt Controller
 * (Intel 8259A datasheet, "Programming the 8259A", Figure "Initialization
 * Command Word Format" and Figure "Operation Command Word Format"), and the
 * PC/AT wiring (IBM PC/AT Technical Reference: master at 0x20, slave at 0xA0
 * on master IR2) plus the PIIX ELCR (Intel 82371 PIIX/PIIX3 datasheet,
 * "ELCR1/ELCR2 - Edge/Level Triggered Control Registers", 0x4D0/0x4D1).
 *
 * ```
 * A0  D4 D3  write                     read
 *  0   1  x  ICW1 (starts init)        IRR or ISR (OCW3 RR/RIS), or the poll word
 *  0   0  0  OCW2 (EOI, rotation)
 *  0   0  1  OCW3 (read select, poll, special mask)
 *  1         ICW2/ICW3/ICW4 during init, else OCW1 (IMR)   IMR
 * ```
 */

/** Offsets from the chip's base: A0 = 0 and A0 = 1. */
export const PIC_COMMAND = 0
export const PIC_DATA = 1
export const PIC_PORTS = 2

/** ICW1 (A0 = 0, D4 = 1). */
export const ICW1_IC4 = 0x01 // ICW4 needed
export const ICW1_SNGL = 0x02 // single (no ICW3)
export const ICW1_ADI = 0x04 // call address interval (MCS-80/85 only)
export const ICW1_LTIM = 0x08 // level triggered mode
export const ICW1_SELECT = 0x10

/** ICW2: vector bits T7-T3 in 8086 mode. */
export const ICW2_VECTOR_MASK = 0xf8

/** ICW4. */
export const ICW4_UPM = 0x01 // 8086/8088 mode (0: MCS-80/85)
export const ICW4_AEOI = 0x02 // automatic end of interrupt
export const ICW4_MS = 0x04 // buffered mode: master (1) / slave (0)
export const ICW4_BUF = 0x08 // buffered mode
export const ICW4_SFNM = 0x10 // special fully nested mode (stored, not modelled)
export const ICW4_MASK = 0x1f

/** OCW2 (A0 = 0, D4 = 0, D3 = 0): bits 7-5 = R SL EOI, bits 2-0 = level. */
export const OCW2_ROTATE_AEOI_CLEAR = 0x00
export const OCW2_NONSPECIFIC_EOI = 0x20
export const OCW2_NOP = 0x40
export const OCW2_SPECIFIC_EOI = 0x60
export const OCW2_ROTATE_AEOI_SET = 0x80
export const OCW2_ROTATE_NONSPECIFIC_EOI = 0xa0
export const OCW2_SET_PRIORITY = 0xc0
export const OCW2_ROTATE_SPECIFIC_EOI = 0xe0

/** OCW3 (A0 = 0, D4 = 0, D3 = 1). */
export const OCW3_SELECT = 0x08
export const OCW3_RIS = 0x01 // read ISR (0: IRR)
export const OCW3_RR = 0x02 // read register command
export const OCW3_POLL = 0x04
export const OCW3_SMM = 0x20 // special mask mode
export const OCW3_ESMM = 0x40 // enable the SMM bit

/** Poll word: bit 7 = a request is pending, bits 2-0 = its level. */
export const POLL_INT = 0x80

/** PC/AT wiring. */
export const MASTER_BASE = 0x20
export const SLAVE_BASE = 0xa0
export const CASCADE_IRQ = 2
export const ELCR_BASE = 0x4d0
/** ELCR bits that can be set: IRQ0, 1, 2 (master) and IRQ8, 13 (slave) are edge-only on PIIX. */
export const ELCR_MASTER_MASK = 0xf8
export const ELCR_SLAVE_MASK = 0xde
