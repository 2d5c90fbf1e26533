/**
 * A tiny virtio driver for the virtio tests and the fuzz suite `virtio`
 * (scripts/fuzz/suites/virtio.ts): TypeScript in the role of the guest
 * kernel, over a Uint8Array "guest RAM" exposed as GuestMemory. It follows
 * the driver side of OASIS virtio 1.1: 3.1.1 (initialization), 4.2.3
 * (virtio-mmio queue setup and notification), 2.6.13 (supplying buffers),
 * 2.6.14 (receiving used buffers).
 *
 * Guest RAM sits inside a larger backing buffer between two canary areas, so
 * a device that wrote outside the guest's RAM would be caught; every device
 * write is logged (gpa, length) and refused writes are counted.
 *
 * No test framework here (scripts/ may not import one): a step the device
 * does not accept throws a plain Error naming it.
 */
import { VirtioReg as R, VirtioFeature, type VirtioMmio, VirtioStatus } from "../../../vmm/virtio/mmio.ts"
import { type GuestMemory, VirtqDesc } from "../../../vmm/virtio/virtqueue.ts"

/** Throw a plain Error with `message` unless `condition` holds. */
export const must = (condition: unknown, message: string): void => {
  if (!condition) throw new Error(message)
}

export const RAM_SIZE = 256 * 1024
const CANARY = 4096

export interface Guest {
  readonly ram: Uint8Array
  readonly view: DataView
  readonly memory: GuestMemory
  /** Every write the device made: [gpa, length]. */
  readonly writes: Array<readonly [number, number]>
  /** Writes GuestMemory refused (out of range). */
  readonly refused: { count: number }
  /** Called with every write GuestMemory accepts, before RAM changes (an oracle may look at RAM as the device saw it). */
  beforeWrite: ((gpa: number, length: number) => void) | undefined
  /** Whether the canaries around guest RAM are intact. */
  canariesIntact(): boolean
}

export const makeGuest = (size = RAM_SIZE): Guest => {
  const backing = new Uint8Array(size + 2 * CANARY).fill(0xa5)
  const ram = backing.subarray(CANARY, CANARY + size)
  ram.fill(0)
  const writes: Array<readonly [number, number]> = []
  const refused = { count: 0 }
  const inRange = (gpa: number, length: number) =>
    Number.isSafeInteger(gpa) && Number.isSafeInteger(length) && gpa >= 0 && length >= 0 && gpa + length <= size
  const guest: Guest = {
    ram,
    view: new DataView(ram.buffer, ram.byteOffset, ram.byteLength),
    writes,
    refused,
    beforeWrite: undefined,
    memory: {
      read: (gpa, length) => (inRange(gpa, length) ? ram.slice(gpa, gpa + length) : undefined),
      write: (gpa, bytes) => {
        if (!inRange(gpa, bytes.length)) {
          refused.count++
          return false
        }
        guest.beforeWrite?.(gpa, bytes.length)
        writes.push([gpa, bytes.length])
        ram.set(bytes, gpa)
        return true
      }
    },
    canariesIntact: () =>
      backing.subarray(0, CANARY).every((b) => b === 0xa5) && backing.subarray(CANARY + size).every((b) => b === 0xa5)
  }
  return guest
}

export interface Buffer {
  readonly addr: number
  readonly len: number
  readonly write?: boolean
}

/** One split virtqueue, driver side. Areas: desc at base, avail at base + 0x1000, used at base + 0x2000. */
export class DriverQueue {
  readonly guest: Guest
  readonly index: number
  readonly size: number
  readonly desc: number
  readonly avail: number
  readonly used: number
  private free: Array<number>
  private readonly chains = new Map<number, Array<number>>()
  private availIdx = 0
  private lastUsed = 0

  constructor(guest: Guest, index: number, size: number, base: number) {
    this.guest = guest
    this.index = index
    this.size = size
    this.desc = base
    this.avail = base + 0x1000
    this.used = base + 0x2000
    this.free = Array.from({ length: size }, (_, i) => i)
  }

