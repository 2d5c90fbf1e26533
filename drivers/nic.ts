/**
 * Driver for the fvnic DMA Ethernet controller, following its datasheet,
 * revision 1.0 (hw/devices/nic/registers.ts): "Registers" (MAGIC/VERSION
 * probe, MAC_LOW/MAC_HIGH, CONTROL enables that latch and validate the
 * rings, TX/RX BASE, SIZE, TAIL, HEAD, INT_STATUS write-1-to-clear,
 * RX_DROPPED, RESET), "Descriptor" (8 bytes: buffer, length, flags with
 * DONE/ERROR and an error code) and "Timing" (a TX_TAIL write sends every
 * posted frame before it returns; received frames land in RAM when the
 * back-end delivers them).
 *
 * Memory (frames from the kernel allocator via `allocFrame`, by frame
 * number: machine-physical address / 4096): one frame holds both rings (TX at +0, RX at
 * +2048, up to 256 descriptors each); every slot of either ring owns a
 * 2 KiB buffer (two per frame), enough for the largest frame (1518 bytes).
 *
 * Order of bring-up (the datasheet latches BASE/SIZE when a direction is
 * enabled, and ignores TAIL writes while it is disabled): RESET, rings and
 * sizes, INT_MASK = 0 (polled), CONTROL = TX | RX (| PROMISC), then
 * RX_TAIL = RX size: every receive buffer is posted. `receive()` drains the
 * descriptors between the driver's index and RX_HEAD, copies the good
 * frames out and re-posts the buffers (RX_TAIL = consumed + size).
 */
import {
  FVNIC_MAGIC,
  FVNIC_VERSION,
  MAX_FRAME,
  MIN_FRAME,
  NIC_DESCRIPTOR_SIZE,
  NicControl,
  NicDesc,
  NicError,
  NicFault,
  NicFlag,
  NicInt,
  NicReg,
  NicStatus
} from "../hw/devices/nic/registers.ts"
import { FVNIC_BASE } from "../hw/machine/machine.ts"
import { err, FRAME_SIZE, frameAddress, ok, type Platform, type Result } from "./platform.ts"

/** Bytes of each packet buffer (two per frame). */
export const NIC_BUFFER_SIZE = 2048
/** Offset of the RX ring inside the ring frame. */
const RX_RING_OFFSET = FRAME_SIZE / 2

export type NicDriverError =
  | { readonly _tag: "NoDevice"; readonly base: number; readonly magic: number; readonly version: number }
  | { readonly _tag: "BadFrame"; readonly frame: number }
  | { readonly _tag: "BadRingSize"; readonly size: number }
  | { readonly _tag: "BadFrameLength"; readonly length: number }
  | { readonly _tag: "TxRingFull" }
  | { readonly _tag: "TxFailed"; readonly code: number; readonly reason: string }
  | { readonly _tag: "ControllerFault"; readonly code: number; readonly reason: string }

const txErrors: Record<number, string> = {
  [NicError.Length]: "frame length outside 14..1518",
  [NicError.Buffer]: "buffer outside machine RAM",
  [NicError.TooSmall]: "buffer too small",
  [NicError.LinkDown]: "link down"
}
const faults: Record<number, string> = {
  [NicFault.TxRing]: "bad TX ring",
  [NicFault.RxRing]: "bad RX ring",
  [NicFault.TxIndex]: "bad TX tail index",
  [NicFault.RxIndex]: "bad RX tail index"
}

export interface NicOptions {
  /** MMIO base (default 0xFEB01000; the firmware table names it). */
  readonly base?: number
  /** A free 4 KiB machine frame, by frame number (machine-physical address / 4096). */
  readonly allocFrame: () => number
  /** Descriptors per ring: a power of two, 1..256 (default 16). */
  readonly txSlots?: number
  readonly rxSlots?: number
  /** Accept frames for any destination (default false). */
  readonly promiscuous?: boolean
}

const validRingSize = (n: number) => Number.isInteger(n) && n >= 1 && n <= 256 && (n & (n - 1)) === 0

export class NicDriver {
  readonly base: number
  readonly mac: Uint8Array
  readonly txSlots: number
  readonly rxSlots: number
  private readonly platform: Platform
  private readonly view: DataView
  private readonly rings: number
  private readonly txBuffers: ReadonlyArray<number>
  private readonly rxBuffers: ReadonlyArray<number>
  private readonly control: number
  private txTail = 0
  private rxNext = 0
  sent = 0
  received = 0
  /** Receive descriptors completed with ERROR (buffer too small / outside RAM). */
  rxErrors = 0

