/**
 * One Intel 8259A Programmable Interrupt Controller (Intel 8259A datasheet:
 * "Interrupt Sequence", "Programming the 8259A" (ICW1-ICW4, OCW1-OCW3),
 * "Fully Nested Mode", "End of Interrupt", "Automatic Rotation", "Specific
 * Rotation", "Special Mask Mode", "Poll Command", "Reading the 8259A
 * Status", "Edge and Level Triggered Modes", "Cascade Mode"). `PicPair`
 * (pic-pair.ts) wires two of them as in the PC/AT.
 *
 * Model:
 * - IRR: an edge-triggered input sets its edge-sense latch on a 0 -> 1
 *   transition; a level-triggered input (ICW1.LTIM, or its ELCR bit) reads
 *   its pin directly. The latch holds until INTA even if the line falls first
 *   (as QEMU, Bochs and the chipset-integrated 8259s behave; the discrete
 *   8259A asks IR to stay high until the first INTA and gives IR7 otherwise).
 *   This is what lets a timer whose OUT was sampled rarely still be seen.
 * - Priority resolution: the highest unmasked IRR bit is requested if its
 *   priority is above every ISR bit (in special mask mode, ISR bits that are
 *   masked are ignored). Priorities rotate: `lowestPriority` is 7 after ICW1.
 * - INTA (`acknowledge`): the winning IRR bit moves to ISR (not in auto-EOI
 *   mode) and the vector is ICW2[7:3] | level. If nothing wins at INTA time,
 *   the chip answers IR7 without setting ISR (a spurious interrupt). A master
 *   whose winning input has a slave (ICW3) sets its own ISR bit and lets the
 *   slave with that cascade address supply the vector; the slave may answer
 *   its own spurious IR7 (the classic spurious IRQ15, with master ISR2 set).
 * - OCW2: non-specific EOI, specific EOI, both rotating variants, set
 *   priority, and rotate-in-auto-EOI set/clear are all implemented.
 * - OCW3: IRR/ISR read select, poll (the next read at either offset is the
 *   poll word and acts as an INTA on this chip only; a poll does not reach a
 *   cascaded slave), special mask mode.
 * - ICW1 resets: edge-sense latches, IMR, ISR (the datasheet lists IMR but
 *   not ISR; clearing ISR is what QEMU and Bochs do), priorities, special
 *   mask mode, read select (IRR), and ICW4 functions when IC4 = 0.
 *
 * Not modelled (documented choices): special fully nested mode (ICW4.SFNM
 * is stored, the nesting stays fully nested); the MCS-80/85 CALL sequence
 * (INTA always returns the 8086-style vector, whatever ICW4.uPM says);
 * buffered-mode pins beyond the master/slave choice of ICW4.M/S.
 *
 * Invariants: never throws; wide accesses are split into byte accesses at
 * consecutive offsets; offsets other than 0/1 read 0xFF and ignore writes.
 */
import type { AccessSize, BusDevice, IrqLine } from "../../machine/device.ts"
import {
  ICW1_IC4,
  ICW1_LTIM,
  ICW1_SELECT,
  ICW1_SNGL,
  ICW2_VECTOR_MASK,
  ICW4_AEOI,
  ICW4_BUF,
  ICW4_MASK,
  ICW4_MS,
  OCW2_NONSPECIFIC_EOI,
  OCW2_ROTATE_AEOI_CLEAR,
  OCW2_ROTATE_AEOI_SET,
  OCW2_ROTATE_NONSPECIFIC_EOI,
  OCW2_ROTATE_SPECIFIC_EOI,
  OCW2_SET_PRIORITY,
  OCW2_SPECIFIC_EOI,
  OCW3_ESMM,
  OCW3_POLL,
  OCW3_RIS,
  OCW3_RR,
  OCW3_SELECT,
  OCW3_SMM,
  PIC_PORTS,
  POLL_INT
} from "./registers.ts"
import type { PicState } from "./state.ts"

export interface Pic8259Options {
  readonly name?: string | undefined
  /** The INT output (to the CPU's INTR pin, or to a master's IR input). */
  readonly intr?: IrqLine | undefined
  /** The SP/EN pin strapping used in non-buffered mode: master (true, default) or slave. */
  readonly master?: boolean | undefined
  /** For a master: the chip that answers cascade address `id` during INTA, if any. */
  readonly cascade?: ((id: number) => Pic8259 | undefined) | undefined
  /** ELCR bits that may be set (PIIX reserves some inputs as edge-only); default 0xFF. */
  readonly elcrMask?: number | undefined
}

const lowBit = (bits: number, level: number) => (bits >> level) & 1

export class Pic8259 implements BusDevice {
  readonly name: string
  private readonly intr: IrqLine | undefined
  private readonly pinMaster: boolean
  private readonly cascade: ((id: number) => Pic8259 | undefined) | undefined
  private readonly elcrMask: number

