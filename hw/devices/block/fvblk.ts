/**
 * The fvblk DMA block controller (register map, descriptor format and timing:
 * the datasheet in registers.ts).
 *
 * Invariants:
 * - every RAM access goes through DmaMemory, to the ring (validated on each
 *   doorbell: power-of-two size, 16-byte aligned, inside RAM) or to a buffer
 *   a descriptor names (validated before any data moves);
 * - garbage never throws: bad registers writes are ignored, bad descriptors
 *   complete with an error status, a bad ring halts the controller (FAULT);
 * - requests complete in order, each `serviceNs` of virtual time after it
 *   started; with serviceNs = 0, synchronously inside the DOORBELL write.
 */
import type { AccessSize, BusDevice, DmaMemory, IrqLine, TimedDevice } from "../../machine/device.ts"
import type { BlockBackend } from "./backend.ts"
import {
  BLOCK_INT_ALL,
  BlockInt,
  BlockOpcode,
  BlockReg,
  BlockStatus,
  DEFAULT_SERVICE_NS,
  DESCRIPTOR_SIZE,
  Desc,
  FaultCode,
  FVBLK_MAGIC,
  FVBLK_MMIO_SIZE,
  FVBLK_VERSION,
  MAX_COUNT,
  MAX_RING_SIZE,
  RING_ALIGN,
  SECTOR_SIZE,
  Status
} from "./registers.ts"
import type { FvblkState } from "./state.ts"

export type { FvblkState }

export interface FvblkOptions {
  readonly backend: BlockBackend
  readonly dma: DmaMemory
  readonly irq: IrqLine
  /** The machine's virtual time in ns. */
  readonly clock: () => number
  /** Virtual service time of one request in ns (default 100 us; 0 = synchronous). */
  readonly serviceNs?: number
  readonly name?: string
}

const allOnes = (size: AccessSize) => (size === 4 ? 0xffffffff : size === 2 ? 0xffff : 0xff)
const u32 = (v: unknown): number => (typeof v === "number" && Number.isFinite(v) ? v >>> 0 : 0)
const isPowerOfTwo = (n: number) => n > 0 && (n & (n - 1)) === 0

export class Fvblk implements BusDevice, TimedDevice {
  readonly name: string
  readonly serviceNs: number
  private readonly backend: BlockBackend
  private readonly dma: DmaMemory
  private readonly irq: IrqLine
  private readonly clock: () => number

  private ringBase = 0
  private ringSize = 0
  private producer = 0
  private completed = 0
  private intStatus = 0
  private intMask = 0
  private faultCode: number = FaultCode.None
  private serviceEnd = 0

  constructor(options: FvblkOptions) {
    const serviceNs = options.serviceNs ?? DEFAULT_SERVICE_NS
    if (!Number.isSafeInteger(serviceNs) || serviceNs < 0) throw new RangeError("fvblk: serviceNs must be >= 0")
    this.name = options.name ?? "fvblk"
    this.serviceNs = serviceNs
    this.backend = options.backend
    this.dma = options.dma
    this.irq = options.irq
    this.clock = options.clock
  }

  private get outstanding(): number {
    return (this.producer - this.completed) >>> 0
  }

  private get busy(): boolean {
    return this.faultCode === FaultCode.None && this.outstanding > 0
  }

  reset(): void {
    this.ringBase = 0
    this.ringSize = 0
    this.producer = 0
    this.completed = 0
    this.intStatus = 0
    this.intMask = 0
    this.faultCode = FaultCode.None
    this.serviceEnd = 0
    this.irq.set(false)
  }

  read(offset: number, size: AccessSize): number {
    if (!Number.isInteger(offset) || offset < 0 || offset + size > FVBLK_MMIO_SIZE) return allOnes(size)
    const byte = offset & 3
    const full = this.readRegister(offset - byte)
    return size === 4 && byte === 0 ? full >>> 0 : (full >>> (byte * 8)) & allOnes(size)
  }

  private readRegister(reg: number): number {
    switch (reg) {
      case BlockReg.MAGIC:
        return FVBLK_MAGIC
      case BlockReg.VERSION:
        return FVBLK_VERSION
      case BlockReg.CAPACITY:
        return Math.min(this.backend.sectors, 0xffffffff)
      case BlockReg.MAX_COUNT:
        return MAX_COUNT
      case BlockReg.RING_BASE:
        return this.ringBase
      case BlockReg.RING_SIZE:
        return this.ringSize
      case BlockReg.DOORBELL:
        return this.producer
      case BlockReg.COMPLETION:
        return this.completed
      case BlockReg.INT_STATUS:
        return this.intStatus
      case BlockReg.INT_MASK:
        return this.intMask
      case BlockReg.STATUS:
        return (this.busy ? BlockStatus.Busy : 0) | (this.faultCode !== FaultCode.None ? BlockStatus.Fault : 0)
      case BlockReg.FAULT_CODE:
        return this.faultCode
      case BlockReg.SERVICE_NS:
        return Math.min(this.serviceNs, 0xffffffff)
      default:
        return 0
    }
  }

  write(offset: number, size: AccessSize, value: number): void {
    if (size !== 4 || !Number.isInteger(offset) || offset < 0 || offset >= FVBLK_MMIO_SIZE || (offset & 3) !== 0) return
    const v = u32(value)
    switch (offset) {
      case BlockReg.RING_BASE:
        if (!this.busy) this.ringBase = v
        return
      case BlockReg.RING_SIZE:
        if (!this.busy) this.ringSize = v
        return
      case BlockReg.DOORBELL:
        this.doorbell(v)
        return
      case BlockReg.INT_STATUS:
        this.intStatus &= ~v
        this.updateIrq()
        return
      case BlockReg.INT_MASK:
        this.intMask = v & BLOCK_INT_ALL
        this.updateIrq()
        return
      case BlockReg.RESET:
        if ((v & 1) !== 0) this.reset()
        return
      default:
        return // read-only or unknown: ignored
    }
  }