  setDesc(i: number, addr: number, len: number, flags: number, next: number, table = this.desc): void {
    const v = this.guest.view
    const at = table + 16 * i
    v.setUint32(at, addr % 2 ** 32, true)
    v.setUint32(at + 4, Math.floor(addr / 2 ** 32), true)
    v.setUint32(at + 8, len >>> 0, true)
    v.setUint16(at + 12, flags, true)
    v.setUint16(at + 14, next, true)
  }

  /** Publish a head in the available ring (does not notify). */
  publish(head: number): void {
    this.guest.view.setUint16(this.avail + 4 + 2 * (this.availIdx % this.size), head, true)
    this.availIdx = (this.availIdx + 1) & 0xffff
    this.guest.view.setUint16(this.avail + 2, this.availIdx, true)
  }

  setAvailIdx(idx: number): void {
    this.availIdx = idx & 0xffff
    this.guest.view.setUint16(this.avail + 2, this.availIdx, true)
  }

  /** Put a chain of buffers in the table and publish it; returns the head. */
  submit(buffers: ReadonlyArray<Buffer>): number {
    if (buffers.length > this.free.length) throw new Error("driver: out of descriptors")
    const ids = this.free.splice(0, buffers.length)
    buffers.forEach((b, k) => {
      const last = k === buffers.length - 1
      this.setDesc(
        ids[k]!,
        b.addr,
        b.len,
        (b.write ? VirtqDesc.WRITE : 0) | (last ? 0 : VirtqDesc.NEXT),
        last ? 0 : ids[k + 1]!
      )
    })
    this.chains.set(ids[0]!, ids)
    this.publish(ids[0]!)
    return ids[0]!
  }

  /** Put a chain in an indirect table at `table` and publish one INDIRECT descriptor for it. */
  submitIndirect(buffers: ReadonlyArray<Buffer>, table: number): number {
    buffers.forEach((b, k) => {
      const last = k === buffers.length - 1
      this.setDesc(
        k,
        b.addr,
        b.len,
        (b.write ? VirtqDesc.WRITE : 0) | (last ? 0 : VirtqDesc.NEXT),
        last ? 0 : k + 1,
        table
      )
    })
    const [id] = this.free.splice(0, 1)
    this.setDesc(id!, table, 16 * buffers.length, VirtqDesc.INDIRECT, 0)
    this.chains.set(id!, [id!])
    this.publish(id!)
    return id!
  }

  /** Descriptors not in flight. */
  get freeCount(): number {
    return this.free.length
  }

  usedIdx(): number {
    return this.guest.view.getUint16(this.used + 2, true)
  }

  /** Used elements since the last call, their descriptors freed. */
  collect(): Array<{ id: number; len: number }> {
    const out: Array<{ id: number; len: number }> = []
    const end = this.usedIdx()
    while (this.lastUsed !== end) {
      const at = this.used + 4 + 8 * (this.lastUsed % this.size)
      const id = this.guest.view.getUint32(at, true)
      out.push({ id, len: this.guest.view.getUint32(at + 4, true) })
      const ids = this.chains.get(id)
      if (ids) {
        this.free.push(...ids)
        this.chains.delete(id)
      }
      this.lastUsed = (this.lastUsed + 1) & 0xffff
    }
    return out
  }

  /** Set avail.flags (bit 0: no interrupts please). */
  setAvailFlags(flags: number): void {
    this.guest.view.setUint16(this.avail, flags, true)
  }
}

export class Driver {
  readonly queues: Array<DriverQueue> = []
  readonly dev: VirtioMmio
  readonly guest: Guest

  constructor(dev: VirtioMmio, guest: Guest) {
    this.dev = dev
    this.guest = guest
  }

  r(offset: number): number {
    return this.dev.read(offset, 4)
  }

  w(offset: number, value: number): void {
    this.dev.write(offset, 4, value)
  }

  get status(): number {
    return this.r(R.STATUS)
  }

