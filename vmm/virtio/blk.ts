/**
 * virtio-blk, the paravirtual disk (OASIS "Virtual I/O Device (VIRTIO)
 * Version 1.1", section 5.2 "Block Device": 5.2.3 feature bits, 5.2.4
 * device configuration layout, 5.2.6 device operation and 5.2.6.1/5.2.6.2
 * its requirements), behind the virtio-mmio transport (mmio.ts).
 *
 * One virtqueue, requestq (index 0). A request is one descriptor chain:
 *
 *   device-readable   le32 type; le32 reserved; le64 sector;   16-byte header
 *                     u8 data[]                                 OUT: the sectors to write
 *   device-writable   u8 data[]                                 IN: the sectors read; GET_ID: the id
 *                     u8 status                                 the last writable byte
 *
 * (the header and data may be split across descriptors any way the driver
 * likes). Types: IN 0, OUT 1, FLUSH 4, GET_ID 8; anything else completes
 * with UNSUPP. Status: OK 0, IOERR 1, UNSUPP 2. used.len counts the bytes
 * written: data + status.
 *
 * IOERR: a data length that is not a multiple of 512, a range past the
 * capacity, more than maxRequestBytes, a write with VIRTIO_BLK_F_RO, or a
 * BlockStore that refuses. A chain without a 16-byte header or without a
 * writable status byte is malformed: the queue stops and the device sets
 * DEVICE_NEEDS_RESET (QEMU's virtio_error does the same), as it does for
 * the hostile-ring cases of virtqueue.ts.
 *
 * Features offered: SIZE_MAX (size_max = 64 KiB per segment), SEG_MAX
 * (segments per request), BLK_SIZE (512), FLUSH, and RO for a read-only
 * store; plus the transport's VERSION_1 and INDIRECT_DESC. size_max and
 * seg_max are advice to the driver; only the total (maxRequestBytes,
 * default size_max * seg_max) is enforced. Not offered: GEOMETRY, TOPOLOGY,
 * CONFIG_WCE, MQ, DISCARD, WRITE_ZEROES, so their config fields read 0.
 *
 * Requests complete synchronously, in order, inside the QueueNotify write:
 * zero virtual latency, deterministic for a deterministic BlockStore.
 */
import type { AccessSize } from "../../hw/machine/device.ts"
import { readConfigBytes, type VirtioDevice, type VirtioTransport } from "./mmio.ts"
import type { DescriptorChain, Virtqueue } from "./virtqueue.ts"

/** The disk behind the device (the VMM backs it with a Datastore file; tests use memoryBlockStore). */
export interface BlockStore {
  /** Capacity in 512-byte sectors. */
  readonly sectors: number
  /** `count` sectors from `sector`; undefined on an I/O error or a bad range. */
  read(sector: number, count: number): Uint8Array | undefined
  /** Write whole sectors (data.length a multiple of 512); false on an I/O error or a bad range. */
  write(sector: number, data: Uint8Array): boolean
  /** Make every completed write durable; false on an I/O error. */
  flush(): boolean
}

export const VIRTIO_BLK_DEVICE_ID = 2
export const SECTOR_SIZE = 512
export const VIRTIO_BLK_ID_BYTES = 20
export const VIRTIO_BLK_REQUEST_QUEUE = 0
export const VIRTIO_BLK_HEADER_SIZE = 16

export const VirtioBlkFeature = {
  SIZE_MAX: 1n << 1n,
  SEG_MAX: 1n << 2n,
  GEOMETRY: 1n << 4n,
  RO: 1n << 5n,
  BLK_SIZE: 1n << 6n,
  FLUSH: 1n << 9n
} as const

export const VirtioBlkType = { IN: 0, OUT: 1, FLUSH: 4, GET_ID: 8 } as const
export const VirtioBlkStatus = { OK: 0, IOERR: 1, UNSUPP: 2 } as const

/** Config-space offsets (5.2.4). */
export const VirtioBlkConfig = {
  CAPACITY: 0,
  SIZE_MAX: 8,
  SEG_MAX: 12,
  GEOMETRY: 16,
  BLK_SIZE: 20,
  TOPOLOGY: 24,
  WRITEBACK: 32
} as const
const CONFIG_SIZE = 36

export const VIRTIO_BLK_SIZE_MAX = 64 * 1024