  private updateIrq(): void {
    this.irq.set((this.intStatus & this.intMask) !== 0)
  }

  private fault(code: FaultCode): void {
    this.faultCode = code
    this.intStatus |= BlockInt.Fault
    this.updateIrq()
  }

  private doorbell(index: number): void {
    if (this.faultCode !== FaultCode.None) return
    const size = this.ringSize
    if (!isPowerOfTwo(size) || size > MAX_RING_SIZE) {
      this.fault(FaultCode.RingSize)
      return
    }
    const base = this.ringBase
    if (base % RING_ALIGN !== 0 || base + size * DESCRIPTOR_SIZE > this.dma.size) {
      this.fault(FaultCode.RingBase)
      return
    }
    // complete what is due first, so timing does not depend on when the machine last ticked us
    const now = this.clock()
    this.tick(now)
    const before = this.outstanding
    const after = (index - this.completed) >>> 0
    if (after > size || after < before) {
      this.fault(FaultCode.Doorbell)
      return
    }
    this.producer = index
    if (this.serviceNs === 0) {
      while (this.busy) this.completeOne()
    } else if (before === 0 && after > 0) {
      this.serviceEnd = now + this.serviceNs
    }
  }

  tick(now: number): number {
    while (this.busy && this.serviceEnd <= now) {
      this.completeOne()
      if (this.busy) this.serviceEnd += this.serviceNs
    }
    return this.nextDeadline()
  }

  /** Virtual time at which the request in service completes, or Infinity when idle or halted. */
  nextDeadline(): number {
    return this.busy ? this.serviceEnd : Number.POSITIVE_INFINITY
  }

  /** Perform the request at COMPLETION (read descriptor, move data, write status), then advance. */
  private completeOne(): void {
    const slot = this.ringBase + (this.completed & (this.ringSize - 1)) * DESCRIPTOR_SIZE
    const desc = this.dma.read(slot, DESCRIPTOR_SIZE)
    if (desc === undefined) {
      this.fault(FaultCode.RingBase) // unreachable: the ring was validated
      return
    }
    const view = new DataView(desc.buffer, desc.byteOffset, desc.byteLength)
    const status = this.perform(
      view.getUint16(Desc.OPCODE, true),
      view.getUint32(Desc.SECTOR, true),
      view.getUint32(Desc.COUNT, true),
      view.getUint32(Desc.BUFFER, true)
    )
    this.dma.write(slot + Desc.STATUS, Uint8Array.of(status & 0xff, status >>> 8))
    this.completed = (this.completed + 1) >>> 0
    this.intStatus |= BlockInt.Complete
    this.updateIrq()
  }

  private perform(opcode: number, sector: number, count: number, buffer: number): Status {
    if (opcode === BlockOpcode.Flush) return this.guard(() => this.backend.flush()) ? Status.Ok : Status.IoError
    if (opcode !== BlockOpcode.Read && opcode !== BlockOpcode.Write) return Status.BadOpcode
    if (count === 0 || count > MAX_COUNT) return Status.BadCount
    if (sector + count > this.backend.sectors) return Status.OutOfRange
    const bytes = count * SECTOR_SIZE
    if (buffer + bytes > this.dma.size) return Status.BadBuffer
    if (opcode === BlockOpcode.Read) {
      const data = this.guard(() => this.backend.read(sector, count))
      if (!(data instanceof Uint8Array) || data.length !== bytes) return Status.IoError
      return this.dma.write(buffer, data) ? Status.Ok : Status.BadBuffer
    }
    const data = this.dma.read(buffer, bytes)
    if (data === undefined) return Status.BadBuffer
    return this.guard(() => this.backend.write(sector, data)) === true ? Status.Ok : Status.IoError
  }

  /** Back-ends must not throw; if one does anyway, the request fails with IoError instead of the machine. */
  private guard<A>(f: () => A): A | undefined {
    try {
      return f()
    } catch {
      return undefined
    }
  }

  snapshot(): FvblkState {
    return {
      ringBase: this.ringBase,
      ringSize: this.ringSize,
      producer: this.producer,
      completed: this.completed,
      intStatus: this.intStatus,
      intMask: this.intMask,
      faultCode: this.faultCode,
      serviceEnd: this.outstanding > 0 ? this.serviceEnd : null
    }
  }

  /** Restore a snapshot (fields masked to their widths; the interrupt line is re-driven). */
  restore(s: FvblkState): void {
    this.ringBase = u32(s.ringBase)
    this.ringSize = u32(s.ringSize)
    this.producer = u32(s.producer)
    this.completed = u32(s.completed)
    this.intStatus = u32(s.intStatus) & BLOCK_INT_ALL
    this.intMask = u32(s.intMask) & BLOCK_INT_ALL
    const code = u32(s.faultCode)
    this.faultCode = Math.min(code, FaultCode.Doorbell)
    const outstandingOk = this.outstanding <= this.ringSize && isPowerOfTwo(this.ringSize)
    if (this.faultCode === FaultCode.None && !outstandingOk && this.outstanding > 0) this.faultCode = FaultCode.Doorbell
    this.serviceEnd = s.serviceEnd !== null && Number.isFinite(s.serviceEnd) ? s.serviceEnd : this.clock()
    this.updateIrq()
  }
}
