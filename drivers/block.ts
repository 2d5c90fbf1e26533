/**
 * Driver for the fvblk DMA block controller (the datastore disk), following
 * its datasheet, revision 1.0 (hw/devices/block/registers.ts): "Registers"
 * (MAGIC/VERSION probe, CAPACITY, MAX_COUNT, RING_BASE/RING_SIZE, DOORBELL,
 * COMPLETION, INT_STATUS write-1-to-clear, STATUS.FAULT, RESET),
 * "Descriptor" (16 bytes: opcode, status, sector, count, buffer) and
 * "Timing" (in-order completion, a fixed virtual service time per request).
 *
 * Memory: one frame holds the descriptor ring (`queueDepth` x 16 bytes) and
 * each ring slot owns one bounce frame of 4 KiB, so a descriptor moves at
 * most 8 sectors. Frames come from the kernel's allocator through the
 * `allocFrame` callback (a frame number, as kernel/memory's allocator hands
 * them out: machine-physical address / 4096); frames need not be contiguous.
 *
 * A request of N sectors is split into ceil(N / 8) descriptors, posted in
 * batches of at most `queueDepth` with one DOORBELL write per batch.
 * Completion is polled (INT_MASK = 0, the IRQ line stays low): the driver
 * advances virtual time from device deadline to device deadline until
 * COMPLETION reaches the producer index, bounded by the time the batch can
 * take (requests x SERVICE_NS, plus slack); other devices are ticked at
 * their own deadlines on the way, as time passes for them too. Then it
 * reads each descriptor's status and acknowledges INT_STATUS. A controller that halts
 * (STATUS.FAULT) is reported with its FAULT_CODE; the next request resets
 * it. Bad arguments are rejected before the device is touched.
 *
 * Invariants: the producer index only moves by DOORBELL writes of at most
 * `queueDepth` beyond COMPLETION; a posted descriptor and its bounce frame
 * are not touched until COMPLETION has passed it.
 */
import {
  BlockInt,
  BlockOpcode,
  BlockReg,
  BlockStatus,
  DESCRIPTOR_SIZE,
  Desc,
  FaultCode,
  FVBLK_MAGIC,
  FVBLK_VERSION,
  SECTOR_SIZE,
  Status
} from "../hw/devices/block/registers.ts"
import { FVBLK_BASE } from "../hw/machine/machine.ts"
import { err, FRAME_SIZE, frameAddress, ok, type Platform, type Result, stepTime } from "./platform.ts"

export { SECTOR_SIZE }

/** Sectors one bounce frame holds: the most a single descriptor moves. */
export const SECTORS_PER_FRAME = FRAME_SIZE / SECTOR_SIZE
/** The status value the driver writes before posting; a completed descriptor never holds it. */
const STATUS_PENDING = 0xffff

export type BlockOp = "read" | "write" | "flush"

export type BlockError =
  | { readonly _tag: "NoDevice"; readonly base: number; readonly magic: number; readonly version: number }
  | { readonly _tag: "BadFrame"; readonly frame: number }
  | { readonly _tag: "BadQueueDepth"; readonly depth: number }
  | { readonly _tag: "OutOfRange"; readonly sector: number; readonly count: number; readonly capacity: number }
  | { readonly _tag: "BadLength"; readonly length: number }
  | {
      readonly _tag: "RequestFailed"
      readonly op: BlockOp
      readonly sector: number
      readonly count: number
      readonly status: number
      readonly reason: string
    }
  | { readonly _tag: "ControllerFault"; readonly code: number; readonly reason: string }
  | { readonly _tag: "Timeout"; readonly waitedNs: number; readonly completed: number; readonly posted: number }

const statusNames: Record<number, string> = {
  [Status.Ok]: "ok",
  [Status.BadOpcode]: "bad opcode",
  [Status.BadCount]: "bad sector count",
  [Status.OutOfRange]: "sector range outside the disk",
  [Status.BadBuffer]: "buffer outside machine RAM",
  [Status.IoError]: "host I/O error"
}
const faultNames: Record<number, string> = {
  [FaultCode.RingSize]: "ring size not a power of two in 1..1024",
  [FaultCode.RingBase]: "ring misaligned or outside RAM",
  [FaultCode.Doorbell]: "doorbell index out of bounds"
}

