/**
 * Split virtqueues, the device side (OASIS "Virtual I/O Device (VIRTIO)
 * Version 1.1", section 2.6 "Split Virtqueues"; 2.6.5 "The Virtqueue
 * Descriptor Table", 2.6.5.3 "Indirect Descriptors", 2.6.6 "The Virtqueue
 * Available Ring", 2.6.8 "The Virtqueue Used Ring", 2.6.7 "Used Buffer
 * Notification Suppression").
 *
 * Three areas in guest memory, for a queue of size Q (a power of two):
 *
 *   descriptor table  16 * Q bytes, 16-aligned   { le64 addr; le32 len; le16 flags; le16 next }
 *   available ring    6 + 2 * Q,    2-aligned    { le16 flags; le16 idx; le16 ring[Q]; le16 used_event }
 *   used ring         6 + 8 * Q,    4-aligned    { le16 flags; le16 idx; {le32 id; le32 len} ring[Q]; le16 avail_event }
 *
 * The driver publishes chain heads in the available ring and bumps avail.idx;
 * the device takes them in order (its own shadow `lastAvail`), walks each
 * chain (NEXT), and returns it in the used ring with the number of bytes it
 * wrote, then bumps used.idx (its own shadow, never read back from the guest).
 *
 * Guest memory is reached only through `GuestMemory`, which the VMM supplies
 * (guest-physical -> the VM's own frames; undefined/false outside its RAM).
 * The guest owns the rings and may write anything into them at any time, so
 * everything read from them is checked before use. A ring that breaks the
 * rules makes the queue *broken*: it stops (pop returns undefined forever,
 * nothing more is written) and `onError` tells the transport, which sets
 * DEVICE_NEEDS_RESET (section 2.1.2). The checks:
 *
 * - avail.idx may run ahead of lastAvail by at most Q (else "avail idx jump");
 * - a head or `next` index must be < Q (< the table length inside an
 *   indirect table);
 * - a chain may visit at most Q descriptors (the table length for an indirect
 *   table): a longer walk is a loop (2.6.5.2: "MUST NOT create a descriptor
 *   chain longer than the Queue Size");
 * - every buffer must lie in guest RAM: addr + len a safe integer, and its
 *   first and last bytes readable through GuestMemory (the copy itself is
 *   checked again when it happens); the chain's total length must fit in
 *   32 bits (used.len is 32 bits), so huge lengths fail here, before any
 *   copy is attempted;
 * - device-writable descriptors must come after all device-readable ones
 *   (2.6.4.2);
 * - indirect descriptors (VIRTIO_F_INDIRECT_DESC, optional, offered by the
 *   transport): only as the chain's head, never with NEXT, len a non-zero
 *   multiple of 16 and at most MAX_INDIRECT entries, no INDIRECT inside an
 *   indirect table (2.6.5.3.1);
 * - any read or write of the rings that GuestMemory refuses.
 *
 * VIRTIO_F_EVENT_IDX is not offered: notification suppression is the plain
 * avail.flags NO_INTERRUPT bit (2.6.7.1), and the device never sets
 * used.flags NO_NOTIFY (notifications are synchronous and cheap here).
 *
 * Never throws; allocates per chain (a small record and the buffer list).
 */

/** Guest-physical memory as the VMM exposes it to a virtual device. */
export interface GuestMemory {
  /** Copy `length` bytes at guest-physical `gpa`; undefined if any byte is outside the VM's RAM. */
  read(gpa: number, length: number): Uint8Array | undefined
  /** Copy `bytes` to guest-physical `gpa`; false (and nothing written) if any byte is outside the VM's RAM. */
  write(gpa: number, bytes: Uint8Array): boolean
}

/** Largest split-queue size (2.6: "The maximum Queue Size value is 32768"). */
export const MAX_QUEUE_SIZE = 32768
/** Largest indirect table accepted, in descriptors (QEMU's VIRTQUEUE_MAX_SIZE). */
export const MAX_INDIRECT = 1024

export const DESC_SIZE = 16

