/**
 * The virtio-mmio transport, version 2 (OASIS "Virtual I/O Device (VIRTIO)
 * Version 1.1": 4.2 "Virtio Over MMIO", 4.2.2 "MMIO Device Register Layout",
 * 4.2.3 "MMIO-specific Initialization And Device Operation"; the device
 * status field 2.1, feature bits 2.2 and 6, the initialization sequence
 * 3.1.1, device configuration space 2.4, notifications 2.3).
 *
 * A BusDevice (hw/machine/device.ts) the VMM maps at a guest-physical MMIO
 * window (VIRTIO_MMIO_BASE + n * VIRTIO_MMIO_SIZE) and reaches through
 * EPT-violation exits; it sees offsets only. A Linux guest finds it with
 * `virtio_mmio.device=0x200@0xfeb00000:IRQ` (linuxCmdlineDevice).
 *
 * The register map and constants are in registers.ts.
 *
 * Access rules (4.2.2.2): registers below 0x100 take aligned 32-bit accesses
 * only; other sizes read 0 and writes are ignored (as QEMU does). Config
 * space takes 1/2/4-byte accesses, little-endian. Unknown offsets read 0.
 * The "write-only" registers read back what was last written (handy for
 * debugging, harmless to a driver). Shared-memory regions and per-queue
 * reset (virtio 1.2) are not implemented.
 *
 * Status (2.1, 3.1.1): bits are only added, in order: ACKNOWLEDGE, DRIVER,
 * FEATURES_OK, DRIVER_OK; a bit whose predecessor is missing is dropped from
 * the write, a write that clears bits (other than 0) is ignored, FAILED is
 * taken at any time. FEATURES_OK sticks only if the accepted features are a
 * subset of the offered ones and include VIRTIO_F_VERSION_1 (bit 32), and
 * the device agrees; the driver re-reads Status to check. DEVICE_NEEDS_RESET
 * (0x40) is the device's: set on a device error (a broken queue, a bad queue
 * layout, a malformed request), with a configuration-change interrupt once
 * DRIVER_OK is set (2.1.2); writes cannot set or clear it, only a reset.
 * Writing 0 resets everything: status, features, queues, interrupts and the
 * device model.
 *
 * Queues: QueueNum and the addresses can be written while the selected
 * queue is not ready. QueueReady = 1 (after FEATURES_OK; ignored before)
 * checks the layout (virtqueue.ts layoutProblem): a bad one is a device
 * error. QueueReady = 0 takes the queue down. A queue is processed only
 * while DRIVER_OK is set and FAILED is not, and not once it is broken
 * (virtqueue.ts); other queues keep working. Notifications that arrive
 * before DRIVER_OK are caught up when DRIVER_OK is set.
 *
 * Interrupts: the IrqLine is level: high while InterruptStatus != 0 (the VMM
 * wires it to its virtual IOAPIC/PIC).
 *
 * Never throws on a guest-reachable path.
 */
import type { AccessSize, BusDevice, IrqLine } from "../../hw/machine/device.ts"
import {
  FIBERVISOR_VENDOR_ID,
  VIRTIO_CONFIG_OFFSET,
  VIRTIO_MMIO_MAGIC,
  VIRTIO_MMIO_SIZE,
  VIRTIO_MMIO_VERSION,
  VirtioFeature,
  VirtioInterrupt,
  VirtioReg,
  VirtioStatus
} from "./registers.ts"
import { type GuestMemory, layoutProblem, Virtqueue } from "./virtqueue.ts"

export * from "./registers.ts"

/** The transport as a device model sees it. */
export interface VirtioTransport {
  readonly memory: GuestMemory
  /** The features the driver accepted (meaningful once FEATURES_OK is set). */
  readonly driverFeatures: bigint
  /** DRIVER_OK is set and FAILED is not: the device may use its queues. */
  readonly live: boolean
  /** Queue `index` if it is ready, live and not broken. */
  queue(index: number): Virtqueue | undefined
  /** Buffers were returned on queue `index`: interrupt unless the driver suppressed it. */
  signalUsed(index: number): void
  /** The config space changed: bump ConfigGeneration, configuration-change interrupt. */
  configChanged(): void
  /** An unrecoverable device error (malformed request, ...): set DEVICE_NEEDS_RESET. */
  deviceError(reason: string): void
}

