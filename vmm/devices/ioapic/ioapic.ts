/**
 * The guest's I/O APIC: an Intel 82093AA with 24 redirection entries at
 * MMIO 0xFEC00000, as QEMU's `ioapic` presents it on the pc machine
 * (82093AA datasheet, 2.0 "Interrupt Delivery", 3.0 "Register
 * Description"; QEMU hw/intc/ioapic.c). registers.ts has the map and bits.
 *
 * Inputs. `setIrq(pin, level)` drives input pin 0-23 (true = asserted; the
 * polarity bit is stored but, as in QEMU, inputs are logical levels: the
 * VMM's lines say "asserted", never a voltage). The pc machine wires ISA
 * IRQ n to pin n except the PIT's IRQ 0, which is pin 2 (`isaIrqToPin`,
 * QEMU's interrupt source override).
 * - Edge-triggered entry: a 0 -> 1 transition of the pin delivers once; an
 *   edge that arrives while the entry is masked is lost (82093AA 3.2.4,
 *   QEMU "we must ignore edge requests if the input pin is masked").
 * - Level-triggered entry: while the pin is asserted, the entry is
 *   unmasked and remote IRR is clear, the I/O APIC delivers and sets
 *   remote IRR; `eoi(vector)` (the local APIC's EOI message, or a write to
 *   the version 0x20 EOI register) clears remote IRR of every level entry
 *   with that vector and redelivers if the pin is still asserted. Unmasking
 *   an asserted level entry delivers at once.
 *
 * Output. Each delivery calls `deliver(message)` synchronously with the
 * decoded entry (vector, delivery mode, destination, destination mode,
 * trigger, pin); the VMM routes it to its vLAPICs (fixed / lowest priority
 * arbitration, NMI, INIT, SMI). For ExtINT the vector field is meaningless:
 * the VMM takes the vector from the 8259 (QEMU `pic_read_irq`). Delivery is
 * instantaneous, so delivery status (bit 12) always reads 0; a delivery
 * made from inside `deliver` is queued, never recursive, and a `deliver`
 * that EOIs a still-asserted level pin synchronously is cut off after 64
 * redeliveries (the rest waits for the next input, EOI or table write;
 * QEMU defers a storm after 10000 by 10 ms).
 *
 * Registers follow QEMU exactly: IOREGSEL holds 8 bits and reads back at
 * any size; IOWIN and EOI accept only 32-bit accesses (others read 0 and
 * are ignored); address bits above 7 are not decoded; ID is 4 bits,
 * arbitration reads the ID, version is read-only 0x00170011 or 0x00170020;
 * an indirect register that does not exist reads 0; every redirection bit
 * but remote IRR and delivery status is writable and reads back (reserved
 * bits included); writing an entry as edge-triggered clears its remote IRR
 * (QEMU `ioapic_fix_edge_remote_irr`, which Linux relies on to EOI
 * version 0x11 I/O APICs).
 *
 * Reset (`reset()`): ID back to its power-on value, IOREGSEL 0, every
 * entry masked (0x00010000, high 0); input pin levels are external and
 * kept. Never throws on any offset/size/value.
 */
import type { DeliveryMode } from "../../../hw/devices/lapic/registers.ts"
import type { AccessSize, BusDevice } from "../../../hw/machine/device.ts"
import {
  ID_MASK,
  ID_SHIFT,
  IOAPIC_DECODE_MASK,
  IOAPIC_EOI,
  IOAPIC_PINS,
  IOAPIC_VERSION_ICH,
  IOREGSEL,
  IOWIN,
  IoApicReg,
  RTE_DELIVERY_MODE_MASK,
  RTE_DELIVERY_MODE_SHIFT,
  RTE_DESTINATION_SHIFT,
  RTE_LEVEL,
  RTE_LOGICAL,
  RTE_MASKED,
  RTE_READ_ONLY,
  RTE_REMOTE_IRR,
  RTE_VECTOR,
  VERSION_ENTRIES_SHIFT
} from "./registers.ts"
import type { IoApicState, RedirectionEntryState } from "./state.ts"

export type { IoApicState, RedirectionEntryState }

/** What an I/O APIC delivery carries to the local APICs (the decoded redirection entry). */
export interface IoApicMessage {
  readonly vector: number
  /** 0 fixed, 1 lowest priority, 2 SMI, 4 NMI, 5 INIT, 7 ExtINT (3 and 6 are reserved but passed on). */
  readonly deliveryMode: DeliveryMode | 3
  /** Entry bits 63:56: an APIC ID (physical) or a logical destination set (logical). */
  readonly destination: number
  readonly destinationMode: "physical" | "logical"
  readonly trigger: "edge" | "level"
  /** The input pin that fired (diagnostics; not part of the APIC bus message). */
  readonly pin: number
}