/** Descriptor flags (2.6.5). */
export const VirtqDesc = {
  NEXT: 1,
  WRITE: 2,
  INDIRECT: 4
} as const

/** avail.flags: the driver does not want used-buffer notifications (2.6.7). */
export const VIRTQ_AVAIL_F_NO_INTERRUPT = 1

/** Where a queue's three areas are, as the driver programmed them. */
export interface VirtqueueLayout {
  readonly size: number
  readonly desc: number
  readonly avail: number
  readonly used: number
}

export const descTableBytes = (size: number) => DESC_SIZE * size
export const availRingBytes = (size: number) => 6 + 2 * size
export const usedRingBytes = (size: number) => 6 + 8 * size

/** One buffer of a chain, in guest-physical memory. */
export interface ChainBuffer {
  readonly addr: number
  readonly len: number
}

/** A descriptor chain taken from the available ring. */
export interface DescriptorChain {
  /** The head index, returned in the used ring. */
  readonly head: number
  /** Device-readable buffers, in order (zero-length descriptors skipped). */
  readonly readable: ReadonlyArray<ChainBuffer>
  /** Device-writable buffers, in order. */
  readonly writable: ReadonlyArray<ChainBuffer>
  readonly readableLength: number
  readonly writableLength: number
}

export interface VirtqueueOptions {
  readonly memory: GuestMemory
  readonly layout: VirtqueueLayout
  /** VIRTIO_F_INDIRECT_DESC was negotiated. */
  readonly indirect: boolean
  /** The queue broke (hostile or corrupt ring); called once. */
  readonly onError: (reason: string) => void
}

const isPowerOfTwo = (n: number) => n > 0 && (n & (n - 1)) === 0
const MAX_GPA = 2 ** 64

/** Why a layout cannot be used as a queue, or undefined if it is fine (2.6: sizes and alignments). */
export const layoutProblem = (layout: VirtqueueLayout, maxSize: number, memory: GuestMemory): string | undefined => {
  const { size, desc, avail, used } = layout
  if (!Number.isInteger(size) || !isPowerOfTwo(size) || size > maxSize || size > MAX_QUEUE_SIZE)
    return `queue size ${size} is not a power of two in 1..${Math.min(maxSize, MAX_QUEUE_SIZE)}`
  if (desc % 16 !== 0) return "descriptor table not 16-byte aligned"
  if (avail % 2 !== 0) return "available ring not 2-byte aligned"
  if (used % 4 !== 0) return "used ring not 4-byte aligned"
  const areas: ReadonlyArray<readonly [string, number, number]> = [
    ["descriptor table", desc, descTableBytes(size)],
    ["available ring", avail, availRingBytes(size)],
    ["used ring", used, usedRingBytes(size)]
  ]
  for (const [what, addr, len] of areas) {
    if (!inGuest(memory, addr, len)) return `${what} outside guest memory`
  }
  return undefined
}

/** Whether [addr, addr + len) is (at both ends) inside guest memory; len 0 is always fine. */
const inGuest = (memory: GuestMemory, addr: number, len: number): boolean => {
  if (len === 0) return true
  if (!Number.isSafeInteger(addr) || !Number.isSafeInteger(addr + len) || addr < 0 || addr + len > MAX_GPA) return false
  return memory.read(addr, 1) !== undefined && memory.read(addr + len - 1, 1) !== undefined
}

const u16 = (b: Uint8Array, at: number) => b[at]! | (b[at + 1]! << 8)
const u32 = (b: Uint8Array, at: number) => (b[at]! | (b[at + 1]! << 8) | (b[at + 2]! << 16) | (b[at + 3]! << 24)) >>> 0

export class Virtqueue {
  readonly size: number
  readonly layout: VirtqueueLayout
  private readonly memory: GuestMemory
  private readonly indirect: boolean
  private readonly onError: (reason: string) => void
  /** The next available-ring slot the device will take (free-running, mod 2^16). */
  private lastAvail = 0
  /** The device's used.idx (free-running, mod 2^16); never read back from the guest. */
  private usedIdx = 0
  private brokenReason: string | undefined