/** A device model behind the transport (blk.ts, net.ts). */
export interface VirtioDevice {
  readonly deviceId: number
  /** Offered feature bits; the transport adds VIRTIO_F_VERSION_1 and VIRTIO_F_INDIRECT_DESC. */
  readonly features: bigint
  /** The maximum size of each virtqueue, by index (their number is its length). */
  readonly queueMaxSizes: ReadonlyArray<number>
  /** Called once, when the transport is built. */
  attach(transport: VirtioTransport): void
  /** Read `size` bytes of config space at `offset` (little-endian; 0 outside it). */
  readConfig(offset: number, size: AccessSize): number
  writeConfig(offset: number, size: AccessSize, value: number): void
  /** Whether the device can work with these accepted features (FEATURES_OK); default yes. */
  acceptFeatures?(features: bigint): boolean
  /** The driver notified queue `index` (only while live and the queue is usable). */
  queueNotify(index: number): void
  /** Device reset (Status = 0): forget in-flight state. */
  reset(): void
}

/** Read `size` bytes little-endian from a config-space image; 0 if any byte is outside it. */
export const readConfigBytes = (bytes: Uint8Array, offset: number, size: AccessSize): number => {
  if (!Number.isInteger(offset) || offset < 0 || offset + size > bytes.length) return 0
  let v = 0
  for (let i = size - 1; i >= 0; i--) v = v * 256 + bytes[offset + i]!
  return v
}

export interface VirtioMmioOptions {
  readonly device: VirtioDevice
  readonly memory: GuestMemory
  readonly irq: IrqLine
  readonly name?: string
  /** Offer VIRTIO_F_INDIRECT_DESC (default true). */
  readonly indirectDescriptors?: boolean
}

export interface VirtioMmioStats {
  readonly notifies: number
  readonly interrupts: number
  readonly deviceErrors: number
  readonly resets: number
  /** The first device error since the last reset, if any. */
  readonly error: string | undefined
}

interface QueueRegs {
  num: number
  ready: boolean
  desc: [number, number]
  driver: [number, number]
  device: [number, number]
  vq: Virtqueue | undefined
}

const u32 = (v: unknown): number => (typeof v === "number" && Number.isFinite(v) ? v >>> 0 : 0)
const addr64 = (pair: [number, number]) => pair[0] + pair[1] * 2 ** 32
const word = (features: bigint, sel: number) =>
  sel === 0 || sel === 1 ? Number((features >> BigInt(32 * sel)) & 0xffffffffn) : 0

/** Status bits in the order they must be set, each with its predecessor. */
const statusOrder: ReadonlyArray<readonly [number, number]> = [
  [VirtioStatus.ACKNOWLEDGE, 0],
  [VirtioStatus.DRIVER, VirtioStatus.ACKNOWLEDGE],
  [VirtioStatus.FEATURES_OK, VirtioStatus.DRIVER],
  [VirtioStatus.DRIVER_OK, VirtioStatus.FEATURES_OK]
]

export class VirtioMmio implements BusDevice, VirtioTransport {
  readonly name: string
  readonly memory: GuestMemory
  readonly device: VirtioDevice
  /** Every feature offered: the device's plus the transport's. */
  readonly offeredFeatures: bigint
  private readonly irq: IrqLine
  private readonly queues: Array<QueueRegs>

  private statusBits = 0
  private accepted = 0n
  private deviceFeaturesSel = 0
  private driverFeaturesSel = 0
  private queueSel = 0
  private interruptStatus = 0
  private generation = 0
  private counters = { notifies: 0, interrupts: 0, deviceErrors: 0, resets: 0 }
  private firstError: string | undefined

  constructor(options: VirtioMmioOptions) {
    this.device = options.device
    this.memory = options.memory
    this.irq = options.irq
    this.name = options.name ?? `virtio-mmio-${options.device.deviceId}`
    this.offeredFeatures =
      options.device.features |
      VirtioFeature.VERSION_1 |
      ((options.indirectDescriptors ?? true) ? VirtioFeature.INDIRECT_DESC : 0n)
    this.queues = options.device.queueMaxSizes.map((max) => this.freshQueue(max))
    this.device.attach(this)
  }

  private freshQueue(max: number): QueueRegs {
    return { num: max, ready: false, desc: [0, 0], driver: [0, 0], device: [0, 0], vq: undefined }
  }

  // ---- VirtioTransport -------------------------------------------------------------------------

  get driverFeatures(): bigint {
    return this.accepted
  }

  get status(): number {
    return this.statusBits
  }

  get live(): boolean {
    return (this.statusBits & (VirtioStatus.DRIVER_OK | VirtioStatus.FAILED)) === VirtioStatus.DRIVER_OK
  }

  queue(index: number): Virtqueue | undefined {
    if (!this.live) return undefined
    const vq = this.queues[index]?.vq
    return vq === undefined || vq.broken !== undefined ? undefined : vq
  }

  signalUsed(index: number): void {
    const vq = this.queues[index]?.vq
    if (vq === undefined || vq.wantsInterrupt()) this.raise(VirtioInterrupt.USED_BUFFER)
  }