export interface IoApicOptions {
  readonly name?: string | undefined
  /** Power-on I/O APIC ID (0-15). Default 0, as QEMU's reset. */
  readonly id?: number | undefined
  /** 0x11 (82093AA) or 0x20 (QEMU's default: adds the EOI register at 0x40). */
  readonly version?: 0x11 | 0x20 | undefined
  /** Where deliveries go (can also be set later with `onDeliver`). */
  readonly deliver?: ((message: IoApicMessage) => void) | undefined
}

const MASKED_ENTRY = RTE_MASKED
/** Redeliveries one call may chain when `deliver` itself EOIs a still-asserted pin (an interrupt storm). */
const MAX_SERVICE_PASSES = 64

export class IoApic implements BusDevice {
  readonly name: string
  readonly version: number
  private readonly powerOnId: number
  private id = 0
  private ioregsel = 0
  private readonly low = new Array<number>(IOAPIC_PINS).fill(MASKED_ENTRY)
  private readonly high = new Array<number>(IOAPIC_PINS).fill(0)
  private readonly pins = new Array<boolean>(IOAPIC_PINS).fill(false)
  private deliverHook: ((message: IoApicMessage) => void) | undefined
  private servicing = false
  private serviceAgain = false

  constructor(options: IoApicOptions = {}) {
    const id = options.id ?? 0
    if (!Number.isInteger(id) || id < 0 || id > ID_MASK) throw new RangeError("I/O APIC ID must be 0..15")
    const version = options.version ?? IOAPIC_VERSION_ICH
    if (version !== 0x11 && version !== 0x20) throw new RangeError("I/O APIC version must be 0x11 or 0x20")
    this.name = options.name ?? "ioapic"
    this.version = version
    this.powerOnId = id
    this.id = id
    this.deliverHook = options.deliver
  }

  /** Where deliveries go (the VMM wires it to its vLAPIC router). */
  onDeliver(callback: (message: IoApicMessage) => void): void {
    this.deliverHook = callback
  }

  // ---------------------------------------------------------------- bus

  read(offset: number, size: AccessSize): number {
    if (!Number.isInteger(offset) || offset < 0) return 0
    switch (offset & IOAPIC_DECODE_MASK) {
      case IOREGSEL:
        return this.ioregsel
      case IOWIN:
        return size === 4 ? this.readRegister(this.ioregsel) >>> 0 : 0
      default:
        return 0
    }
  }

  write(offset: number, size: AccessSize, value: number): void {
    if (!Number.isInteger(offset) || offset < 0) return
    const v = Number.isFinite(value) ? value >>> 0 : 0
    switch (offset & IOAPIC_DECODE_MASK) {
      case IOREGSEL:
        this.ioregsel = v & 0xff
        return
      case IOWIN:
        if (size === 4) this.writeRegister(this.ioregsel, v)
        return
      case IOAPIC_EOI:
        if (size === 4 && this.version === IOAPIC_VERSION_ICH) this.eoi(v & RTE_VECTOR)
        return
      default:
    }
  }

  private readRegister(sel: number): number {
    switch (sel) {
      case IoApicReg.Id:
      case IoApicReg.Arbitration:
        return this.id << ID_SHIFT
      case IoApicReg.Version:
        return ((IOAPIC_PINS - 1) << VERSION_ENTRIES_SHIFT) | this.version
      default: {
        const pin = (sel - IoApicReg.RedirectionBase) >> 1
        if (pin < 0 || pin >= IOAPIC_PINS) return 0
        return sel & 1 ? this.high[pin]! : this.low[pin]!
      }
    }
  }

  private writeRegister(sel: number, v: number): void {
    switch (sel) {
      case IoApicReg.Id:
        this.id = (v >>> ID_SHIFT) & ID_MASK
        return
      case IoApicReg.Version:
      case IoApicReg.Arbitration:
        return
      default: {
        const pin = (sel - IoApicReg.RedirectionBase) >> 1
        if (pin < 0 || pin >= IOAPIC_PINS) return
        if (sel & 1) {
          this.high[pin] = v
        } else {
          let low = ((v & ~RTE_READ_ONLY) | (this.low[pin]! & RTE_READ_ONLY)) >>> 0
          if (!(low & RTE_LEVEL)) low = (low & ~RTE_REMOTE_IRR) >>> 0
          this.low[pin] = low
        }
        this.service()
      }
    }
  }