  private constructor(
    platform: Platform,
    base: number,
    rings: number,
    buffers: { tx: ReadonlyArray<number>; rx: ReadonlyArray<number> },
    control: number
  ) {
    this.platform = platform
    this.base = base
    this.rings = rings
    this.txBuffers = buffers.tx
    this.rxBuffers = buffers.rx
    this.txSlots = buffers.tx.length
    this.rxSlots = buffers.rx.length
    this.control = control
    this.view = new DataView(platform.ram.buffer, platform.ram.byteOffset, platform.ram.byteLength)
    const low = this.reg(NicReg.MAC_LOW)
    const high = this.reg(NicReg.MAC_HIGH)
    this.mac = Uint8Array.of(low & 0xff, (low >>> 8) & 0xff, (low >>> 16) & 0xff, low >>> 24, high & 0xff, high >>> 8)
  }

  /** Probe, reset and bring up the controller with rings and buffers from `allocFrame`. */
  static open(platform: Platform, options: NicOptions): Result<NicDriver, NicDriverError> {
    const base = options.base ?? FVNIC_BASE
    const txSlots = options.txSlots ?? 16
    const rxSlots = options.rxSlots ?? 16
    if (!validRingSize(txSlots)) return err({ _tag: "BadRingSize", size: txSlots })
    if (!validRingSize(rxSlots)) return err({ _tag: "BadRingSize", size: rxSlots })
    const magic = platform.mmio.read(base + NicReg.MAGIC, 4)
    const version = platform.mmio.read(base + NicReg.VERSION, 4)
    if (magic !== FVNIC_MAGIC || version >>> 16 !== FVNIC_VERSION >>> 16)
      return err({ _tag: "NoDevice", base, magic, version })
    const frame = (): number | NicDriverError => {
      const frame = options.allocFrame()
      return frameAddress(platform.ram, frame) ?? { _tag: "BadFrame", frame }
    }
    const rings = frame()
    if (typeof rings !== "number") return err(rings)
    const buffers = (slots: number): Array<number> | NicDriverError => {
      const out: Array<number> = []
      while (out.length < slots) {
        const f = frame()
        if (typeof f !== "number") return f
        for (let at = f; at < f + FRAME_SIZE && out.length < slots; at += NIC_BUFFER_SIZE) out.push(at)
      }
      return out
    }
    const tx = buffers(txSlots)
    if (!Array.isArray(tx)) return err(tx)
    const rx = buffers(rxSlots)
    if (!Array.isArray(rx)) return err(rx)
    const control = NicControl.TxEnable | NicControl.RxEnable | (options.promiscuous ? NicControl.Promisc : 0)
    const driver = new NicDriver(platform, base, rings, { tx, rx }, control)
    const up = driver.reset()
    return up.ok ? ok(driver) : up
  }

  private reg(offset: number): number {
    return this.platform.mmio.read(this.base + offset, 4)
  }

  private setReg(offset: number, value: number): void {
    this.platform.mmio.write(this.base + offset, 4, value)
  }

  private get txRing(): number {
    return this.rings
  }

  private get rxRing(): number {
    return this.rings + RX_RING_OFFSET
  }

  /** RESET and bring the controller up again (also the way out of a FAULT). */
  reset(): Result<void, NicDriverError> {
    this.setReg(NicReg.RESET, 1)
    this.platform.ram.fill(0, this.rings, this.rings + FRAME_SIZE)
    this.setReg(
      NicReg.MAC_LOW,
      (this.mac[0]! | (this.mac[1]! << 8) | (this.mac[2]! << 16) | (this.mac[3]! << 24)) >>> 0
    )
    this.setReg(NicReg.MAC_HIGH, this.mac[4]! | (this.mac[5]! << 8))
    this.setReg(NicReg.TX_BASE, this.txRing)
    this.setReg(NicReg.TX_SIZE, this.txSlots)
    this.setReg(NicReg.RX_BASE, this.rxRing)
    this.setReg(NicReg.RX_SIZE, this.rxSlots)
    this.setReg(NicReg.INT_MASK, 0)
    for (let i = 0; i < this.rxSlots; i++) this.postRx(i, this.rxBuffers[i]!)
    this.setReg(NicReg.CONTROL, this.control)
    this.txTail = 0
    this.rxNext = 0
    this.setReg(NicReg.RX_TAIL, this.rxSlots)
    const fault = this.fault()
    return fault === undefined ? ok(undefined) : err(fault)
  }