  configChanged(): void {
    this.generation = (this.generation + 1) >>> 0
    if (this.statusBits & VirtioStatus.DRIVER_OK) this.raise(VirtioInterrupt.CONFIG_CHANGE)
  }

  deviceError(reason: string): void {
    this.counters.deviceErrors++
    this.firstError ??= reason
    if (this.statusBits & VirtioStatus.DEVICE_NEEDS_RESET) return
    this.statusBits |= VirtioStatus.DEVICE_NEEDS_RESET
    if (this.statusBits & VirtioStatus.DRIVER_OK) this.raise(VirtioInterrupt.CONFIG_CHANGE)
  }

  stats(): VirtioMmioStats {
    return { ...this.counters, error: this.firstError }
  }

  private raise(bit: number): void {
    this.interruptStatus |= bit
    this.counters.interrupts++
    this.irq.set(true)
  }

  // ---- BusDevice -------------------------------------------------------------------------------

  read(offset: number, size: AccessSize): number {
    if (!Number.isInteger(offset) || offset < 0 || offset >= VIRTIO_MMIO_SIZE) return 0
    if (offset >= VIRTIO_CONFIG_OFFSET) return u32(this.device.readConfig(offset - VIRTIO_CONFIG_OFFSET, size))
    if (size !== 4 || offset % 4 !== 0) return 0
    const q = this.queues[this.queueSel]
    switch (offset) {
      case VirtioReg.MAGIC:
        return VIRTIO_MMIO_MAGIC
      case VirtioReg.VERSION:
        return VIRTIO_MMIO_VERSION
      case VirtioReg.DEVICE_ID:
        return this.device.deviceId
      case VirtioReg.VENDOR_ID:
        return FIBERVISOR_VENDOR_ID
      case VirtioReg.DEVICE_FEATURES:
        return word(this.offeredFeatures, this.deviceFeaturesSel)
      case VirtioReg.DEVICE_FEATURES_SEL:
        return this.deviceFeaturesSel
      case VirtioReg.DRIVER_FEATURES:
        return word(this.accepted, this.driverFeaturesSel)
      case VirtioReg.DRIVER_FEATURES_SEL:
        return this.driverFeaturesSel
      case VirtioReg.QUEUE_SEL:
        return this.queueSel
      case VirtioReg.QUEUE_NUM_MAX:
        return this.device.queueMaxSizes[this.queueSel] ?? 0
      case VirtioReg.QUEUE_NUM:
        return q?.num ?? 0
      case VirtioReg.QUEUE_READY:
        return q?.ready ? 1 : 0
      case VirtioReg.INTERRUPT_STATUS:
        return this.interruptStatus
      case VirtioReg.STATUS:
        return this.statusBits
      case VirtioReg.QUEUE_DESC_LOW:
        return q?.desc[0] ?? 0
      case VirtioReg.QUEUE_DESC_HIGH:
        return q?.desc[1] ?? 0
      case VirtioReg.QUEUE_DRIVER_LOW:
        return q?.driver[0] ?? 0
      case VirtioReg.QUEUE_DRIVER_HIGH:
        return q?.driver[1] ?? 0
      case VirtioReg.QUEUE_DEVICE_LOW:
        return q?.device[0] ?? 0
      case VirtioReg.QUEUE_DEVICE_HIGH:
        return q?.device[1] ?? 0
      case VirtioReg.CONFIG_GENERATION:
        return this.generation
      default:
        return 0
    }
  }

  write(offset: number, size: AccessSize, value: number): void {
    if (!Number.isInteger(offset) || offset < 0 || offset >= VIRTIO_MMIO_SIZE) return
    if (offset >= VIRTIO_CONFIG_OFFSET) {
      this.device.writeConfig(offset - VIRTIO_CONFIG_OFFSET, size, u32(value))
      return
    }
    if (size !== 4 || offset % 4 !== 0) return
    const v = u32(value)
    const q = this.queues[this.queueSel]
    const settable = q !== undefined && !q.ready ? q : undefined
    switch (offset) {
      case VirtioReg.DEVICE_FEATURES_SEL:
        this.deviceFeaturesSel = v
        return
      case VirtioReg.DRIVER_FEATURES:
        this.writeDriverFeatures(v)
        return
      case VirtioReg.DRIVER_FEATURES_SEL:
        this.driverFeaturesSel = v
        return
      case VirtioReg.QUEUE_SEL:
        this.queueSel = v
        return
      case VirtioReg.QUEUE_NUM:
        if (settable) settable.num = v
        return
      case VirtioReg.QUEUE_READY:
        this.writeQueueReady(v)
        return
      case VirtioReg.QUEUE_NOTIFY:
        this.notify(v)
        return
      case VirtioReg.INTERRUPT_ACK:
        this.interruptStatus &= ~v
        this.irq.set(this.interruptStatus !== 0)
        return
      case VirtioReg.STATUS:
        this.writeStatus(v)
        return
      case VirtioReg.QUEUE_DESC_LOW:
      case VirtioReg.QUEUE_DESC_HIGH:
        if (settable) settable.desc[(offset - VirtioReg.QUEUE_DESC_LOW) / 4] = v
        return
      case VirtioReg.QUEUE_DRIVER_LOW:
      case VirtioReg.QUEUE_DRIVER_HIGH:
        if (settable) settable.driver[(offset - VirtioReg.QUEUE_DRIVER_LOW) / 4] = v
        return
      case VirtioReg.QUEUE_DEVICE_LOW:
      case VirtioReg.QUEUE_DEVICE_HIGH:
        if (settable) settable.device[(offset - VirtioReg.QUEUE_DEVICE_LOW) / 4] = v
        return
      default:
        return
    }
  }