  // ----------------------------------------------------- inputs and EOI

  /** Drive input pin `pin` (0-23); out-of-range pins are ignored. */
  setIrq(pin: number, level: boolean): void {
    if (!Number.isInteger(pin) || pin < 0 || pin >= IOAPIC_PINS) return
    const asserted = level === true
    const was = this.pins[pin]!
    this.pins[pin] = asserted
    const low = this.low[pin]!
    if (low & RTE_LEVEL) {
      if (asserted) this.service()
    } else if (asserted && !was && !(low & RTE_MASKED)) {
      this.send(pin)
    }
  }

  /** The EOI message for `vector`: clear remote IRR of matching level entries; redeliver still-asserted pins. */
  eoi(vector: number): void {
    if (!Number.isInteger(vector)) return
    const v = vector & RTE_VECTOR
    let again = false
    for (let pin = 0; pin < IOAPIC_PINS; pin++) {
      const low = this.low[pin]!
      if ((low & RTE_VECTOR) !== v || !(low & RTE_LEVEL) || !(low & RTE_REMOTE_IRR)) continue
      this.low[pin] = (low & ~RTE_REMOTE_IRR) >>> 0
      if (!(low & RTE_MASKED) && this.pins[pin]) again = true
    }
    if (again) this.service()
  }

  /** Deliver every asserted, unmasked level entry whose remote IRR is clear. */
  private service(): void {
    if (this.servicing) {
      this.serviceAgain = true
      return
    }
    this.servicing = true
    let passes = 0
    try {
      do {
        this.serviceAgain = false
        passes++
        for (let pin = 0; pin < IOAPIC_PINS; pin++) {
          const low = this.low[pin]!
          if (!(low & RTE_LEVEL) || low & RTE_MASKED || low & RTE_REMOTE_IRR || !this.pins[pin]) continue
          this.low[pin] = (low | RTE_REMOTE_IRR) >>> 0
          this.send(pin)
        }
      } while (this.serviceAgain && passes < MAX_SERVICE_PASSES)
    } finally {
      this.servicing = false
    }
  }

  private send(pin: number): void {
    const low = this.low[pin]!
    this.deliverHook?.({
      vector: low & RTE_VECTOR,
      deliveryMode: ((low >>> RTE_DELIVERY_MODE_SHIFT) & RTE_DELIVERY_MODE_MASK) as DeliveryMode | 3,
      destination: this.high[pin]! >>> RTE_DESTINATION_SHIFT,
      destinationMode: low & RTE_LOGICAL ? "logical" : "physical",
      trigger: low & RTE_LEVEL ? "level" : "edge",
      pin
    })
  }

  // --------------------------------------------------------- inspection

  /** Redirection entry `pin` as its two dwords (undefined outside 0-23). */
  entry(pin: number): RedirectionEntryState | undefined {
    if (!Number.isInteger(pin) || pin < 0 || pin >= IOAPIC_PINS) return undefined
    return { low: this.low[pin]!, high: this.high[pin]! }
  }

  get apicId(): number {
    return this.id
  }

  // ------------------------------------------------- reset and snapshot

  /** RESET: ID to its power-on value, IOREGSEL 0, every entry masked; pin levels are external and kept. */
  reset(): void {
    this.id = this.powerOnId
    this.ioregsel = 0
    this.low.fill(MASKED_ENTRY)
    this.high.fill(0)
  }

  snapshot(): IoApicState {
    return {
      id: this.id,
      ioregsel: this.ioregsel,
      entries: this.low.map((low, pin) => ({ low, high: this.high[pin]! })),
      pinLevels: [...this.pins]
    }
  }

  /** Load a snapshot; nothing is delivered (pending level interrupts go out on the next input or EOI). */
  restore(state: IoApicState): void {
    const u32 = (v: unknown) => (typeof v === "number" && Number.isFinite(v) ? v >>> 0 : 0)
    this.id = u32(state.id) & ID_MASK
    this.ioregsel = u32(state.ioregsel) & 0xff
    for (let pin = 0; pin < IOAPIC_PINS; pin++) {
      const e = state.entries[pin]
      this.low[pin] = e === undefined ? MASKED_ENTRY : u32(e.low)
      this.high[pin] = e === undefined ? 0 : u32(e.high)
      this.pins[pin] = state.pinLevels[pin] === true
    }
  }
}