/** A human-readable line for a block error. */
export const describeBlockError = (e: BlockError): string => {
  switch (e._tag) {
    case "NoDevice":
      return `no fvblk controller at 0x${e.base.toString(16)} (magic 0x${e.magic.toString(16)}, version 0x${e.version.toString(16)})`
    case "BadFrame":
      return `allocFrame returned ${e.frame}: not the number of a frame inside RAM`
    case "BadQueueDepth":
      return `queue depth ${e.depth} is not a power of two in 1..256`
    case "OutOfRange":
      return `sectors ${e.sector}+${e.count} are outside the disk (${e.capacity} sectors)`
    case "BadLength":
      return `a write of ${e.length} bytes is not a whole, non-zero number of 512-byte sectors`
    case "RequestFailed":
      return `${e.op} of sectors ${e.sector}+${e.count} failed: ${e.reason} (status ${e.status})`
    case "ControllerFault":
      return `the controller halted: ${e.reason} (fault code ${e.code})`
    case "Timeout":
      return `no completion after ${e.waitedNs} ns of virtual time (${e.completed}/${e.posted} done)`
  }
}

export interface BlockOptions {
  /** MMIO base (default 0xFEB00000; the firmware table names it). */
  readonly base?: number
  /** A free 4 KiB machine frame, by frame number (machine-physical address / 4096). */
  readonly allocFrame: () => number
  /** Descriptors in flight per batch and bounce frames: a power of two, 1..256 (default 16). */
  readonly queueDepth?: number
}

interface Chunk {
  readonly sector: number
  readonly count: number
  /** Offset of this chunk in the caller's data. */
  readonly offset: number
}

export class BlockDriver {
  readonly base: number
  /** Disk size in sectors. */
  readonly capacity: number
  /** Virtual ns the controller takes per request. */
  readonly serviceNs: number
  readonly queueDepth: number
  private readonly platform: Platform
  private readonly view: DataView
  private readonly ring: number
  private readonly bounce: ReadonlyArray<number>
  private producer = 0
  /** Requests completed since open (statistics). */
  requests = 0

  private constructor(platform: Platform, base: number, ring: number, bounce: ReadonlyArray<number>) {
    this.platform = platform
    this.base = base
    this.ring = ring
    this.bounce = bounce
    this.queueDepth = bounce.length
    this.view = new DataView(platform.ram.buffer, platform.ram.byteOffset, platform.ram.byteLength)
    this.capacity = this.reg(BlockReg.CAPACITY)
    this.serviceNs = this.reg(BlockReg.SERVICE_NS)
  }

  /** Probe the controller, reset it, and give it a ring and bounce frames from `allocFrame`. */
  static open(platform: Platform, options: BlockOptions): Result<BlockDriver, BlockError> {
    const base = options.base ?? FVBLK_BASE
    const depth = options.queueDepth ?? 16
    if (!Number.isInteger(depth) || depth < 1 || depth > FRAME_SIZE / DESCRIPTOR_SIZE || (depth & (depth - 1)) !== 0)
      return err({ _tag: "BadQueueDepth", depth })
    const magic = platform.mmio.read(base + BlockReg.MAGIC, 4)
    const version = platform.mmio.read(base + BlockReg.VERSION, 4)
    if (magic !== FVBLK_MAGIC || version >>> 16 !== FVBLK_VERSION >>> 16)
      return err({ _tag: "NoDevice", base, magic, version })
    const frames: Array<number> = []
    for (let i = 0; i <= depth; i++) {
      const frame = options.allocFrame()
      const address = frameAddress(platform.ram, frame)
      if (address === undefined) return err({ _tag: "BadFrame", frame })
      frames.push(address)
    }
    const [ring, ...bounce] = frames
    const driver = new BlockDriver(platform, base, ring!, bounce)
    driver.reset()
    return ok(driver)
  }

  private reg(offset: number): number {
    return this.platform.mmio.read(this.base + offset, 4)
  }

  private setReg(offset: number, value: number): void {
    this.platform.mmio.write(this.base + offset, 4, value)
  }

  /** RESET the controller and program the ring again (polled mode: INT_MASK = 0). */
  private reset(): void {
    this.setReg(BlockReg.RESET, 1)
    this.platform.ram.fill(0, this.ring, this.ring + FRAME_SIZE)
    this.setReg(BlockReg.RING_BASE, this.ring)
    this.setReg(BlockReg.RING_SIZE, this.queueDepth)
    this.setReg(BlockReg.INT_MASK, 0)
    this.producer = 0
  }

  private fault(): BlockError | undefined {
    if ((this.reg(BlockReg.STATUS) & BlockStatus.Fault) === 0) return undefined
    const code = this.reg(BlockReg.FAULT_CODE)
    return { _tag: "ControllerFault", code, reason: faultNames[code] ?? "unknown fault" }
  }

  private checkRange(sector: number, count: number): BlockError | undefined {
    const fits =
      Number.isSafeInteger(sector) && Number.isSafeInteger(count) && sector >= 0 && count > 0
        ? sector + count <= this.capacity
        : false
    return fits ? undefined : { _tag: "OutOfRange", sector, count, capacity: this.capacity }
  }