  deviceFeatures(): bigint {
    this.w(R.DEVICE_FEATURES_SEL, 0)
    const lo = this.r(R.DEVICE_FEATURES)
    this.w(R.DEVICE_FEATURES_SEL, 1)
    const hi = this.r(R.DEVICE_FEATURES)
    return (BigInt(hi) << 32n) | BigInt(lo)
  }

  writeDriverFeatures(features: bigint): void {
    this.w(R.DRIVER_FEATURES_SEL, 0)
    this.w(R.DRIVER_FEATURES, Number(features & 0xffffffffn))
    this.w(R.DRIVER_FEATURES_SEL, 1)
    this.w(R.DRIVER_FEATURES, Number((features >> 32n) & 0xffffffffn))
  }

  /** 3.1.1 steps 1-6: reset, ACKNOWLEDGE, DRIVER, features, FEATURES_OK (checked). Returns the accepted features. */
  negotiate(want: bigint = VirtioFeature.VERSION_1): bigint {
    this.w(R.STATUS, 0)
    this.w(R.STATUS, VirtioStatus.ACKNOWLEDGE)
    this.w(R.STATUS, VirtioStatus.ACKNOWLEDGE | VirtioStatus.DRIVER)
    const accepted = this.deviceFeatures() & want
    this.writeDriverFeatures(accepted)
    this.w(R.STATUS, this.status | VirtioStatus.FEATURES_OK)
    must(this.status & VirtioStatus.FEATURES_OK, `FEATURES_OK did not stick (status 0x${this.status.toString(16)})`)
    return accepted
  }

  /** 4.2.3.2: set up queue `index` of `size` at `base` in guest RAM. */
  setupQueue(index: number, size: number, base: number): DriverQueue {
    this.w(R.QUEUE_SEL, index)
    must(this.r(R.QUEUE_READY) === 0, `queue ${index} is already ready`)
    must(this.r(R.QUEUE_NUM_MAX) >= size, `queue ${index}: QueueNumMax ${this.r(R.QUEUE_NUM_MAX)} < ${size}`)
    const q = new DriverQueue(this.guest, index, size, base)
    this.guest.ram.fill(0, base, base + 0x3000) // fresh, zeroed rings
    this.w(R.QUEUE_NUM, size)
    this.w(R.QUEUE_DESC_LOW, q.desc)
    this.w(R.QUEUE_DESC_HIGH, 0)
    this.w(R.QUEUE_DRIVER_LOW, q.avail)
    this.w(R.QUEUE_DRIVER_HIGH, 0)
    this.w(R.QUEUE_DEVICE_LOW, q.used)
    this.w(R.QUEUE_DEVICE_HIGH, 0)
    this.w(R.QUEUE_READY, 1)
    this.queues[index] = q
    return q
  }

  driverOk(): void {
    this.w(R.STATUS, this.status | VirtioStatus.DRIVER_OK)
  }

  /** The whole sequence: negotiate, `count` queues of `size` (at 0x1000 + 0x3000 * i), DRIVER_OK. */
  init(count: number, size = 16, want: bigint = VirtioFeature.VERSION_1): bigint {
    const accepted = this.negotiate(want)
    for (let i = 0; i < count; i++) this.setupQueue(i, size, 0x1000 + 0x3000 * i)
    this.driverOk()
    const ready = VirtioStatus.ACKNOWLEDGE | VirtioStatus.DRIVER | VirtioStatus.FEATURES_OK | VirtioStatus.DRIVER_OK
    must(this.status === ready, `status after init is 0x${this.status.toString(16)}, not 0x${ready.toString(16)}`)
    return accepted
  }

  kick(index: number): void {
    this.w(R.QUEUE_NOTIFY, index)
  }

  /** Read and acknowledge the interrupt status. */
  ack(): number {
    const s = this.r(R.INTERRUPT_STATUS)
    this.w(R.INTERRUPT_ACK, s)
    return s
  }
}

/** Whether every logged write lies inside one of `regions` ([start, end)). */
export const writesWithin = (guest: Guest, regions: ReadonlyArray<readonly [number, number]>): boolean =>
  guest.writes.every(([gpa, len]) => regions.some(([start, end]) => gpa >= start && gpa + len <= end))