  constructor(options: VirtqueueOptions) {
    this.memory = options.memory
    this.layout = options.layout
    this.size = options.layout.size
    this.indirect = options.indirect
    this.onError = options.onError
  }

  /** Why the queue stopped, or undefined while it works. */
  get broken(): string | undefined {
    return this.brokenReason
  }

  /** Chains taken so far (mod 2^16). */
  get taken(): number {
    return this.lastAvail
  }

  /** Chains returned so far (mod 2^16). */
  get returned(): number {
    return this.usedIdx
  }

  /** Stop the queue for good (until the device is reset) and report why. */
  fail(reason: string): void {
    if (this.brokenReason !== undefined) return
    this.brokenReason = reason
    this.onError(reason)
  }

  private read16(gpa: number, what: string): number | undefined {
    const b = this.memory.read(gpa, 2)
    if (b === undefined) this.fail(`${what} unreadable at 0x${gpa.toString(16)}`)
    return b === undefined ? undefined : u16(b, 0)
  }

  /** Whether the driver has posted chains the device has not taken; undefined once broken. */
  hasAvailable(): boolean {
    if (this.brokenReason !== undefined) return false
    const idx = this.read16(this.layout.avail + 2, "avail.idx")
    if (idx === undefined) return false
    const pending = (idx - this.lastAvail) & 0xffff
    if (pending > this.size) {
      this.fail(`avail.idx ${idx} is ${pending} ahead of ${this.lastAvail}, more than the queue size ${this.size}`)
      return false
    }
    return pending > 0
  }

  /** Take the next available chain; undefined if there is none or the queue is (now) broken. */
  pop(): DescriptorChain | undefined {
    if (!this.hasAvailable()) return undefined
    const slot = this.lastAvail % this.size
    const head = this.read16(this.layout.avail + 4 + 2 * slot, "avail.ring")
    if (head === undefined) return undefined
    if (head >= this.size) {
      this.fail(`avail.ring[${slot}] = ${head} is not below the queue size ${this.size}`)
      return undefined
    }
    const chain = this.walk(head)
    if (chain === undefined) return undefined
    this.lastAvail = (this.lastAvail + 1) & 0xffff
    return chain
  }

  /** Walk the chain at `head`, checking every descriptor (see the header). */
  private walk(head: number): DescriptorChain | undefined {
    const readable: Array<ChainBuffer> = []
    const writable: Array<ChainBuffer> = []
    let readableLength = 0
    let writableLength = 0
    let table = this.layout.desc
    let tableSize = this.size
    let inIndirect = false
    let index = head
    let steps = 0
    for (;;) {
      if (++steps > tableSize) {
        this.fail(`descriptor chain at head ${head} is longer than ${tableSize} (a loop)`)
        return undefined
      }
      const d = this.memory.read(table + DESC_SIZE * index, DESC_SIZE)
      if (d === undefined) {
        this.fail(`descriptor ${index} unreadable`)
        return undefined
      }
      const addr = u32(d, 0) + u32(d, 4) * 2 ** 32
      const len = u32(d, 8)
      const flags = u16(d, 12)
      const next = u16(d, 14)
      if (flags & VirtqDesc.INDIRECT) {
        const problem = !this.indirect
          ? "indirect descriptor without VIRTIO_F_INDIRECT_DESC"
          : inIndirect
            ? "indirect descriptor inside an indirect table"
            : steps !== 1
              ? "indirect descriptor not at the head of its chain"
              : flags & VirtqDesc.NEXT
                ? "indirect descriptor with NEXT"
                : len === 0 || len % DESC_SIZE !== 0 || len / DESC_SIZE > MAX_INDIRECT
                  ? `indirect table length ${len} is not a multiple of 16 in 16..${MAX_INDIRECT * DESC_SIZE}`
                  : !inGuest(this.memory, addr, len)
                    ? "indirect table outside guest memory"
                    : undefined
        if (problem !== undefined) {
          this.fail(`descriptor ${index}: ${problem}`)
          return undefined
        }
        table = addr
        tableSize = len / DESC_SIZE
        inIndirect = true
        index = 0
        steps = 0
        continue
      }
      if (len > 0) {
        if (!inGuest(this.memory, addr, len)) {
          this.fail(`descriptor ${index}: buffer 0x${addr.toString(16)}+${len} outside guest memory`)
          return undefined
        }
        if (flags & VirtqDesc.WRITE) {
          writable.push({ addr, len })
          writableLength += len
        } else {
          if (writable.length > 0) {
            this.fail(`descriptor ${index}: device-readable buffer after a device-writable one`)
            return undefined
          }
          readable.push({ addr, len })
          readableLength += len
        }
        if (readableLength + writableLength > 0xffffffff) {
          this.fail(`descriptor chain at head ${head} is longer than 2^32 - 1 bytes`)
          return undefined
        }
      }
      if (!(flags & VirtqDesc.NEXT)) break
      if (next >= tableSize) {
        this.fail(`descriptor ${index}: next ${next} is not below ${tableSize}`)
        return undefined
      }
      index = next
    }
    return { head, readable, writable, readableLength, writableLength }
  }

