/**
 * The fvnic DMA Ethernet controller (register map, descriptors, filtering
 * and timing: the datasheet in registers.ts).
 *
 * Invariants:
 * - RAM is touched only through DmaMemory: the rings (validated when their
 *   direction is enabled: power-of-two size, aligned, inside RAM) and the
 *   buffers descriptors name (range-checked by DmaMemory before any copy);
 * - garbage never throws: bad register writes are ignored, bad descriptors
 *   complete with ERROR, bad rings or indices halt the controller (FAULT);
 * - an enabled ring is always a valid ring, TAIL - HEAD <= SIZE.
 */
import type { AccessSize, BusDevice, DmaMemory, IrqLine } from "../../machine/device.ts"
import type { NicBackend } from "./backends.ts"
import {
  FVNIC_MAGIC,
  FVNIC_MMIO_SIZE,
  FVNIC_VERSION,
  MAX_FRAME,
  MIN_FRAME,
  NIC_CONTROL_ALL,
  NIC_DESCRIPTOR_SIZE,
  NIC_INT_ALL,
  NIC_MAX_RING,
  NIC_RING_ALIGN,
  NicControl,
  NicDesc,
  NicError,
  NicFault,
  NicFlag,
  NicInt,
  NicReg,
  NicStatus
} from "./registers.ts"
import type { FvnicState, NicRingState } from "./state.ts"

export type { FvnicState, NicRingState }

export interface FvnicOptions {
  readonly backend: NicBackend
  readonly dma: DmaMemory
  readonly irq: IrqLine
  /** The factory MAC address (6 bytes), restored by RESET. */
  readonly mac: ArrayLike<number>
  /** Cable state at power-on (default: up). */
  readonly linkUp?: boolean
  readonly name?: string
}

const allOnes = (size: AccessSize) => (size === 4 ? 0xffffffff : size === 2 ? 0xffff : 0xff)
const u32 = (v: unknown): number => (typeof v === "number" && Number.isFinite(v) ? v >>> 0 : 0)
const isPowerOfTwo = (n: number) => n > 0 && (n & (n - 1)) === 0
const u16le = (v: number) => Uint8Array.of(v & 0xff, (v >>> 8) & 0xff)
/** A ring as the controller works on it (mutable); NicRingState is its snapshot. */
interface Ring {
  base: number
  size: number
  head: number
  tail: number
}

const emptyRing = (): Ring => ({ base: 0, size: 0, head: 0, tail: 0 })

export class Fvnic implements BusDevice {
  readonly name: string
  private readonly backend: NicBackend
  private readonly dma: DmaMemory
  private readonly irq: IrqLine
  private readonly factoryMac: Uint8Array

  private readonly mac = new Uint8Array(6)
  private control = 0
  private intStatus = 0
  private intMask = 0
  private tx = emptyRing()
  private rx = emptyRing()
  private faultCode: number = NicFault.None
  private rxDropped = 0
  private linkUp: boolean
  private transmitting = false

  constructor(options: FvnicOptions) {
    if (options.mac.length !== 6) throw new RangeError("fvnic: a MAC address has 6 bytes")
    this.name = options.name ?? "fvnic"
    this.backend = options.backend
    this.dma = options.dma
    this.irq = options.irq
    this.factoryMac = Uint8Array.from(options.mac, (b) => b & 0xff)
    this.mac.set(this.factoryMac)
    this.linkUp = options.linkUp ?? true
    this.backend.onReceive((frame) => this.receive(frame))
  }

  reset(): void {
    this.mac.set(this.factoryMac)
    this.control = 0
    this.intStatus = 0
    this.intMask = 0
    this.tx = emptyRing()
    this.rx = emptyRing()
    this.faultCode = NicFault.None
    this.rxDropped = 0
    this.irq.set(false)
  }

  /** Plug or unplug the cable (the machine or a test); raises LINK_CHANGE on a change. */
  setLink(up: boolean): void {
    if (up === this.linkUp) return
    this.linkUp = up
    this.raise(NicInt.LinkChange)
  }

  // ---- registers -------------------------------------------------------------

  read(offset: number, size: AccessSize): number {
    if (!Number.isInteger(offset) || offset < 0 || offset + size > FVNIC_MMIO_SIZE) return allOnes(size)
    const byte = offset & 3
    const full = this.readRegister(offset - byte)
    return size === 4 && byte === 0 ? full >>> 0 : (full >>> (byte * 8)) & allOnes(size)
  }

