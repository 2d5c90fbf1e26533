/**
 * The two PC system-control ports next to the keyboard controller (IBM
 * PS/2 Hardware Interface Technical Reference, "System Control Port A";
 * IBM PC/AT Technical Reference, "System Control Port B" (port 0x61);
 * QEMU hw/i386/port92.c and hw/audio/pcspk.c, whose behaviour both follow).
 *
 * Port A (0x92, "fast A20"): holds the byte last written (power-on 0, as
 * QEMU, whose read-back does not reflect the 8042's A20). Every write
 * drives A20 from bit 1 (`onA20(enabled)`; the last writer of 0x92 and the
 * 8042 wins, as in QEMU); a 0 -> 1 transition of bit 0 is a fast CPU reset
 * (`onReset()`). Reset clears bit 0 only (QEMU port92_reset), so the next
 * 1 written resets again.
 *
 * Port B (0x61): bit 0 is the PIT counter 2 GATE (`setGate2(level)`, wired
 * to the 8254's `setGate(2, level)`), bit 1 the speaker data enable
 * (stored: no sound); reads return gate | speaker << 1 | refresh << 4 |
 * OUT2 << 5, OUT2 from `readOut2()` (the 8254's `readOut(2)`); bit 4 (the
 * DRAM refresh toggle) flips on every read, as QEMU does, so a guest that
 * polls it for a delay makes progress deterministically. Bits 2-3 (parity
 * / channel-check enables) are not stored and bits 6-7 (error status) read
 * 0, as QEMU. Power-on: everything 0; the PIT's counter 2 gate is low on a
 * PC (QEMU), so the VMM calls `reset()` after wiring to drive it low.
 *
 * Both are single-byte ports: a wider access acts on the low byte and
 * reads zero-extended. Offsets other than 0 read 0xFF and ignore writes.
 * Never throws.
 */
import type { AccessSize, BusDevice } from "../../../hw/machine/device.ts"
import { PORT_A_A20, PORT_A_RESET, PORT_B_GATE2, PORT_B_OUT2, PORT_B_REFRESH, PORT_B_SPEAKER } from "./registers.ts"
import type { PortAState, PortBState } from "./state.ts"

export type { PortAState, PortBState }

const byteOf = (value: number) => (Number.isFinite(value) ? value & 0xff : 0)

export interface PortAOptions {
  readonly name?: string | undefined
  readonly onA20?: ((enabled: boolean) => void) | undefined
  readonly onReset?: (() => void) | undefined
}

/** System control port A at 0x92: fast A20 gate and fast reset. */
export class PortA implements BusDevice {
  readonly name: string
  private readonly a20Hook: ((enabled: boolean) => void) | undefined
  private readonly resetHook: (() => void) | undefined
  private value = 0

  constructor(options: PortAOptions = {}) {
    this.name = options.name ?? "port92"
    this.a20Hook = options.onA20
    this.resetHook = options.onReset
  }

  read(offset: number, _size: AccessSize): number {
    return offset === 0 ? this.value : 0xff
  }

  write(offset: number, _size: AccessSize, value: number): void {
    if (offset !== 0) return
    const old = this.value
    this.value = byteOf(value)
    this.a20Hook?.((this.value & PORT_A_A20) !== 0)
    if (this.value & PORT_A_RESET && !(old & PORT_A_RESET)) this.resetHook?.()
  }

  /** Bit 1 as last written. */
  get a20(): boolean {
    return (this.value & PORT_A_A20) !== 0
  }

  /** QEMU port92_reset: only the reset bit is cleared; no callbacks. */
  reset(): void {
    this.value &= ~PORT_A_RESET
  }

  snapshot(): PortAState {
    return { value: this.value }
  }

  restore(state: PortAState): void {
    this.value = byteOf(state.value)
  }
}

export interface PortBOptions {
  readonly name?: string | undefined
  /** Drive PIT counter 2's GATE (the machine wires the 8254's `setGate(2, level)`). */
  readonly setGate2?: ((level: boolean) => void) | undefined
  /** The level of PIT counter 2's OUT now (the 8254's `readOut(2)`). */
  readonly readOut2?: (() => boolean) | undefined
}

/** System control port B at 0x61: PIT counter 2 gate, speaker enable, refresh toggle, OUT2. */
export class PortB implements BusDevice {
  readonly name: string
  private readonly gateHook: ((level: boolean) => void) | undefined
  private readonly outHook: (() => boolean) | undefined
  private gate2 = false
  private speaker = false
  private refresh = false

  constructor(options: PortBOptions = {}) {
    this.name = options.name ?? "port61"
    this.gateHook = options.setGate2
    this.outHook = options.readOut2
  }

  read(offset: number, _size: AccessSize): number {
    if (offset !== 0) return 0xff
    this.refresh = !this.refresh
    const out2 = this.outHook?.() === true
    return (
      (this.gate2 ? PORT_B_GATE2 : 0) |
      (this.speaker ? PORT_B_SPEAKER : 0) |
      (this.refresh ? PORT_B_REFRESH : 0) |
      (out2 ? PORT_B_OUT2 : 0)
    )
  }

  write(offset: number, _size: AccessSize, value: number): void {
    if (offset !== 0) return
    const v = byteOf(value)
    this.gate2 = (v & PORT_B_GATE2) !== 0
    this.speaker = (v & PORT_B_SPEAKER) !== 0
    this.gateHook?.(this.gate2)
  }

  /** Speaker data enable (bit 1) as last written. */
  get speakerEnabled(): boolean {
    return this.speaker
  }

  /** Power-on: gate 2 low (driven to the PIT), speaker off, refresh 0. */
  reset(): void {
    this.gate2 = false
    this.speaker = false
    this.refresh = false
    this.gateHook?.(false)
  }

  snapshot(): PortBState {
    return { gate2: this.gate2, speaker: this.speaker, refresh: this.refresh }
  }

  /** Load a snapshot; the gate level is driven to the PIT again. */
  restore(state: PortBState): void {
    this.gate2 = state.gate2 === true
    this.speaker = state.speaker === true
    this.refresh = state.refresh === true
    this.gateHook?.(this.gate2)
  }
}
