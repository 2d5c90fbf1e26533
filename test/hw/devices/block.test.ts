/**
 * fvblk (hw/devices/block): every section of its datasheet (registers.ts
 * header: "Registers", "Descriptor", "Timing"), the two back-ends (memory,
 * and a host file in a temp dir), and fast-check properties: random register
 * traffic and random descriptors never throw, never write RAM outside the
 * ring's status fields and the READ buffers they name, and the controller
 * works again after RESET.
 */
import { mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { afterAll, describe, expect, it } from "@effect/vitest"
import fc from "fast-check"
import { openFileDisk } from "../../../hw/backends/file-disk.ts"
import type { BlockBackend } from "../../../hw/devices/block/backend.ts"
import { Fvblk } from "../../../hw/devices/block/fvblk.ts"
import { memoryBackend } from "../../../hw/devices/block/memory-backend.ts"
import {
  FaultCode,
  FVBLK_MAGIC,
  BlockOpcode as Op,
  BlockReg as R,
  Status
} from "../../../hw/devices/block/registers.ts"
import { type DmaMemory, dmaMemory, recordingIrq } from "../../../hw/machine/device.ts"

const RAM = 64 * 1024
const RING = 0x1000
const BUF = 0x4000

interface Descriptor {
  opcode: number
  sector: number
  count: number
  buffer: number
}

const setup = (options: { serviceNs?: number; sectors?: number; backend?: BlockBackend } = {}) => {
  const ram = new Uint8Array(RAM)
  const dma = dmaMemory(ram)
  const disk = memoryBackend(options.sectors ?? 64)
  const irq = recordingIrq()
  const time = { now: 0 }
  const dev = new Fvblk({
    backend: options.backend ?? disk,
    dma,
    irq,
    clock: () => time.now,
    ...(options.serviceNs === undefined ? {} : { serviceNs: options.serviceNs })
  })
  const view = new DataView(ram.buffer)
  const put = (slot: number, d: Descriptor, ring = RING) => {
    const a = ring + slot * 16
    view.setUint16(a, d.opcode, true)
    view.setUint16(a + 2, 0xeeee, true)
    view.setUint32(a + 4, d.sector >>> 0, true)
    view.setUint32(a + 8, d.count >>> 0, true)
    view.setUint32(a + 12, d.buffer >>> 0, true)
  }
  const status = (slot: number, ring = RING) => view.getUint16(ring + slot * 16 + 2, true)
  const ring = (size = 8, base = RING) => {
    dev.write(R.RING_BASE, 4, base)
    dev.write(R.RING_SIZE, 4, size)
    dev.write(R.INT_MASK, 4, 3)
  }
  return { ram, dma, disk, irq, time, dev, put, status, ring }
}

describe("datasheet: registers", () => {
  it("identify the controller and the disk", () => {
    const { dev } = setup({ sectors: 2048 })
    expect(dev.read(R.MAGIC, 4)).toBe(FVBLK_MAGIC)
    expect([0, 1, 2, 3].map((i) => String.fromCharCode(dev.read(R.MAGIC + i, 1))).join("")).toBe("FVBK")
    expect(dev.read(R.VERSION, 4)).toBe(0x00010000)
    expect(dev.read(R.VERSION + 2, 2)).toBe(1)
    expect(dev.read(R.CAPACITY, 4)).toBe(2048)
    expect(dev.read(R.MAX_COUNT, 4)).toBe(256)
    expect(dev.read(R.SERVICE_NS, 4)).toBe(100_000)
    expect(dev.read(0x800, 4)).toBe(0)
    expect(dev.read(0x1000, 4)).toBe(0xffffffff)
  })

  it("ring registers read back; read-only registers and narrow writes are ignored", () => {
    const { dev } = setup()
    dev.write(R.RING_BASE, 4, 0x1230)
    dev.write(R.RING_SIZE, 4, 4)
    dev.write(R.RING_SIZE, 2, 8)
    dev.write(R.RING_BASE + 1, 4, 0)
    dev.write(R.MAGIC, 4, 0)
    dev.write(R.COMPLETION, 4, 5)
    expect([dev.read(R.RING_BASE, 4), dev.read(R.RING_SIZE, 4)]).toEqual([0x1230, 4])
    expect(dev.read(R.MAGIC, 4)).toBe(FVBLK_MAGIC)
    expect(dev.read(R.COMPLETION, 4)).toBe(0)
  })

  it("INT_STATUS is write-1-to-clear and drives the level-triggered line through INT_MASK", () => {
    const { dev, put, ring, irq } = setup({ serviceNs: 0 })
    ring()
    dev.write(R.INT_MASK, 4, 0)
    put(0, { opcode: Op.Flush, sector: 0, count: 0, buffer: 0 })
    dev.write(R.DOORBELL, 4, 1)
    expect(dev.read(R.INT_STATUS, 4)).toBe(1)
    expect(irq.level).toBe(false)
    dev.write(R.INT_MASK, 4, 0xffffffff)
    expect(dev.read(R.INT_MASK, 4)).toBe(3)
    expect(irq.level).toBe(true)
    dev.write(R.INT_STATUS, 4, 2)
    expect(irq.level).toBe(true)
    dev.write(R.INT_STATUS, 4, 1)
    expect(irq.level).toBe(false)
  })

  it("RESET clears the controller, not the disk", () => {
    const { dev, put, ring, disk, irq } = setup({ serviceNs: 0 })
    ring()
    disk.bytes[0] = 0x5a
    put(0, { opcode: Op.Write, sector: 1, count: 1, buffer: BUF })
    dev.write(R.DOORBELL, 4, 1)
    dev.write(R.RESET, 4, 1)
    expect(
      [R.RING_BASE, R.RING_SIZE, R.DOORBELL, R.COMPLETION, R.INT_STATUS, R.INT_MASK, R.STATUS].map((r) =>
        dev.read(r, 4)
      )
    ).toEqual([0, 0, 0, 0, 0, 0, 0])
    expect(irq.level).toBe(false)
    expect(disk.bytes[0]).toBe(0x5a)
  })
})

describe("datasheet: descriptor", () => {
  it("WRITE moves RAM to disk, READ moves disk to RAM, FLUSH reaches the back-end", () => {
    const { dev, ram, disk, put, status, ring } = setup({ serviceNs: 0 })
    ring()
    for (let i = 0; i < 1024; i++) ram[BUF + i] = (i * 7) & 0xff
    put(0, { opcode: Op.Write, sector: 5, count: 2, buffer: BUF })
    put(1, { opcode: Op.Read, sector: 5, count: 2, buffer: BUF + 0x1000 })
    put(2, { opcode: Op.Flush, sector: 0xffffffff, count: 0xffffffff, buffer: 0xffffffff })
    dev.write(R.DOORBELL, 4, 3)
    expect([status(0), status(1), status(2)]).toEqual([Status.Ok, Status.Ok, Status.Ok])
    expect(disk.bytes.subarray(5 * 512, 7 * 512)).toEqual(ram.subarray(BUF, BUF + 1024))
    expect(ram.subarray(BUF + 0x1000, BUF + 0x1400)).toEqual(ram.subarray(BUF, BUF + 1024))
    expect(disk.flushes).toBe(1)
    expect(dev.read(R.COMPLETION, 4)).toBe(3)
  })

  it("validates every field: opcode, count (0, huge), sector range, buffer inside RAM", () => {
    const { dev, ram, put, status, ring } = setup({ serviceNs: 0, sectors: 64 })
    ring(16)
    const cases: Array<[Descriptor, number]> = [
      [{ opcode: 0, sector: 0, count: 1, buffer: BUF }, Status.BadOpcode],
      [{ opcode: 0x1234, sector: 0, count: 1, buffer: BUF }, Status.BadOpcode],
      [{ opcode: Op.Read, sector: 0, count: 0, buffer: BUF }, Status.BadCount],
      [{ opcode: Op.Read, sector: 0, count: 257, buffer: BUF }, Status.BadCount],
      [{ opcode: Op.Write, sector: 0, count: 0xffffffff, buffer: BUF }, Status.BadCount],
      [{ opcode: Op.Read, sector: 63, count: 2, buffer: BUF }, Status.OutOfRange],
      [{ opcode: Op.Read, sector: 0xffffffff, count: 1, buffer: BUF }, Status.OutOfRange],
      [{ opcode: Op.Read, sector: 0, count: 1, buffer: RAM - 511 }, Status.BadBuffer],
      [{ opcode: Op.Write, sector: 0, count: 1, buffer: 0xfffffe00 }, Status.BadBuffer],
      [{ opcode: Op.Read, sector: 63, count: 1, buffer: RAM - 512 }, Status.Ok]
    ]
    cases.forEach(([d], i) => {
      put(i, d)
    })
    const before = ram.slice()
    dev.write(R.DOORBELL, 4, cases.length)
    cases.forEach(([, expected], i) => {
      expect(status(i), `case ${i}`).toBe(expected)
    })
    // nothing but the status fields (and the one valid READ's buffer) changed
    for (let a = 0; a < RAM; a++) {
      const isStatus = a >= RING && a < RING + 16 * cases.length && (a - RING) % 16 >= 2 && (a - RING) % 16 < 4
      if (!isStatus && a < RAM - 512) expect(ram[a], `byte ${a}`).toBe(before[a])
    }
  })

  it("a failing back-end completes the request with IoError", () => {
    const failing: BlockBackend = {
      sectors: 8,
      read: () => undefined,
      write: () => false,
      flush: () => {
        throw new Error("host exploded")
      }
    }
    const { dev, put, status, ring } = setup({ serviceNs: 0, backend: failing })
    ring()
    put(0, { opcode: Op.Read, sector: 0, count: 1, buffer: BUF })
    put(1, { opcode: Op.Write, sector: 0, count: 1, buffer: BUF })
    put(2, { opcode: Op.Flush, sector: 0, count: 0, buffer: 0 })
    dev.write(R.DOORBELL, 4, 3)
    expect([status(0), status(1), status(2)]).toEqual([Status.IoError, Status.IoError, Status.IoError])
  })

  it("indices are free-running: slots wrap around the ring", () => {
    const { dev, put, status, ring, disk } = setup({ serviceNs: 0 })
    ring(2)
    for (let i = 0; i < 7; i++) {
      put(i % 2, { opcode: Op.Write, sector: i, count: 1, buffer: BUF + 512 * i })
      dev.write(R.DOORBELL, 4, i + 1)
      expect(status(i % 2)).toBe(Status.Ok)
    }
    expect(dev.read(R.COMPLETION, 4)).toBe(7)
    expect(disk.bytes.length).toBe(64 * 512)
  })
})

describe("datasheet: ring faults", () => {
  const faultOf = (size: number, base: number, doorbell = 1) => {
    const d = setup({ serviceNs: 0 })
    d.ring(size, base)
    d.dev.write(R.DOORBELL, 4, doorbell)
    return d
  }

  it.each([
    ["ring size 0", 0, RING, FaultCode.RingSize],
    ["ring size not a power of two", 6, RING, FaultCode.RingSize],
    ["ring size above 1024", 2048, RING, FaultCode.RingSize],
    ["ring base misaligned", 8, RING + 8, FaultCode.RingBase],
    ["ring past the end of RAM", 8, RAM - 64, FaultCode.RingBase],
    ["ring far outside RAM", 8, 0xfffffff0, FaultCode.RingBase]
  ])("%s halts the controller", (_name, size, base, code) => {
    const { dev, irq } = faultOf(size, base)
    expect(dev.read(R.STATUS, 4)).toBe(2)
    expect(dev.read(R.FAULT_CODE, 4)).toBe(code)
    expect(dev.read(R.INT_STATUS, 4)).toBe(2)
    expect(irq.level).toBe(true)
  })

  it("a doorbell more than RING_SIZE ahead is a fault; the halted controller ignores doorbells until RESET", () => {
    const { dev, put, status } = faultOf(4, RING, 5)
    expect(dev.read(R.FAULT_CODE, 4)).toBe(FaultCode.Doorbell)
    dev.write(R.DOORBELL, 4, 1)
    expect(dev.read(R.DOORBELL, 4)).toBe(0)
    dev.write(R.RESET, 4, 1)
    dev.write(R.RING_BASE, 4, RING)
    dev.write(R.RING_SIZE, 4, 4)
    put(0, { opcode: Op.Flush, sector: 0, count: 0, buffer: 0 })
    dev.write(R.DOORBELL, 4, 1)
    expect([dev.read(R.STATUS, 4), status(0)]).toEqual([0, Status.Ok])
  })

  it("a doorbell moving backwards is a fault and stops the requests in flight", () => {
    const { dev, put, ring } = setup({ serviceNs: 1000 })
    ring(4)
    put(0, { opcode: Op.Flush, sector: 0, count: 0, buffer: 0 })
    put(1, { opcode: Op.Flush, sector: 0, count: 0, buffer: 0 })
    dev.write(R.DOORBELL, 4, 2)
    dev.write(R.DOORBELL, 4, 1)
    expect(dev.read(R.FAULT_CODE, 4)).toBe(FaultCode.Doorbell)
    expect(dev.tick(10_000)).toBe(Number.POSITIVE_INFINITY)
    expect(dev.read(R.COMPLETION, 4)).toBe(0)
  })
})

describe("datasheet: timing", () => {
  it("serves one request per 100 us of virtual time, in order, back to back", () => {
    const { dev, put, status, ring, time, irq } = setup()
    ring()
    for (let i = 0; i < 3; i++) put(i, { opcode: Op.Flush, sector: 0, count: 0, buffer: 0 })
    time.now = 5_000
    dev.write(R.DOORBELL, 4, 3)
    expect(dev.read(R.STATUS, 4)).toBe(1)
    expect(dev.nextDeadline()).toBe(105_000)
    expect(dev.tick(104_999)).toBe(105_000)
    expect(status(0)).toBe(0xeeee)
    expect(dev.tick(105_000)).toBe(205_000)
    expect([dev.read(R.COMPLETION, 4), status(0), irq.raises]).toEqual([1, Status.Ok, 1])
    dev.write(R.INT_STATUS, 4, 1)
    // a request posted while busy queues behind the others
    put(3, { opcode: Op.Flush, sector: 0, count: 0, buffer: 0 })
    dev.write(R.DOORBELL, 4, 4)
    expect(dev.tick(1_000_000)).toBe(Number.POSITIVE_INFINITY) // late tick: everything due completes
    expect(dev.read(R.COMPLETION, 4)).toBe(4)
    expect(dev.read(R.STATUS, 4)).toBe(0)
  })

  it("a doorbell after a missed deadline completes the due request first, then starts the new one now", () => {
    const { dev, put, ring, time } = setup()
    ring()
    put(0, { opcode: Op.Flush, sector: 0, count: 0, buffer: 0 })
    put(1, { opcode: Op.Flush, sector: 0, count: 0, buffer: 0 })
    dev.write(R.DOORBELL, 4, 1)
    time.now = 120_000 // the machine never ticked at 100 us
    dev.write(R.DOORBELL, 4, 2)
    expect(dev.read(R.COMPLETION, 4)).toBe(1)
    expect(dev.nextDeadline()).toBe(220_000)
  })

  it("ring registers are ignored while busy", () => {
    const { dev, put, ring } = setup()
    ring()
    put(0, { opcode: Op.Flush, sector: 0, count: 0, buffer: 0 })
    dev.write(R.DOORBELL, 4, 1)
    dev.write(R.RING_BASE, 4, 0)
    dev.write(R.RING_SIZE, 4, 3)
    expect([dev.read(R.RING_BASE, 4), dev.read(R.RING_SIZE, 4)]).toEqual([RING, 8])
  })

  it("snapshot/restore mid-request continues identically", () => {
    const a = setup()
    a.ring()
    a.put(0, { opcode: Op.Write, sector: 2, count: 1, buffer: BUF })
    a.put(1, { opcode: Op.Read, sector: 2, count: 1, buffer: BUF + 512 })
    a.ram.fill(0x77, BUF, BUF + 512)
    a.dev.write(R.DOORBELL, 4, 2)
    a.dev.tick(100_000)
    const state = JSON.parse(JSON.stringify(a.dev.snapshot()))
    const b = setup({ backend: a.disk })
    b.ram.set(a.ram)
    b.dev.restore(state)
    expect(b.dev.snapshot()).toEqual(a.dev.snapshot())
    expect(b.dev.tick(200_000)).toBe(Number.POSITIVE_INFINITY)
    expect(b.status(1)).toBe(Status.Ok)
    expect(b.ram[BUF + 512]).toBe(0x77)
  })
})

describe("back-ends", () => {
  const dir = mkdtempSync(join(tmpdir(), "fvblk-"))
  afterAll(() => rmSync(dir, { recursive: true, force: true }))

  it("memory: bounds-checked reads and writes of whole sectors", () => {
    const disk = memoryBackend(4, Uint8Array.of(1, 2, 3))
    expect(disk.read(0, 1)?.subarray(0, 4)).toEqual(Uint8Array.of(1, 2, 3, 0))
    expect(disk.read(3, 2)).toBeUndefined()
    expect(disk.read(-1, 1)).toBeUndefined()
    expect(disk.read(0, 0)).toBeUndefined()
    expect(disk.read(0.5, 1)).toBeUndefined()
    expect(disk.write(3, new Uint8Array(1024))).toBe(false)
    expect(disk.write(0, new Uint8Array(100))).toBe(false)
    expect(disk.write(3, new Uint8Array(512).fill(9))).toBe(true)
    expect(disk.bytes[3 * 512]).toBe(9)
    expect(disk.flush()).toBe(true)
  })

  it("file: creates a sparse file of the given size; data persists across reopen", () => {
    const path = join(dir, "disk.img")
    const disk = openFileDisk(path, 1 << 20)
    expect(statSync(path).size).toBe(1 << 20)
    expect(disk.sectors).toBe(2048)
    expect(disk.read(2047, 1)).toEqual(new Uint8Array(512))
    expect(disk.write(10, new Uint8Array(1024).fill(0xab))).toBe(true)
    expect(disk.flush()).toBe(true)
    expect(disk.read(2047, 2)).toBeUndefined()
    expect(disk.write(2048, new Uint8Array(512))).toBe(false)
    disk.close()
    expect(disk.read(10, 1)).toBeUndefined()
    expect(disk.write(10, new Uint8Array(512))).toBe(false)
    expect(disk.flush()).toBe(false)
    const again = openFileDisk(path, 1 << 20)
    expect(again.read(10, 2)).toEqual(new Uint8Array(1024).fill(0xab))
    again.close()
  })

  it("file: extends a smaller existing file, keeping its bytes; rejects a bad size", () => {
    const path = join(dir, "small.img")
    writeFileSync(path, Uint8Array.of(1, 2, 3))
    const disk = openFileDisk(path, 4096)
    expect(statSync(path).size).toBe(4096)
    expect(disk.read(0, 1)?.subarray(0, 4)).toEqual(Uint8Array.of(1, 2, 3, 0))
    disk.close()
    expect(() => openFileDisk(path, 1000)).toThrow(RangeError)
    expect(() => openFileDisk(join(dir, "missing", "x.img"), 4096)).toThrow()
  })

  it("file: an fvblk controller runs on it", () => {
    const disk = openFileDisk(join(dir, "ctl.img"), 64 * 512)
    const { dev, ram, put, status, ring } = setup({ serviceNs: 0, backend: disk })
    ring()
    ram.fill(0x3c, BUF, BUF + 1024)
    put(0, { opcode: Op.Write, sector: 60, count: 2, buffer: BUF })
    put(1, { opcode: Op.Flush, sector: 0, count: 0, buffer: 0 })
    put(2, { opcode: Op.Read, sector: 61, count: 1, buffer: BUF + 0x2000 })
    dev.write(R.DOORBELL, 4, 3)
    expect([status(0), status(1), status(2)]).toEqual([0, 0, 0])
    expect(ram.subarray(BUF + 0x2000, BUF + 0x2200)).toEqual(new Uint8Array(512).fill(0x3c))
    disk.close()
  })
})

describe("properties", () => {
  const u32 = fc.nat({ max: 0xffffffff })
  const near = (edge: number) => fc.integer({ min: Math.max(0, edge - 2048), max: edge + 2048 })
  const descriptorArb: fc.Arbitrary<Descriptor> = fc.record({
    opcode: fc.oneof(fc.constantFrom(1, 2, 3), fc.nat({ max: 0xffff })),
    sector: fc.oneof(fc.nat({ max: 70 }), u32),
    count: fc.oneof(fc.nat({ max: 8 }), fc.constantFrom(255, 256, 257), u32),
    buffer: fc.oneof(fc.nat({ max: RAM }), near(RAM), u32)
  })

  /** A DmaMemory that checks every write against the regions the descriptors name. */
  const guardedDma = (inner: DmaMemory, allowed: (address: number, length: number) => boolean): DmaMemory => ({
    ...inner,
    write: (address, data) => {
      expect(allowed(address, data.length), `DMA write at ${address} +${data.length}`).toBe(true)
      return inner.write(address, data)
    },
    write32: (address, value) => {
      expect(allowed(address, 4)).toBe(true)
      return inner.write32(address, value)
    }
  })

  it("random descriptors never throw and only write status fields and valid READ buffers", () => {
    fc.assert(
      fc.property(
        fc.array(descriptorArb, { minLength: 1, maxLength: 8 }),
        fc.constantFrom(0, 100_000),
        (descs, serviceNs) => {
          const ram = new Uint8Array(RAM)
          for (let i = 0; i < RAM; i++) ram[i] = i & 0xff
          const inside = (a: number, l: number, base: number, len: number) => a >= base && a + l <= base + len
          const allowed = (a: number, l: number) =>
            descs.some(
              (d, i) =>
                inside(a, l, RING + i * 16 + 2, 2) ||
                (d.opcode === Op.Read && d.count >= 1 && d.count <= 256 && inside(a, l, d.buffer, d.count * 512))
            )
          const disk = memoryBackend(64)
          const time = { now: 0 }
          const dev = new Fvblk({
            backend: disk,
            dma: guardedDma(dmaMemory(ram), allowed),
            irq: recordingIrq(),
            clock: () => time.now,
            serviceNs
          })
          const view = new DataView(ram.buffer)
          descs.forEach((d, i) => {
            const a = RING + i * 16
            view.setUint16(a, d.opcode, true)
            view.setUint32(a + 4, d.sector, true)
            view.setUint32(a + 8, d.count, true)
            view.setUint32(a + 12, d.buffer, true)
          })
          dev.write(R.RING_BASE, 4, RING)
          dev.write(R.RING_SIZE, 4, 8)
          dev.write(R.DOORBELL, 4, descs.length)
          dev.tick(10_000_000)
          expect(dev.read(R.COMPLETION, 4)).toBe(descs.length)
          descs.forEach((_, i) => {
            expect(view.getUint16(RING + i * 16 + 2, true)).toBeLessThanOrEqual(Status.IoError)
          })
        }
      ),
      { seed: 0xb10c1, numRuns: 300 }
    )
  })

  const regOp = fc.record({
    offset: fc.oneof(fc.constantFrom(...Object.values(R)), fc.integer({ min: -4, max: 0x1004 })),
    size: fc.constantFrom(1 as const, 2 as const, 4 as const),
    value: fc.oneof(u32, fc.nat({ max: 16 }), fc.constantFrom(RING, RAM - 16, Number.NaN, -1, 2 ** 40)),
    advance: fc.nat({ max: 300_000 })
  })

  it("random register traffic never throws and RESET brings the controller back", () => {
    fc.assert(
      fc.property(fc.array(regOp, { maxLength: 40 }), (ops) => {
        const d = setup()
        for (const o of ops) {
          d.dev.write(o.offset, o.size, o.value)
          d.dev.read(o.offset, o.size)
          d.time.now += o.advance
          expect(d.dev.tick(d.time.now)).toBeGreaterThan(d.time.now)
        }
        d.dev.write(R.RESET, 4, 1)
        d.ring()
        d.ram.fill(0x42, BUF, BUF + 512)
        d.put(0, { opcode: Op.Write, sector: 3, count: 1, buffer: BUF })
        d.dev.write(R.DOORBELL, 4, 1)
        d.dev.tick(d.time.now + 100_000)
        expect(d.status(0)).toBe(Status.Ok)
        expect(d.disk.bytes[3 * 512]).toBe(0x42)
      }),
      { seed: 0xb10c2, numRuns: 300 }
    )
  })
})
