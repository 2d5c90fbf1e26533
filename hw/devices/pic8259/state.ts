/**
 * The 8259A's state as a named plain record (snapshots, migration, tests),
 * and the PC/AT pair's. `snapshot()` produces one, `restore()` takes one.
 */
export interface PicState {
  /** Initialization command words as last written (ICW2 holds the vector base). */
  readonly icw1: number
  readonly icw2: number
  readonly icw3: number
  readonly icw4: number
  /** Which ICW the next A0 = 1 write is (2, 3 or 4), or 0 when initialized (A0 = 1 writes OCW1). */
  readonly initStep: number
  /** Interrupt Mask Register (OCW1). */
  readonly imr: number
  /** In-Service Register. */
  readonly isr: number
  /** Edge-sense latches: the IRR bits of edge-triggered inputs. */
  readonly edgeIrr: number
  /** Levels of the IR0-7 input pins (level-triggered IRR bits follow these). */
  readonly lines: number
  /** Edge/Level Control Register (PIIX): 1 = level-triggered input. */
  readonly elcr: number
  /** The level that currently has the lowest priority (7 after ICW1). */
  readonly lowestPriority: number
  /** OCW3: the A0 = 0 read returns ISR (true) or IRR (false). */
  readonly readIsr: boolean
  /** OCW3: a poll command is waiting for its read. */
  readonly poll: boolean
  /** OCW3: special mask mode. */
  readonly specialMask: boolean
  /** OCW2: rotate in automatic EOI mode. */
  readonly rotateOnAeoi: boolean
}

export interface PicPairState {
  readonly master: PicState
  readonly slave: PicState
}