  private fault(): NicDriverError | undefined {
    if ((this.reg(NicReg.STATUS) & NicStatus.Fault) === 0) return undefined
    const code = this.reg(NicReg.FAULT_CODE)
    return { _tag: "ControllerFault", code, reason: faults[code] ?? "unknown fault" }
  }

  private postRx(slot: number, buffer: number): void {
    const at = this.rxRing + slot * NIC_DESCRIPTOR_SIZE
    this.view.setUint32(at + NicDesc.BUFFER, buffer, true)
    this.view.setUint16(at + NicDesc.LENGTH, NIC_BUFFER_SIZE, true)
    this.view.setUint16(at + NicDesc.FLAGS, 0, true)
  }

  get linkUp(): boolean {
    return (this.reg(NicReg.STATUS) & NicStatus.LinkUp) !== 0
  }

  /** Frames the controller dropped on receive (no buffer posted, runt/oversize, bad buffer). */
  get rxDropped(): number {
    return this.reg(NicReg.RX_DROPPED)
  }

  /** Transmit one Ethernet II frame (14..1518 bytes, no FCS). */
  send(frame: Uint8Array): Result<void, NicDriverError> {
    if (frame.length < MIN_FRAME || frame.length > MAX_FRAME)
      return err({ _tag: "BadFrameLength", length: frame.length })
    const fault = this.fault()
    if (fault !== undefined) return err(fault)
    if ((this.txTail - this.reg(NicReg.TX_HEAD)) >>> 0 >= this.txSlots) return err({ _tag: "TxRingFull" })
    const slot = this.txTail & (this.txSlots - 1)
    const at = this.txRing + slot * NIC_DESCRIPTOR_SIZE
    const buffer = this.txBuffers[slot]!
    this.platform.ram.set(frame, buffer)
    this.view.setUint32(at + NicDesc.BUFFER, buffer, true)
    this.view.setUint16(at + NicDesc.LENGTH, frame.length, true)
    this.view.setUint16(at + NicDesc.FLAGS, 0, true)
    this.txTail = (this.txTail + 1) >>> 0
    this.setReg(NicReg.TX_TAIL, this.txTail)
    this.setReg(NicReg.INT_STATUS, NicInt.TxDone)
    const flags = this.view.getUint16(at + NicDesc.FLAGS, true)
    if ((flags & NicFlag.Done) === 0) return ok(undefined) // still queued (not with this controller's timing)
    if ((flags & NicFlag.Error) !== 0) {
      const code = flags >>> 8
      return err({ _tag: "TxFailed", code, reason: txErrors[code] ?? "unknown error" })
    }
    this.sent++
    return ok(undefined)
  }

  /** Every frame received since the last call, oldest first; their buffers are posted again. */
  receive(): Array<Uint8Array> {
    const frames: Array<Uint8Array> = []
    const head = this.reg(NicReg.RX_HEAD)
    if (head === this.rxNext) return frames
    while (this.rxNext !== head) {
      const slot = this.rxNext & (this.rxSlots - 1)
      const at = this.rxRing + slot * NIC_DESCRIPTOR_SIZE
      const flags = this.view.getUint16(at + NicDesc.FLAGS, true)
      const length = this.view.getUint16(at + NicDesc.LENGTH, true)
      const buffer = this.rxBuffers[slot]!
      if ((flags & NicFlag.Done) !== 0 && (flags & NicFlag.Error) === 0 && length <= NIC_BUFFER_SIZE) {
        frames.push(this.platform.ram.slice(buffer, buffer + length))
        this.received++
      } else this.rxErrors++
      this.postRx(slot, buffer)
      this.rxNext = (this.rxNext + 1) >>> 0
    }
    this.setReg(NicReg.INT_STATUS, NicInt.RxDone | NicInt.RxDrop)
    this.setReg(NicReg.RX_TAIL, (this.rxNext + this.rxSlots) >>> 0)
    return frames
  }
}