  private readRegister(reg: number): number {
    const m = this.mac
    switch (reg) {
      case NicReg.MAGIC:
        return FVNIC_MAGIC
      case NicReg.VERSION:
        return FVNIC_VERSION
      case NicReg.MAC_LOW:
        return (m[0]! | (m[1]! << 8) | (m[2]! << 16) | (m[3]! << 24)) >>> 0
      case NicReg.MAC_HIGH:
        return m[4]! | (m[5]! << 8)
      case NicReg.CONTROL:
        return this.control
      case NicReg.STATUS:
        return (this.linkUp ? NicStatus.LinkUp : 0) | (this.faultCode !== NicFault.None ? NicStatus.Fault : 0)
      case NicReg.INT_STATUS:
        return this.intStatus
      case NicReg.INT_MASK:
        return this.intMask
      case NicReg.TX_BASE:
        return this.tx.base
      case NicReg.TX_SIZE:
        return this.tx.size
      case NicReg.TX_TAIL:
        return this.tx.tail
      case NicReg.TX_HEAD:
        return this.tx.head
      case NicReg.RX_BASE:
        return this.rx.base
      case NicReg.RX_SIZE:
        return this.rx.size
      case NicReg.RX_TAIL:
        return this.rx.tail
      case NicReg.RX_HEAD:
        return this.rx.head
      case NicReg.FAULT_CODE:
        return this.faultCode
      case NicReg.RX_DROPPED:
        return this.rxDropped
      case NicReg.MAX_FRAME:
        return MAX_FRAME
      default:
        return 0
    }
  }

  write(offset: number, size: AccessSize, value: number): void {
    if (size !== 4 || !Number.isInteger(offset) || offset < 0 || offset >= FVNIC_MMIO_SIZE || (offset & 3) !== 0) return
    const v = u32(value)
    switch (offset) {
      case NicReg.INT_STATUS:
        this.intStatus &= ~v
        this.updateIrq()
        return
      case NicReg.INT_MASK:
        this.intMask = v & NIC_INT_ALL
        this.updateIrq()
        return
      case NicReg.RESET:
        if ((v & 1) !== 0) this.reset()
        return
      case NicReg.MAC_LOW:
        this.mac.set([v & 0xff, (v >>> 8) & 0xff, (v >>> 16) & 0xff, v >>> 24], 0)
        return
      case NicReg.MAC_HIGH:
        this.mac.set([v & 0xff, (v >>> 8) & 0xff], 4)
        return
    }
    if (this.faultCode !== NicFault.None) return // halted: only the registers above respond
    const txOn = (this.control & NicControl.TxEnable) !== 0
    const rxOn = (this.control & NicControl.RxEnable) !== 0
    switch (offset) {
      case NicReg.CONTROL:
        this.writeControl(v & NIC_CONTROL_ALL)
        return
      case NicReg.TX_BASE:
        if (!txOn) this.tx.base = v
        return
      case NicReg.TX_SIZE:
        if (!txOn) this.tx.size = v
        return
      case NicReg.RX_BASE:
        if (!rxOn) this.rx.base = v
        return
      case NicReg.RX_SIZE:
        if (!rxOn) this.rx.size = v
        return
      case NicReg.TX_TAIL:
        if (!txOn) return
        if (!this.advanceTail(this.tx, v)) {
          this.fault(NicFault.TxIndex)
          return
        }
        this.transmit()
        return
      case NicReg.RX_TAIL:
        if (rxOn && !this.advanceTail(this.rx, v)) this.fault(NicFault.RxIndex)
        return
      default:
        return // read-only or unknown
    }
  }

  private writeControl(v: number): void {
    const enabling = v & ~this.control
    if ((enabling & NicControl.TxEnable) !== 0 && !this.validRing(this.tx)) {
      this.fault(NicFault.TxRing)
      return
    }
    if ((enabling & NicControl.RxEnable) !== 0 && !this.validRing(this.rx)) {
      this.fault(NicFault.RxRing)
      return
    }
    this.control = v
  }

  private validRing(r: Ring): boolean {
    return (
      isPowerOfTwo(r.size) &&
      r.size <= NIC_MAX_RING &&
      r.base % NIC_RING_ALIGN === 0 &&
      r.base + r.size * NIC_DESCRIPTOR_SIZE <= this.dma.size &&
      (r.tail - r.head) >>> 0 <= r.size
    )
  }

  /** Move a ring's TAIL to `index`: false if that would go backwards or past HEAD + SIZE. */
  private advanceTail(r: Ring, index: number): boolean {
    const before = (r.tail - r.head) >>> 0
    const after = (index - r.head) >>> 0
    if (after > r.size || after < before) return false
    r.tail = index
    return true
  }

  private updateIrq(): void {
    this.irq.set((this.intStatus & this.intMask) !== 0)
  }

  private raise(bits: number): void {
    this.intStatus |= bits
    this.updateIrq()
  }

  private fault(code: NicFault): void {
    this.faultCode = code
    this.raise(NicInt.Fault)
  }

  private slot(r: Ring, index: number): number {
    return r.base + (index & (r.size - 1)) * NIC_DESCRIPTOR_SIZE
  }

  private complete(slot: number, error: NicError | 0, length?: number): void {
    if (length !== undefined) this.dma.write(slot + NicDesc.LENGTH, u16le(length))
    const flags = error === 0 ? NicFlag.Done : NicFlag.Done | NicFlag.Error | (error << 8)
    this.dma.write(slot + NicDesc.FLAGS, u16le(flags))
  }

  // ---- transmit --------------------------------------------------------------

