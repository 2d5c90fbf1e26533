/**
 * drivers/block.ts on a real Machine with an in-memory disk: probe, write and
 * read round trips checked against the back-end's bytes, multi-batch
 * requests, virtual time spent at the controller's service time, typed
 * errors for bad arguments (nothing reaches the disk), flush, and recovery
 * from a controller fault.
 */
import { describe, expect, it } from "@effect/vitest"
import fc from "fast-check"
import { BlockDriver, describeBlockError, SECTOR_SIZE } from "../../drivers/block.ts"
import { BlockReg } from "../../hw/devices/block/registers.ts"
import { FVBLK_BASE, Machine } from "../../hw/machine/machine.ts"
import { config, makeHost, unwrap } from "./harness.ts"

const pattern = (sectors: number, seed: number) =>
  Uint8Array.from({ length: sectors * SECTOR_SIZE }, (_, i) => (i * 31 + seed * 7 + (i >>> 9)) & 0xff)

const open = (queueDepth?: number) => {
  const host = makeHost()
  const block = unwrap(
    BlockDriver.open(host.machine, { allocFrame: host.allocFrame, ...(queueDepth ? { queueDepth } : {}) })
  )
  return { ...host, block }
}

describe("fvblk driver", () => {
  it("probes the controller: capacity, service time, ring and bounce frames", () => {
    const { block, frames, machine } = open()
    expect(block.capacity).toBe(2048)
    expect(block.serviceNs).toBe(100_000)
    expect(frames.length).toBe(1 + 16)
    expect(machine.mmio.read(FVBLK_BASE + BlockReg.RING_BASE, 4)).toBe(frames[0]! * 4096)
    expect(machine.mmio.read(FVBLK_BASE + BlockReg.RING_SIZE, 4)).toBe(16)
  })

  it("writes land on the disk and read back identical", () => {
    const { block, disk } = open()
    const data = pattern(5, 1)
    unwrap(block.write(100, data))
    expect(disk.bytes.subarray(100 * SECTOR_SIZE, 105 * SECTOR_SIZE)).toEqual(data)
    expect(disk.bytes.subarray(99 * SECTOR_SIZE, 100 * SECTOR_SIZE).every((b) => b === 0)).toBe(true)
    expect(disk.bytes.subarray(105 * SECTOR_SIZE, 106 * SECTOR_SIZE).every((b) => b === 0)).toBe(true)
    expect(unwrap(block.read(100, 5))).toEqual(data)
  })

  it("reads what the back-end holds", () => {
    const { block, disk } = open()
    const data = pattern(3, 9)
    disk.bytes.set(data, 2045 * SECTOR_SIZE)
    expect(unwrap(block.read(2045, 3))).toEqual(data)
  })

  it("splits large requests into batches and spends the controller's virtual time", () => {
    const { block, disk, machine } = open(4)
    const data = pattern(100, 3) // 13 descriptors of <= 8 sectors, 4 batches
    const before = machine.now
    unwrap(block.write(7, data))
    expect(machine.now - before).toBe(13 * 100_000)
    expect(disk.bytes.subarray(7 * SECTOR_SIZE, 107 * SECTOR_SIZE)).toEqual(data)
    expect(unwrap(block.read(7, 100))).toEqual(data)
    expect(block.requests).toBe(26)
  })

  it("round-trips random extents (property)", () => {
    const { block, disk } = open()
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 2047 }), fc.integer({ min: 1, max: 40 }), fc.integer(), (s, n, seed) => {
        const count = Math.min(n, 2048 - s)
        const data = pattern(count, seed)
        unwrap(block.write(s, data))
        expect(disk.bytes.subarray(s * SECTOR_SIZE, (s + count) * SECTOR_SIZE)).toEqual(data)
        expect(unwrap(block.read(s, count))).toEqual(data)
      }),
      { numRuns: 40, seed: 42 }
    )
  })

  it("flushes", () => {
    const { block, disk } = open()
    unwrap(block.flush())
    expect(disk.flushes).toBe(1)
  })

  it("rejects bad requests with typed errors and touches nothing", () => {
    const { block, disk, machine } = open()
    const doorbell = machine.mmio.read(FVBLK_BASE + BlockReg.DOORBELL, 4)
    const cases = [
      block.read(2047, 2),
      block.read(-1, 1),
      block.read(0, 0),
      block.read(1.5, 1),
      block.write(0, new Uint8Array(100)),
      block.write(0, new Uint8Array(0)),
      block.write(2048, new Uint8Array(SECTOR_SIZE))
    ]
    expect(cases.map((r) => (r.ok ? "ok" : r.error._tag))).toEqual([
      "OutOfRange",
      "OutOfRange",
      "OutOfRange",
      "OutOfRange",
      "BadLength",
      "BadLength",
      "OutOfRange"
    ])
    for (const r of cases) if (!r.ok) expect(describeBlockError(r.error)).toMatch(/sector|bytes/)
    expect(machine.mmio.read(FVBLK_BASE + BlockReg.DOORBELL, 4)).toBe(doorbell)
    expect(disk.bytes.every((b) => b === 0)).toBe(true)
  })

  it("reports a disk error from the back-end, and keeps working", () => {
    const host = makeHost()
    const failing = { ...host.disk, write: () => false }
    const machine = new Machine(config(), { disk: failing })
    const block = unwrap(BlockDriver.open(machine, { allocFrame: host.allocFrame }))
    const r = block.write(0, pattern(1, 1))
    expect(r.ok ? "ok" : r.error).toMatchObject({ _tag: "RequestFailed", op: "write", status: 5 })
    expect(unwrap(block.read(0, 1)).length).toBe(SECTOR_SIZE)
  })

  it("recovers from a controller fault on the next request", () => {
    const { block, machine, disk } = open()
    machine.mmio.write(FVBLK_BASE + BlockReg.DOORBELL, 4, 1000) // beyond the ring: the controller halts
    const data = pattern(2, 5)
    unwrap(block.write(10, data))
    expect(disk.bytes.subarray(10 * SECTOR_SIZE, 12 * SECTOR_SIZE)).toEqual(data)
  })

  it("refuses a missing device, bad frames and bad queue depths", () => {
    const { machine, allocFrame } = makeHost()
    const tag = (r: ReturnType<typeof BlockDriver.open>) => (r.ok ? "ok" : r.error._tag)
    expect(tag(BlockDriver.open(machine, { allocFrame, base: 0xfe000000 }))).toBe("NoDevice")
    expect(tag(BlockDriver.open(machine, { allocFrame: () => 1.5 }))).toBe("BadFrame")
    expect(tag(BlockDriver.open(machine, { allocFrame: () => 1024 }))).toBe("BadFrame") // 4 MiB: past RAM
    expect(tag(BlockDriver.open(machine, { allocFrame: () => -1 }))).toBe("BadFrame")
    expect(tag(BlockDriver.open(machine, { allocFrame, queueDepth: 3 }))).toBe("BadQueueDepth")
  })
})