  /** Return a chain to the driver: used.ring[usedIdx] = { head, written }, then used.idx++. */
  push(chain: DescriptorChain, written: number): boolean {
    if (this.brokenReason !== undefined) return false
    const slot = this.usedIdx % this.size
    const elem = new Uint8Array(8)
    const view = new DataView(elem.buffer)
    view.setUint32(0, chain.head, true)
    view.setUint32(4, Math.max(0, Math.min(written, chain.writableLength)) >>> 0, true)
    const next = (this.usedIdx + 1) & 0xffff
    if (
      !this.memory.write(this.layout.used + 4 + 8 * slot, elem) ||
      !this.memory.write(this.layout.used + 2, Uint8Array.of(next & 0xff, next >>> 8))
    ) {
      this.fail("used ring unwritable")
      return false
    }
    this.usedIdx = next
    return true
  }

  /** Whether the driver wants a used-buffer notification now (avail.flags, 2.6.7.1). */
  wantsInterrupt(): boolean {
    const b = this.memory.read(this.layout.avail, 2)
    return b === undefined || (u16(b, 0) & VIRTQ_AVAIL_F_NO_INTERRUPT) === 0
  }

  /**
   * Gather `length` bytes starting `offset` bytes into the chain's readable
   * buffers; undefined if the chain is shorter, or (queue broken) if guest
   * memory refuses.
   */
  readFrom(chain: DescriptorChain, offset: number, length: number): Uint8Array | undefined {
    if (offset < 0 || length < 0 || offset + length > chain.readableLength) return undefined
    return this.copy(chain.readable, offset, length, undefined)
  }

  /**
   * Scatter `bytes` starting `offset` bytes into the chain's writable
   * buffers; false if they do not fit, or (queue broken) if guest memory refuses.
   */
  writeTo(chain: DescriptorChain, offset: number, bytes: Uint8Array): boolean {
    if (offset < 0 || offset + bytes.length > chain.writableLength) return false
    return this.copy(chain.writable, offset, bytes.length, bytes) !== undefined
  }

  private copy(
    buffers: ReadonlyArray<ChainBuffer>,
    offset: number,
    length: number,
    source: Uint8Array | undefined
  ): Uint8Array | undefined {
    const out = source ?? new Uint8Array(length)
    let skip = offset
    let done = 0
    for (const b of buffers) {
      if (done === length) break
      if (skip >= b.len) {
        skip -= b.len
        continue
      }
      const n = Math.min(b.len - skip, length - done)
      const gpa = b.addr + skip
      if (source === undefined) {
        const part = this.memory.read(gpa, n)
        if (part === undefined) {
          this.fail(`buffer 0x${gpa.toString(16)}+${n} unreadable`)
          return undefined
        }
        out.set(part, done)
      } else if (!this.memory.write(gpa, source.subarray(done, done + n))) {
        this.fail(`buffer 0x${gpa.toString(16)}+${n} unwritable`)
        return undefined
      }
      skip = 0
      done += n
    }
    return out
  }
}
