/**
 * The PC/AT interrupt controller: two 8259As (IBM PC/AT Technical Reference,
 * "System Interrupts"; Intel 8259A datasheet, "Cascade Mode"). The master
 * sits at ports 0x20/0x21 and drives the CPU's INTR pin; the slave sits at
 * 0xA0/0xA1 and its INT output drives master IR2. IRQ0-7 are master IR0-7,
 * IRQ8-15 slave IR0-7. Plus the PIIX ELCR pair at 0x4D0/0x4D1 (Intel 82371
 * PIIX3 datasheet, "ELCR1/ELCR2"), one bit per IRQ, 1 = level-triggered.
 *
 * The bus owns addresses: the machine maps `master` at 0x20, `slave` at 0xA0
 * and `elcr` at 0x4D0, each seeing offsets 0-1.
 *
 * IRQ2 is the cascade: master IR2 is driven only by the slave, so
 * `setIrq(2, ...)` is ignored (on the AT bus the ISA "IRQ2" pin is wired to
 * IRQ9: wire such a device to 9).
 */
import type { AccessSize, BusDevice, IrqLine } from "../../machine/device.ts"
import { Pic8259 } from "./pic8259.ts"
import { CASCADE_IRQ, ELCR_MASTER_MASK, ELCR_SLAVE_MASK } from "./registers.ts"
import type { PicPairState } from "./state.ts"

export interface PicPairOptions {
  /** The CPU's INTR pin. */
  readonly intr?: IrqLine | undefined
}

export class PicPair {
  readonly master: Pic8259
  readonly slave: Pic8259
  /** ELCR1 (offset 0, IRQ0-7) and ELCR2 (offset 1, IRQ8-15). */
  readonly elcr: BusDevice

  constructor(options: PicPairOptions = {}) {
    const slave = new Pic8259({
      name: "pic8259-slave",
      master: false,
      elcrMask: ELCR_SLAVE_MASK,
      intr: { set: (level) => this.master.setIrq(CASCADE_IRQ, level) }
    })
    this.slave = slave
    this.master = new Pic8259({
      name: "pic8259-master",
      master: true,
      elcrMask: ELCR_MASTER_MASK,
      intr: options.intr,
      cascade: (id) => (slave.cascadeId === id ? slave : undefined)
    })
    const master = this.master
    const chip = (offset: number) => (offset === 0 ? master : offset === 1 ? slave : undefined)
    this.elcr = {
      name: "elcr",
      read(offset: number, size: AccessSize): number {
        const n = size === 2 ? 2 : size === 4 ? 4 : 1
        let value = 0
        for (let i = 0; i < n; i++) value |= (chip(offset + i)?.readElcr() ?? 0xff) << (8 * i)
        return value >>> 0
      },
      write(offset: number, size: AccessSize, value: number): void {
        const n = size === 2 ? 2 : size === 4 ? 4 : 1
        const v = Number.isFinite(value) ? value : 0
        for (let i = 0; i < n; i++) chip(offset + i)?.writeElcr((v >>> (8 * i)) & 0xff)
      }
    }
  }

  /** Drive IRQ `line` (0-15). Line 2 is the cascade and is ignored; out-of-range lines are ignored. */
  setIrq(line: number, level: boolean): void {
    if (!Number.isInteger(line) || line < 0 || line > 15 || line === CASCADE_IRQ) return
    if (line < 8) this.master.setIrq(line, level)
    else this.slave.setIrq(line - 8, level)
  }

  /** The master's INT output (the CPU's INTR pin). */
  hasInterrupt(): boolean {
    return this.master.hasInterrupt()
  }

  /** The CPU's INTA cycle: the vector (spurious IRQ7 / IRQ15 included, per the datasheet). */
  acknowledge(): number {
    return this.master.acknowledge()
  }

  /** Power-on state of both chips and the ELCRs. */
  reset(): void {
    this.slave.reset()
    this.master.reset()
  }

  snapshot(): PicPairState {
    return { master: this.master.snapshot(), slave: this.slave.snapshot() }
  }

  restore(state: PicPairState): void {
    this.slave.restore(state.slave)
    this.master.restore(state.master)
  }
}