  /** Send every posted frame (re-entrant calls from a back-end are folded into the running loop). */
  private transmit(): void {
    if (this.transmitting) return
    this.transmitting = true
    try {
      const tx = this.tx
      while (this.faultCode === NicFault.None && (this.control & NicControl.TxEnable) !== 0 && tx.head !== tx.tail) {
        const slot = this.slot(tx, tx.head)
        const buffer = this.dma.read32(slot + NicDesc.BUFFER)
        const desc = this.dma.read(slot + NicDesc.LENGTH, 2)
        if (buffer === undefined || desc === undefined) {
          this.fault(NicFault.TxRing) // ring was validated
          return
        }
        const length = desc[0]! | (desc[1]! << 8)
        let error: NicError | 0 = 0
        if (length < MIN_FRAME || length > MAX_FRAME) error = NicError.Length
        else {
          const frame = this.dma.read(buffer, length)
          if (frame === undefined) error = NicError.Buffer
          else if (!this.linkUp) error = NicError.LinkDown
          else this.send(frame)
        }
        this.complete(slot, error)
        tx.head = (tx.head + 1) >>> 0
        this.raise(NicInt.TxDone)
      }
    } finally {
      this.transmitting = false
    }
  }

  private send(frame: Uint8Array): void {
    try {
      this.backend.send(frame)
    } catch {
      // a back-end must not throw; if one does, the frame is lost on the wire
    }
  }

  // ---- receive ---------------------------------------------------------------

  private accepts(frame: Uint8Array): boolean {
    if ((this.control & NicControl.Promisc) !== 0 || (frame[0]! & 1) !== 0) return true
    for (let i = 0; i < 6; i++) if (frame[i] !== this.mac[i]) return false
    return true
  }

  private drop(): void {
    this.rxDropped = (this.rxDropped + 1) >>> 0
    this.raise(NicInt.RxDrop)
  }

  /** A frame arrives from the cable (the back-end's receive callback). */
  receive(frame: Uint8Array): void {
    if (!(frame instanceof Uint8Array)) return
    if (this.faultCode !== NicFault.None || (this.control & NicControl.RxEnable) === 0 || !this.linkUp) return
    if (frame.length < MIN_FRAME || frame.length > MAX_FRAME) {
      this.drop()
      return
    }
    if (!this.accepts(frame)) return
    const rx = this.rx
    if (rx.head === rx.tail) {
      this.drop()
      return
    }
    const slot = this.slot(rx, rx.head)
    const buffer = this.dma.read32(slot + NicDesc.BUFFER)
    const desc = this.dma.read(slot + NicDesc.LENGTH, 2)
    if (buffer === undefined || desc === undefined) {
      this.fault(NicFault.RxRing) // ring was validated
      return
    }
    const capacity = desc[0]! | (desc[1]! << 8)
    rx.head = (rx.head + 1) >>> 0
    if (capacity < frame.length) {
      this.complete(slot, NicError.TooSmall)
      this.raise(NicInt.RxDone)
      this.drop()
      return
    }
    if (!this.dma.write(buffer, frame)) {
      this.complete(slot, NicError.Buffer)
      this.raise(NicInt.RxDone)
      this.drop()
      return
    }
    this.complete(slot, 0, frame.length)
    this.raise(NicInt.RxDone)
  }

  // ---- snapshot --------------------------------------------------------------

  snapshot(): FvnicState {
    return {
      mac: Array.from(this.mac),
      control: this.control,
      intStatus: this.intStatus,
      intMask: this.intMask,
      tx: { ...this.tx },
      rx: { ...this.rx },
      faultCode: this.faultCode,
      rxDropped: this.rxDropped,
      linkUp: this.linkUp
    }
  }

  /** Restore a snapshot; fields are masked and enabled rings re-validated (a bad one restores as a fault). */
  restore(s: FvnicState): void {
    for (let i = 0; i < 6; i++) this.mac[i] = u32(s.mac[i]) & 0xff
    this.control = u32(s.control) & NIC_CONTROL_ALL
    this.intStatus = u32(s.intStatus) & NIC_INT_ALL
    this.intMask = u32(s.intMask) & NIC_INT_ALL
    const ring = (r: NicRingState): Ring => ({
      base: u32(r.base),
      size: u32(r.size),
      head: u32(r.head),
      tail: u32(r.tail)
    })
    this.tx = ring(s.tx)
    this.rx = ring(s.rx)
    const code = u32(s.faultCode)
    this.faultCode = Math.min(code, NicFault.RxIndex)
    this.rxDropped = u32(s.rxDropped)
    this.linkUp = s.linkUp === true
    if (this.faultCode === NicFault.None) {
      if ((this.control & NicControl.TxEnable) !== 0 && !this.validRing(this.tx)) this.faultCode = NicFault.TxRing
      else if ((this.control & NicControl.RxEnable) !== 0 && !this.validRing(this.rx)) this.faultCode = NicFault.RxRing
    }
    this.updateIrq()
  }
}