  /** Read `count` sectors from `sector`. */
  read(sector: number, count: number): Result<Uint8Array, BlockError> {
    const bad = this.checkRange(sector, count)
    if (bad !== undefined) return err(bad)
    const out = new Uint8Array(count * SECTOR_SIZE)
    const done = this.transfer("read", BlockOpcode.Read, this.chunks(sector, count), out)
    return done.ok ? ok(out) : done
  }

  /** Write `data` (a whole number of sectors) at `sector`. */
  write(sector: number, data: Uint8Array): Result<void, BlockError> {
    if (data.length === 0 || data.length % SECTOR_SIZE !== 0) return err({ _tag: "BadLength", length: data.length })
    const count = data.length / SECTOR_SIZE
    const bad = this.checkRange(sector, count)
    if (bad !== undefined) return err(bad)
    return this.transfer("write", BlockOpcode.Write, this.chunks(sector, count), data)
  }

  /** Make earlier writes durable (a FLUSH descriptor). */
  flush(): Result<void, BlockError> {
    return this.transfer("flush", BlockOpcode.Flush, [{ sector: 0, count: 0, offset: 0 }], new Uint8Array(0))
  }

  private chunks(sector: number, count: number): Array<Chunk> {
    const chunks: Array<Chunk> = []
    for (let done = 0; done < count; done += SECTORS_PER_FRAME) {
      chunks.push({
        sector: sector + done,
        count: Math.min(SECTORS_PER_FRAME, count - done),
        offset: done * SECTOR_SIZE
      })
    }
    return chunks
  }

  /** Post the chunks in batches of `queueDepth`, wait for each batch, move the data. */
  private transfer(
    op: BlockOp,
    opcode: number,
    chunks: ReadonlyArray<Chunk>,
    data: Uint8Array
  ): Result<void, BlockError> {
    if (this.fault() !== undefined) this.reset() // a halted controller is brought back for the next request
    const ram = this.platform.ram
    for (let first = 0; first < chunks.length; first += this.queueDepth) {
      const batch = chunks.slice(first, first + this.queueDepth)
      batch.forEach((chunk, i) => {
        const slot = this.slot(this.producer + i)
        const buffer = this.bounce[i]!
        if (opcode === BlockOpcode.Write)
          ram.set(data.subarray(chunk.offset, chunk.offset + chunk.count * SECTOR_SIZE), buffer)
        this.view.setUint16(slot + Desc.OPCODE, opcode, true)
        this.view.setUint16(slot + Desc.STATUS, STATUS_PENDING, true)
        this.view.setUint32(slot + Desc.SECTOR, chunk.sector, true)
        this.view.setUint32(slot + Desc.COUNT, chunk.count, true)
        this.view.setUint32(slot + Desc.BUFFER, opcode === BlockOpcode.Flush ? 0 : buffer, true)
      })
      const start = this.producer
      this.producer = (this.producer + batch.length) >>> 0
      this.setReg(BlockReg.DOORBELL, this.producer)
      const waited = this.waitFor(batch.length)
      if (!waited.ok) return waited
      this.setReg(BlockReg.INT_STATUS, BlockInt.Complete)
      for (let i = 0; i < batch.length; i++) {
        const chunk = batch[i]!
        const status = this.view.getUint16(this.slot(start + i) + Desc.STATUS, true)
        this.requests++
        if (status !== Status.Ok)
          return err({
            _tag: "RequestFailed",
            op,
            sector: chunk.sector,
            count: chunk.count,
            status,
            reason: statusNames[status] ?? "unknown status"
          })
        if (opcode === BlockOpcode.Read)
          data.set(ram.subarray(this.bounce[i]!, this.bounce[i]! + chunk.count * SECTOR_SIZE), chunk.offset)
      }
    }
    return ok(undefined)
  }

  private slot(index: number): number {
    return this.ring + (index & (this.queueDepth - 1)) * DESCRIPTOR_SIZE
  }

  /** Advance virtual time until COMPLETION reaches the producer index (bounded). */
  private waitFor(posted: number): Result<void, BlockError> {
    const started = this.platform.now
    // the batch needs posted x SERVICE_NS; allow as much again plus 1 ms before calling it lost
    const limit = started + 2 * posted * this.serviceNs + 1_000_000
    for (;;) {
      if (this.reg(BlockReg.COMPLETION) === this.producer) return ok(undefined)
      const fault = this.fault()
      if (fault !== undefined) return err(fault)
      if (!stepTime(this.platform, limit)) {
        if (this.reg(BlockReg.COMPLETION) === this.producer) return ok(undefined)
        const completed = (this.reg(BlockReg.COMPLETION) - (this.producer - posted)) >>> 0
        this.reset() // the posted descriptors are abandoned: start over with an empty ring
        return err({ _tag: "Timeout", waitedNs: this.platform.now - started, completed, posted })
      }
    }
  }
}
