/**
 * Driver for the PC/AT pair of Intel 8259A interrupt controllers (master at
 * port 0x20, slave at 0xA0 on master IR2), used by the vmkernel in polled
 * mode.
 *
 * Follows the Intel 8259A datasheet, "Programming the 8259A": the ICW1-ICW4
 * initialisation sequence (edge triggered, cascaded, ICW4 with 8086 mode),
 * OCW1 (the interrupt mask register), OCW2 (specific EOI), and OCW3's "Poll
 * Command": after OCW3 with P = 1, the next read of the chip is the poll
 * word (bit 7 = a request is pending, bits 2-0 = its level) and acts as an
 * interrupt acknowledge (IRR -> ISR) on that chip. This is how a kernel
 * without an INTA cycle of its own takes interrupts from the PIC; the
 * datasheet's cascade rule applies: a poll does not reach the slave, so a
 * master poll that answers IR2 is followed by a slave poll.
 */
import {
  ICW1_IC4,
  ICW1_SELECT,
  ICW4_UPM,
  OCW2_SPECIFIC_EOI,
  OCW3_POLL,
  OCW3_SELECT,
  PIC_COMMAND,
  PIC_DATA,
  POLL_INT
} from "../hw/devices/pic8259/registers.ts"
import type { RegisterBus } from "./platform.ts"

export const PIC_MASTER_BASE = 0x20
export const PIC_SLAVE_BASE = 0xa0
/** The master input the slave's INT is wired to (PC/AT). */
export const CASCADE_IRQ = 2

export interface PicOptions {
  readonly master?: number
  readonly slave?: number
  /** Vector of IRQ0; IRQ8 gets vectorBase + 8 (default 0x20, past the CPU exceptions). */
  readonly vectorBase?: number
}

export class PicDriver {
  readonly master: number
  readonly slave: number
  readonly vectorBase: number
  private readonly ports: RegisterBus
  private masterMask = 0xff
  private slaveMask = 0xff
  /** Polls that found nothing to take, or a slave that answered nothing (spurious). */
  spurious = 0

  constructor(ports: RegisterBus, options: PicOptions = {}) {
    this.ports = ports
    this.master = options.master ?? PIC_MASTER_BASE
    this.slave = options.slave ?? PIC_SLAVE_BASE
    this.vectorBase = (options.vectorBase ?? 0x20) & 0xf8
  }

  /** ICW1-ICW4 on both chips (edge triggered, cascade on IR2, 8086 mode), every line masked. */
  init(): void {
    const { ports, master, slave } = this
    ports.write(master + PIC_COMMAND, 1, ICW1_SELECT | ICW1_IC4)
    ports.write(slave + PIC_COMMAND, 1, ICW1_SELECT | ICW1_IC4)
    ports.write(master + PIC_DATA, 1, this.vectorBase) // ICW2
    ports.write(slave + PIC_DATA, 1, this.vectorBase + 8)
    ports.write(master + PIC_DATA, 1, 1 << CASCADE_IRQ) // ICW3: a slave on IR2
    ports.write(slave + PIC_DATA, 1, CASCADE_IRQ) // ICW3: cascade identity 2
    ports.write(master + PIC_DATA, 1, ICW4_UPM)
    ports.write(slave + PIC_DATA, 1, ICW4_UPM)
    this.masterMask = 0xff
    this.slaveMask = 0xff
    this.writeMasks()
  }

  private writeMasks(): void {
    this.ports.write(this.master + PIC_DATA, 1, this.masterMask)
    this.ports.write(this.slave + PIC_DATA, 1, this.slaveMask)
  }

  /** Let `irq` (0-15) through; a slave line also opens the cascade input. */
  unmask(irq: number): void {
    if (irq >= 8) {
      this.slaveMask &= ~(1 << (irq - 8))
      this.masterMask &= ~(1 << CASCADE_IRQ)
    } else this.masterMask &= ~(1 << irq)
    this.writeMasks()
  }

  mask(irq: number): void {
    if (irq >= 8) this.slaveMask |= 1 << (irq - 8)
    else this.masterMask |= 1 << irq
    this.writeMasks()
  }

  private pollChip(base: number): number | undefined {
    this.ports.write(base + PIC_COMMAND, 1, OCW3_SELECT | OCW3_POLL)
    const word = this.ports.read(base + PIC_COMMAND, 1)
    return (word & POLL_INT) === 0 ? undefined : word & 7
  }

  /**
   * Take the highest-priority pending request into service (poll command);
   * returns its IRQ number, or undefined when nothing is pending. The caller
   * handles it, then calls `eoi(irq)`.
   */
  poll(): number | undefined {
    const level = this.pollChip(this.master)
    if (level === undefined) return undefined
    if (level !== CASCADE_IRQ) return level
    const slaveLevel = this.pollChip(this.slave)
    if (slaveLevel === undefined) {
      // the slave withdrew its request: end the master's in-service cascade level
      this.spurious++
      this.ports.write(this.master + PIC_COMMAND, 1, OCW2_SPECIFIC_EOI | CASCADE_IRQ)
      return undefined
    }
    return 8 + slaveLevel
  }

  /** Specific EOI for `irq` (and for the cascade input on the master when it came from the slave). */
  eoi(irq: number): void {
    if (irq >= 8) {
      this.ports.write(this.slave + PIC_COMMAND, 1, OCW2_SPECIFIC_EOI | (irq - 8))
      this.ports.write(this.master + PIC_COMMAND, 1, OCW2_SPECIFIC_EOI | CASCADE_IRQ)
    } else this.ports.write(this.master + PIC_COMMAND, 1, OCW2_SPECIFIC_EOI | irq)
  }
}