export interface VirtioBlkOptions {
  readonly store: BlockStore
  /** Offer VIRTIO_BLK_F_RO and fail every write (default false). */
  readonly readOnly?: boolean
  /** The GET_ID string (ASCII, up to 20 bytes; default "fibervisor-vblk"). */
  readonly serial?: string
  /** requestq size, a power of two (default 256). */
  readonly queueSize?: number
  /** The largest data transfer per request (default size_max * seg_max). */
  readonly maxRequestBytes?: number
}

export interface VirtioBlkStats {
  readonly requests: number
  readonly reads: number
  readonly writes: number
  readonly flushes: number
  readonly bytesRead: number
  readonly bytesWritten: number
  readonly ioErrors: number
  readonly unsupported: number
}

export class VirtioBlk implements VirtioDevice {
  readonly deviceId = VIRTIO_BLK_DEVICE_ID
  readonly features: bigint
  readonly queueMaxSizes: ReadonlyArray<number>
  readonly store: BlockStore
  private readonly readOnly: boolean
  private readonly id: Uint8Array
  private readonly segMax: number
  private readonly maxRequestBytes: number
  private transport: VirtioTransport | undefined
  private counters = { requests: 0, reads: 0, writes: 0, flushes: 0, bytesRead: 0, bytesWritten: 0 }
  private errors = { ioErrors: 0, unsupported: 0 }

  constructor(options: VirtioBlkOptions) {
    this.store = options.store
    this.readOnly = options.readOnly ?? false
    const queueSize = options.queueSize ?? 256
    this.queueMaxSizes = [queueSize]
    this.segMax = Math.max(1, Math.min(queueSize - 2, 128))
    this.maxRequestBytes = options.maxRequestBytes ?? this.segMax * VIRTIO_BLK_SIZE_MAX
    this.id = new Uint8Array(VIRTIO_BLK_ID_BYTES)
    const serial = options.serial ?? "fibervisor-vblk"
    for (let i = 0; i < Math.min(serial.length, VIRTIO_BLK_ID_BYTES); i++) this.id[i] = serial.charCodeAt(i) & 0x7f
    this.features =
      VirtioBlkFeature.SIZE_MAX |
      VirtioBlkFeature.SEG_MAX |
      VirtioBlkFeature.BLK_SIZE |
      VirtioBlkFeature.FLUSH |
      (this.readOnly ? VirtioBlkFeature.RO : 0n)
  }

  attach(transport: VirtioTransport): void {
    if (this.transport !== undefined) throw new Error("VirtioBlk: already attached to a transport")
    this.transport = transport
  }

  stats(): VirtioBlkStats {
    return { ...this.counters, ...this.errors }
  }

  /** The store's capacity changed: tell the driver (configuration-change interrupt). */
  capacityChanged(): void {
    this.transport?.configChanged()
  }

  private config(): Uint8Array {
    const bytes = new Uint8Array(CONFIG_SIZE)
    const view = new DataView(bytes.buffer)
    const sectors = Math.max(0, Math.floor(this.store.sectors))
    view.setUint32(VirtioBlkConfig.CAPACITY, sectors % 2 ** 32, true)
    view.setUint32(VirtioBlkConfig.CAPACITY + 4, Math.floor(sectors / 2 ** 32), true)
    view.setUint32(VirtioBlkConfig.SIZE_MAX, VIRTIO_BLK_SIZE_MAX, true)
    view.setUint32(VirtioBlkConfig.SEG_MAX, this.segMax, true)
    view.setUint32(VirtioBlkConfig.BLK_SIZE, SECTOR_SIZE, true)
    return bytes
  }

  readConfig(offset: number, size: AccessSize): number {
    return readConfigBytes(this.config(), offset, size)
  }

  /** The block config space is read-only without CONFIG_WCE: writes are ignored. */
  writeConfig(): void {}

  reset(): void {}

  queueNotify(index: number): void {
    if (index !== VIRTIO_BLK_REQUEST_QUEUE) return
    const vq = this.transport?.queue(index)
    if (vq === undefined) return
    let completed = 0
    for (let chain = vq.pop(); chain !== undefined; chain = vq.pop()) {
      if (!this.serve(vq, chain)) break
      completed++
    }
    if (completed > 0) this.transport?.signalUsed(index)
  }