  private icw1 = 0
  private icw2 = 0
  private icw3 = 0
  private icw4 = 0
  private initStep = 0
  private imr = 0
  private isr = 0
  private edgeIrr = 0
  private lines = 0
  private elcr = 0
  /** The level with the highest priority: (lowest priority + 1) & 7. */
  private priorityAdd = 0
  private readIsr = false
  private poll = false
  private specialMask = false
  private rotateOnAeoi = false
  private intrLevel = false

  constructor(options: Pic8259Options = {}) {
    this.name = options.name ?? "pic8259"
    this.intr = options.intr
    this.pinMaster = options.master ?? true
    this.cascade = options.cascade
    this.elcrMask = (options.elcrMask ?? 0xff) & 0xff
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

  private readRegister(offset: number): number {
    if (!Number.isInteger(offset) || offset < 0 || offset >= PIC_PORTS) return 0xff
    if (this.poll) {
      this.poll = false
      return this.pollRead()
    }
    if (offset === 1) return this.imr
    return this.readIsr ? this.isr : this.irr()
  }

  private writeRegister(offset: number, value: number): void {
    if (!Number.isInteger(offset) || offset < 0 || offset >= PIC_PORTS) return
    if (offset === 0) {
      if (value & ICW1_SELECT) this.writeIcw1(value)
      else if (value & OCW3_SELECT) this.writeOcw3(value)
      else this.writeOcw2(value)
    } else {
      switch (this.initStep) {
        case 2:
          this.icw2 = value
          this.initStep = this.icw1 & ICW1_SNGL ? this.afterIcw3() : 3
          break
        case 3:
          this.icw3 = value
          this.initStep = this.afterIcw3()
          break
        case 4:
          this.icw4 = value & ICW4_MASK
          this.initStep = 0
          break
        default:
          this.imr = value // OCW1
      }
    }
    this.update()
  }

  private afterIcw3(): number {
    return this.icw1 & ICW1_IC4 ? 4 : 0
  }

  // ------------------------------------------------------ command words

  private writeIcw1(value: number): void {
    this.icw1 = value
    this.initStep = 2
    this.edgeIrr = 0
    this.imr = 0
    this.isr = 0
    this.priorityAdd = 0
    this.specialMask = false
    this.readIsr = false
    this.poll = false
    this.rotateOnAeoi = false
    if (!(value & ICW1_IC4)) this.icw4 = 0
  }

  private writeOcw2(value: number): void {
    const level = value & 7
    switch (value & 0xe0) {
      case OCW2_ROTATE_AEOI_CLEAR:
        this.rotateOnAeoi = false
        break
      case OCW2_ROTATE_AEOI_SET:
        this.rotateOnAeoi = true
        break
      case OCW2_NONSPECIFIC_EOI:
        this.nonSpecificEoi(false)
        break
      case OCW2_ROTATE_NONSPECIFIC_EOI:
        this.nonSpecificEoi(true)
        break
      case OCW2_SPECIFIC_EOI:
        this.isr &= ~(1 << level)
        break
      case OCW2_ROTATE_SPECIFIC_EOI:
        this.isr &= ~(1 << level)
        this.priorityAdd = (level + 1) & 7
        break
      case OCW2_SET_PRIORITY: // `level` becomes the lowest priority
        this.priorityAdd = (level + 1) & 7
        break
      default: // OCW2_NOP
    }
  }

  private nonSpecificEoi(rotate: boolean): void {
    const level = this.highest(this.isr)
    if (level < 0) return
    this.isr &= ~(1 << level)
    if (rotate) this.priorityAdd = (level + 1) & 7
  }

  private writeOcw3(value: number): void {
    if (value & OCW3_POLL) this.poll = true
    if (value & OCW3_RR) this.readIsr = (value & OCW3_RIS) !== 0
    if (value & OCW3_ESMM) this.specialMask = (value & OCW3_SMM) !== 0
  }

  // --------------------------------------------------------- requests

  /** Drive input IR`line` (0-7). Edge-triggered inputs latch a request on 0 -> 1. */
  setIrq(line: number, level: boolean): void {
    if (!Number.isInteger(line) || line < 0 || line > 7) return
    const bit = 1 << line
    if (level) {
      if (!(this.lines & bit) && !(this.levelMask() & bit)) this.edgeIrr |= bit
      this.lines |= bit
    } else {
      this.lines &= ~bit
    }
    this.update()
  }

  /** The IRR as the datasheet defines it: edge latches for edge inputs, pin levels for level inputs. */
  private irr(): number {
    const level = this.levelMask()
    return ((this.edgeIrr & ~level) | (this.lines & level)) & 0xff
  }

  private levelMask(): number {
    return (this.icw1 & ICW1_LTIM ? 0xff : 0) | this.elcr
  }

  /** Among `bits`, the level with the highest current priority, or -1. */
  private highest(bits: number): number {
    for (let i = 0; i < 8; i++) {
      const level = (i + this.priorityAdd) & 7
      if (lowBit(bits, level)) return level
    }
    return -1
  }

  /** Priority resolution: the level INT is asserted for, or -1. */
  private resolve(): number {
    const request = this.irr() & ~this.imr
    if (request === 0) return -1
    const level = this.highest(request)
    const inService = this.highest(this.specialMask ? this.isr & ~this.imr : this.isr)
    if (inService >= 0 && ((level - this.priorityAdd) & 7) >= ((inService - this.priorityAdd) & 7)) return -1
    return level
  }

  private update(): void {
    const level = this.resolve() >= 0
    if (level === this.intrLevel) return
    this.intrLevel = level
    this.intr?.set(level)
  }

  /** The INT output: a request is waiting for the CPU. */
  hasInterrupt(): boolean {
    return this.intrLevel
  }

  /** Take the winning request into service (the IRR -> ISR move of an INTA or a poll). */
  private take(level: number): void {
    this.edgeIrr &= ~(1 << level)
    if (this.icw4 & ICW4_AEOI) {
      if (this.rotateOnAeoi) this.priorityAdd = (level + 1) & 7
    } else {
      this.isr |= 1 << level
    }
  }

  /**
   * The INTA cycle: the vector of the winning request, which moves from IRR
   * to ISR. With nothing to give, IR7's vector and no ISR change (spurious).
   * A cascaded request is answered by the slave with that cascade address
   * (0xFF, a floating bus, if none answers).
   */
  acknowledge(): number {
    const level = this.resolve()
    if (level < 0) return (this.icw2 & ICW2_VECTOR_MASK) | 7
    this.take(level)
    let vector: number
    if (this.hasSlaveOn(level)) {
      const slave = this.cascade?.(level)
      vector = slave === undefined ? 0xff : slave.acknowledge()
    } else {
      vector = (this.icw2 & ICW2_VECTOR_MASK) | level
    }
    this.update()
    return vector
  }

  private pollRead(): number {
    const level = this.resolve()
    if (level < 0) return 0
    this.take(level)
    this.update()
    return POLL_INT | level
  }

  private isMaster(): boolean {
    return this.icw4 & ICW4_BUF ? (this.icw4 & ICW4_MS) !== 0 : this.pinMaster
  }

  private hasSlaveOn(level: number): boolean {
    return !(this.icw1 & ICW1_SNGL) && this.isMaster() && lowBit(this.icw3, level) === 1
  }

  /** The cascade address this chip answers as a slave (ICW3 bits 2-0). */
  get cascadeId(): number {
    return this.icw3 & 7
  }

  /** The programmed vector base (ICW2 bits 7-3). */
  get vectorBase(): number {
    return this.icw2 & ICW2_VECTOR_MASK
  }

  // ---------------------------------------------------------------- ELCR

  /** Edge/Level Control (PIIX): 1 = level-triggered. Reserved bits stay 0. */
  readElcr(): number {
    return this.elcr
  }

  writeElcr(value: number): void {
    const next = (Number.isFinite(value) ? value : 0) & this.elcrMask
    this.edgeIrr &= ~(next & ~this.elcr) // inputs turning level-triggered drop their edge latch
    this.elcr = next
    this.update()
  }

  // ------------------------------------------------- reset and snapshot

  /**
   * Power-on state (the 8259A defines none): as just after an ICW1 of 0 and
   * with no ICW pending, so vector base 0, edge-triggered, nothing masked.
   * The input pin levels are external and stay as they are; ELCR is cleared.
   */
  reset(): void {
    this.writeIcw1(0)
    this.icw1 = 0
    this.icw2 = 0
    this.icw3 = 0
    this.icw4 = 0
    this.initStep = 0
    this.elcr = 0
    this.update()
  }

  snapshot(): PicState {
    return {
      icw1: this.icw1,
      icw2: this.icw2,
      icw3: this.icw3,
      icw4: this.icw4,
      initStep: this.initStep,
      imr: this.imr,
      isr: this.isr,
      edgeIrr: this.edgeIrr,
      lines: this.lines,
      elcr: this.elcr,
      lowestPriority: (this.priorityAdd + 7) & 7,
      readIsr: this.readIsr,
      poll: this.poll,
      specialMask: this.specialMask,
      rotateOnAeoi: this.rotateOnAeoi
    }
  }

  /** Load a snapshot (fields masked to their widths) and drive INT to match. */
  restore(state: PicState): void {
    this.icw1 = state.icw1 & 0xff
    this.icw2 = state.icw2 & 0xff
    this.icw3 = state.icw3 & 0xff
    this.icw4 = state.icw4 & ICW4_MASK
    this.initStep = state.initStep === 2 || state.initStep === 3 || state.initStep === 4 ? state.initStep : 0
    this.imr = state.imr & 0xff
    this.isr = state.isr & 0xff
    this.edgeIrr = state.edgeIrr & 0xff
    this.lines = state.lines & 0xff
    this.elcr = state.elcr & this.elcrMask
    this.priorityAdd = (state.lowestPriority + 1) & 7
    this.readIsr = state.readIsr
    this.poll = state.poll
    this.specialMask = state.specialMask
    this.rotateOnAeoi = state.rotateOnAeoi
    this.update()
  }
}