  // ---- register behaviour ----------------------------------------------------------------------

  private writeDriverFeatures(v: number): void {
    // features are negotiated between DRIVER and FEATURES_OK only (3.1.1 steps 4-5)
    const s = this.statusBits
    if (!(s & VirtioStatus.DRIVER) || s & (VirtioStatus.FEATURES_OK | VirtioStatus.FAILED)) return
    if (this.driverFeaturesSel > 1) return
    const shift = BigInt(32 * this.driverFeaturesSel)
    this.accepted = (this.accepted & ~(0xffffffffn << shift)) | (BigInt(v) << shift)
  }

  private featuresAcceptable(): boolean {
    const f = this.accepted
    if ((f & ~this.offeredFeatures) !== 0n || (f & VirtioFeature.VERSION_1) === 0n) return false
    return this.device.acceptFeatures?.(f) ?? true
  }

  private writeStatus(v: number): void {
    if (v === 0) {
      this.reset()
      return
    }
    const current = this.statusBits & ~VirtioStatus.DEVICE_NEEDS_RESET
    const requested = v & ~VirtioStatus.DEVICE_NEEDS_RESET
    if (current & ~requested) return // clearing bits is not allowed: only a reset does that
    let next = current | (requested & VirtioStatus.FAILED)
    for (const [bit, before] of statusOrder) {
      if (!(requested & bit) || next & bit) continue
      if (before !== 0 && !(next & before)) break
      if (bit === VirtioStatus.FEATURES_OK && !this.featuresAcceptable()) break
      next |= bit
    }
    const wasLive = this.live
    this.statusBits = next | (this.statusBits & VirtioStatus.DEVICE_NEEDS_RESET)
    if (!wasLive && this.live) {
      // catch up on notifications the driver sent before DRIVER_OK
      for (let i = 0; i < this.queues.length; i++) if (this.queue(i)) this.device.queueNotify(i)
    }
  }

  private writeQueueReady(v: number): void {
    const q = this.queues[this.queueSel]
    if (q === undefined) return
    if (v === 0) {
      q.ready = false
      q.vq = undefined
      return
    }
    if (v !== 1 || q.ready) return
    if ((this.statusBits & (VirtioStatus.FEATURES_OK | VirtioStatus.FAILED)) !== VirtioStatus.FEATURES_OK) return
    const layout = { size: q.num, desc: addr64(q.desc), avail: addr64(q.driver), used: addr64(q.device) }
    const index = this.queueSel
    const problem = layoutProblem(layout, this.device.queueMaxSizes[index] ?? 0, this.memory)
    if (problem !== undefined) {
      this.deviceError(`queue ${index}: ${problem}`)
      return
    }
    q.ready = true
    q.vq = new Virtqueue({
      memory: this.memory,
      layout,
      indirect: (this.accepted & VirtioFeature.INDIRECT_DESC) !== 0n,
      onError: (reason) => this.deviceError(`queue ${index}: ${reason}`)
    })
  }

  private notify(index: number): void {
    this.counters.notifies++
    if (this.queue(index)) this.device.queueNotify(index)
  }

  /** Status = 0 (2.1.1, 4.2.3.1): back to the power-on state, config generation kept counting. */
  private reset(): void {
    this.counters.resets++
    this.statusBits = 0
    this.accepted = 0n
    this.deviceFeaturesSel = 0
    this.driverFeaturesSel = 0
    this.queueSel = 0
    this.interruptStatus = 0
    this.firstError = undefined
    for (let i = 0; i < this.queues.length; i++) this.queues[i] = this.freshQueue(this.device.queueMaxSizes[i] ?? 0)
    this.irq.set(false)
    this.device.reset()
  }
}