  /** Serve one request and return its chain; false if the queue broke. */
  private serve(vq: Virtqueue, chain: DescriptorChain): boolean {
    this.counters.requests++
    if (chain.readableLength < VIRTIO_BLK_HEADER_SIZE) {
      vq.fail(`request at head ${chain.head}: header shorter than ${VIRTIO_BLK_HEADER_SIZE} bytes`)
      return false
    }
    if (chain.writableLength < 1) {
      vq.fail(`request at head ${chain.head}: no writable status byte`)
      return false
    }
    const header = vq.readFrom(chain, 0, VIRTIO_BLK_HEADER_SIZE)
    if (header === undefined) return false
    const h = new DataView(header.buffer)
    const type = h.getUint32(0, true)
    const sector = h.getUint32(8, true) + h.getUint32(12, true) * 2 ** 32
    const inLength = chain.writableLength - 1
    const statusAt = chain.writableLength - 1
    let status: number = VirtioBlkStatus.OK
    let written = 0
    switch (type) {
      case VirtioBlkType.IN: {
        const count = this.checkRange(sector, inLength)
        const data = count === undefined ? undefined : count === 0 ? new Uint8Array(0) : this.store.read(sector, count)
        if (data === undefined || data.length !== inLength) {
          status = VirtioBlkStatus.IOERR
          break
        }
        if (!vq.writeTo(chain, 0, data)) return false
        this.counters.reads++
        this.counters.bytesRead += inLength
        written = inLength
        break
      }
      case VirtioBlkType.OUT: {
        const outLength = chain.readableLength - VIRTIO_BLK_HEADER_SIZE
        const count = this.readOnly ? undefined : this.checkRange(sector, outLength)
        if (count === undefined) {
          status = VirtioBlkStatus.IOERR
          break
        }
        const data = vq.readFrom(chain, VIRTIO_BLK_HEADER_SIZE, outLength)
        if (data === undefined) return false
        if (count > 0 && !this.store.write(sector, data)) {
          status = VirtioBlkStatus.IOERR
          break
        }
        this.counters.writes++
        this.counters.bytesWritten += outLength
        break
      }
      case VirtioBlkType.FLUSH:
        this.counters.flushes++
        if (!this.store.flush()) status = VirtioBlkStatus.IOERR
        break
      case VirtioBlkType.GET_ID: {
        const n = Math.min(VIRTIO_BLK_ID_BYTES, inLength)
        if (!vq.writeTo(chain, 0, this.id.subarray(0, n))) return false
        written = n
        break
      }
      default:
        status = VirtioBlkStatus.UNSUPP
    }
    if (status === VirtioBlkStatus.IOERR) this.errors.ioErrors++
    if (status === VirtioBlkStatus.UNSUPP) this.errors.unsupported++
    if (!vq.writeTo(chain, statusAt, Uint8Array.of(status))) return false
    return vq.push(chain, written + 1)
  }

  /** The sector count of a `bytes`-long transfer at `sector`, or undefined if it is not allowed (IOERR). */
  private checkRange(sector: number, bytes: number): number | undefined {
    if (bytes % SECTOR_SIZE !== 0 || bytes > this.maxRequestBytes) return undefined
    const count = bytes / SECTOR_SIZE
    const capacity = Math.max(0, Math.floor(this.store.sectors))
    return sector <= capacity && count <= capacity - sector ? count : undefined
  }
}

/** An in-memory BlockStore (tests, scratch disks): `data` is the whole disk; counts flushes. */
export const memoryBlockStore = (sectors: number): BlockStore & { readonly data: Uint8Array; flushes: number } => {
  const data = new Uint8Array(sectors * SECTOR_SIZE)
  const ok = (sector: number, count: number) =>
    Number.isSafeInteger(sector) &&
    Number.isSafeInteger(count) &&
    sector >= 0 &&
    count >= 0 &&
    sector + count <= sectors
  const store = {
    sectors,
    data,
    flushes: 0,
    read: (sector: number, count: number) =>
      ok(sector, count) ? data.slice(sector * SECTOR_SIZE, (sector + count) * SECTOR_SIZE) : undefined,
    write: (sector: number, bytes: Uint8Array) => {
      if (bytes.length % SECTOR_SIZE !== 0 || !ok(sector, bytes.length / SECTOR_SIZE)) return false
      data.set(bytes, sector * SECTOR_SIZE)
      return true
    },
    flush: () => {
      store.flushes++
      return true
    }
  }
  return store
}
