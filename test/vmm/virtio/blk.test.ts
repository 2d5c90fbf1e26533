/**
 * virtio-blk over virtio-mmio (vmm/virtio/blk.ts, mmio.ts, virtqueue.ts),
 * driven by the test driver (driver.ts) the way a guest kernel would:
 * OASIS virtio 1.1 4.2.2 (register layout), 2.1 + 3.1.1 (status and
 * initialization), 2.6 (split virtqueues, indirect descriptors, interrupt
 * suppression), 5.2 (block requests and config space).
 */
import { describe, expect, it } from "@effect/vitest"
import { blkRequest, DATA, HDR, SECTORS, STATUS, setupBlk } from "../../../scripts/fuzz/virtio/blk-harness.ts"
import { writesWithin } from "../../../scripts/fuzz/virtio/driver.ts"
import {
  SECTOR_SIZE,
  VirtioBlkConfig,
  VirtioBlkFeature,
  VirtioBlkStatus,
  VirtioBlkType
} from "../../../vmm/virtio/blk.ts"
import {
  FIBERVISOR_VENDOR_ID,
  linuxCmdlineDevice,
  VirtioReg as R,
  VIRTIO_CONFIG_OFFSET,
  VIRTIO_MMIO_MAGIC,
  VirtioFeature,
  VirtioInterrupt,
  VirtioStatus,
  virtioMmioBase
} from "../../../vmm/virtio/mmio.ts"

const pattern = (bytes: number, seed: number) => Uint8Array.from({ length: bytes }, (_, i) => (i * 7 + seed) & 0xff)

describe("virtio-mmio registers (4.2.2)", () => {
  it("identifies a version 2 block device", () => {
    const { dev, drv } = setupBlk()
    expect(dev.read(R.MAGIC, 4)).toBe(VIRTIO_MMIO_MAGIC)
    expect(dev.read(R.VERSION, 4)).toBe(2)
    expect(dev.read(R.DEVICE_ID, 4)).toBe(2)
    expect(dev.read(R.VENDOR_ID, 4)).toBe(FIBERVISOR_VENDOR_ID)
    const features = drv.deviceFeatures()
    expect(features & VirtioFeature.VERSION_1).toBe(VirtioFeature.VERSION_1)
    expect(features & VirtioBlkFeature.FLUSH).toBe(VirtioBlkFeature.FLUSH)
    expect(features & VirtioBlkFeature.RO).toBe(0n)
    dev.write(R.DEVICE_FEATURES_SEL, 4, 2)
    expect(dev.read(R.DEVICE_FEATURES, 4)).toBe(0)
    dev.write(R.QUEUE_SEL, 4, 0)
    expect(dev.read(R.QUEUE_NUM_MAX, 4)).toBe(256)
    dev.write(R.QUEUE_SEL, 4, 1)
    expect(dev.read(R.QUEUE_NUM_MAX, 4)).toBe(0)
    expect(virtioMmioBase(2)).toBe(0xfeb00400)
    expect(linuxCmdlineDevice(virtioMmioBase(0), 5)).toBe("virtio_mmio.device=0x200@0xfeb00000:5")
  })

  it("takes aligned 32-bit register accesses only; config space any size, little-endian", () => {
    const { dev } = setupBlk({}, 0x1_0000_0203)
    expect(dev.read(R.MAGIC, 2)).toBe(0)
    expect(dev.read(R.MAGIC + 1, 4)).toBe(0)
    dev.write(R.STATUS, 1, VirtioStatus.ACKNOWLEDGE)
    expect(dev.read(R.STATUS, 4)).toBe(0)
    const cap = VIRTIO_CONFIG_OFFSET + VirtioBlkConfig.CAPACITY
    expect(dev.read(cap, 4)).toBe(0x0203)
    expect(dev.read(cap + 4, 4)).toBe(1)
    expect(dev.read(cap, 1)).toBe(0x03)
    expect(dev.read(cap + 1, 2)).toBe(0x0002)
    expect(dev.read(VIRTIO_CONFIG_OFFSET + VirtioBlkConfig.BLK_SIZE, 4)).toBe(512)
    expect(dev.read(0x1fc, 4)).toBe(0)
    expect(dev.read(0x200, 4)).toBe(0)
    expect(dev.read(-4, 4)).toBe(0)
    expect(dev.read(0x0f0, 4)).toBe(0)
  })

  it("walks the status state machine: order enforced, bits never cleared but by reset", () => {
    const { dev, drv } = setupBlk()
    drv.w(R.STATUS, VirtioStatus.DRIVER) // without ACKNOWLEDGE: dropped
    expect(drv.status).toBe(0)
    drv.w(R.STATUS, VirtioStatus.ACKNOWLEDGE | VirtioStatus.DRIVER | VirtioStatus.DRIVER_OK) // DRIVER_OK needs FEATURES_OK
    expect(drv.status).toBe(VirtioStatus.ACKNOWLEDGE | VirtioStatus.DRIVER)
    drv.w(R.STATUS, VirtioStatus.ACKNOWLEDGE) // clearing DRIVER: ignored
    expect(drv.status).toBe(VirtioStatus.ACKNOWLEDGE | VirtioStatus.DRIVER)
    // features without VERSION_1: FEATURES_OK does not stick
    drv.writeDriverFeatures(VirtioBlkFeature.FLUSH)
    drv.w(R.STATUS, drv.status | VirtioStatus.FEATURES_OK)
    expect(drv.status & VirtioStatus.FEATURES_OK).toBe(0)
    // a feature the device never offered: refused too
    drv.writeDriverFeatures(VirtioFeature.VERSION_1 | (1n << 40n))
    drv.w(R.STATUS, drv.status | VirtioStatus.FEATURES_OK)
    expect(drv.status & VirtioStatus.FEATURES_OK).toBe(0)
    drv.writeDriverFeatures(VirtioFeature.VERSION_1 | VirtioBlkFeature.FLUSH)
    drv.w(R.STATUS, drv.status | VirtioStatus.FEATURES_OK)
    expect(drv.status & VirtioStatus.FEATURES_OK).toBe(VirtioStatus.FEATURES_OK)
    expect(dev.driverFeatures).toBe(VirtioFeature.VERSION_1 | VirtioBlkFeature.FLUSH)
    // features are frozen after FEATURES_OK
    drv.writeDriverFeatures(VirtioFeature.VERSION_1)
    expect(dev.driverFeatures).toBe(VirtioFeature.VERSION_1 | VirtioBlkFeature.FLUSH)
    // the driver cannot set DEVICE_NEEDS_RESET
    drv.w(R.STATUS, drv.status | VirtioStatus.DEVICE_NEEDS_RESET)
    expect(drv.status & VirtioStatus.DEVICE_NEEDS_RESET).toBe(0)
    drv.w(R.STATUS, 0)
    expect(drv.status).toBe(0)
    expect(dev.driverFeatures).toBe(0n)
  })

  it("takes QueueReady only after FEATURES_OK, and a bad layout is a device error", () => {
    const { drv, dev } = setupBlk()
    drv.w(R.STATUS, VirtioStatus.ACKNOWLEDGE | VirtioStatus.DRIVER)
    drv.w(R.QUEUE_SEL, 0)
    drv.w(R.QUEUE_READY, 1)
    expect(drv.r(R.QUEUE_READY)).toBe(0)
    expect(drv.status & VirtioStatus.DEVICE_NEEDS_RESET).toBe(0)
    drv.negotiate()
    drv.w(R.QUEUE_NUM, 24) // not a power of two
    drv.w(R.QUEUE_READY, 1)
    expect(drv.r(R.QUEUE_READY)).toBe(0)
    expect(drv.status & VirtioStatus.DEVICE_NEEDS_RESET).toBe(VirtioStatus.DEVICE_NEEDS_RESET)
    expect(dev.stats().error).toMatch(/power of two/)
    drv.negotiate() // reset clears it
    expect(drv.status & VirtioStatus.DEVICE_NEEDS_RESET).toBe(0)
    drv.w(R.QUEUE_NUM, 16)
    drv.w(R.QUEUE_DEVICE_LOW, 0xfffff000) // used ring outside guest RAM
    drv.w(R.QUEUE_READY, 1)
    expect(drv.r(R.QUEUE_READY)).toBe(0)
    expect(dev.stats().error).toMatch(/used ring outside/)
  })
})

describe("virtio-blk requests (5.2.6)", () => {
  it("writes sectors to the BlockStore and reads them back", () => {
    const h = setupBlk()
    const { store, drv, irq, guest } = h
    drv.init(1)
    const data = pattern(2 * SECTOR_SIZE, 3)
    const w = blkRequest(h, VirtioBlkType.OUT, 5, { out: data })
    expect(w.status).toBe(VirtioBlkStatus.OK)
    expect(w.used).toEqual([{ id: 0, len: 1 }])
    expect(store.data.slice(5 * SECTOR_SIZE, 7 * SECTOR_SIZE)).toEqual(data)
    expect(store.data[4 * SECTOR_SIZE]).toBe(0)
    expect(irq.level).toBe(true)
    expect(drv.ack()).toBe(VirtioInterrupt.USED_BUFFER)
    expect(irq.level).toBe(false)

    guest.ram.fill(0, 0x10100, 0x10100 + 2 * SECTOR_SIZE)
    const r = blkRequest(h, VirtioBlkType.IN, 5, { inLength: 2 * SECTOR_SIZE })
    expect(r.status).toBe(VirtioBlkStatus.OK)
    expect(r.used[0]!.len).toBe(2 * SECTOR_SIZE + 1)
    expect(r.data).toEqual(data)
    expect(guest.canariesIntact()).toBe(true)
    expect(guest.refused.count).toBe(0)
  })

  it("handles headers and data split over many descriptors, and indirect tables", () => {
    const h = setupBlk()
    const accepted = h.drv.init(1, 16, VirtioFeature.VERSION_1 | VirtioFeature.INDIRECT_DESC)
    expect(accepted & VirtioFeature.INDIRECT_DESC).toBe(VirtioFeature.INDIRECT_DESC)
    const data = pattern(3 * SECTOR_SIZE, 9)
    expect(blkRequest(h, VirtioBlkType.OUT, 10, { out: data, split: true }).status).toBe(VirtioBlkStatus.OK)
    expect(h.store.data.slice(10 * SECTOR_SIZE, 13 * SECTOR_SIZE)).toEqual(data)
    const r = blkRequest(h, VirtioBlkType.IN, 10, { inLength: 3 * SECTOR_SIZE, split: true, indirect: true })
    expect(r.status).toBe(VirtioBlkStatus.OK)
    expect(r.data).toEqual(data)
    const data2 = pattern(SECTOR_SIZE, 1)
    expect(blkRequest(h, VirtioBlkType.OUT, 0, { out: data2, indirect: true }).status).toBe(VirtioBlkStatus.OK)
    expect(h.store.data.slice(0, SECTOR_SIZE)).toEqual(data2)
  })

  it("flushes, reports its id, and refuses unknown types with UNSUPP", () => {
    const h = setupBlk({ serial: "disk-0042" })
    h.drv.init(1)
    expect(blkRequest(h, VirtioBlkType.FLUSH, 0).status).toBe(VirtioBlkStatus.OK)
    expect(h.store.flushes).toBe(1)
    const id = blkRequest(h, VirtioBlkType.GET_ID, 0, { inLength: 20 })
    expect(id.status).toBe(VirtioBlkStatus.OK)
    expect(new TextDecoder().decode(id.data.subarray(0, 9))).toBe("disk-0042")
    expect(id.data[9]).toBe(0)
    expect(id.used[0]!.len).toBe(21)
    expect(blkRequest(h, 11, 0).status).toBe(VirtioBlkStatus.UNSUPP) // DISCARD: not offered
    expect(h.blk.stats()).toMatchObject({ flushes: 1, unsupported: 1 })
  })

  it("answers IOERR for out-of-range sectors, partial sectors, a read-only disk, a failing store", () => {
    const h = setupBlk()
    h.drv.init(1)
    expect(blkRequest(h, VirtioBlkType.IN, SECTORS, { inLength: SECTOR_SIZE }).status).toBe(VirtioBlkStatus.IOERR)
    expect(blkRequest(h, VirtioBlkType.OUT, SECTORS - 1, { out: pattern(2 * SECTOR_SIZE, 0) }).status).toBe(
      VirtioBlkStatus.IOERR
    )
    expect(blkRequest(h, VirtioBlkType.OUT, 2 ** 53, { out: pattern(SECTOR_SIZE, 0) }).status).toBe(
      VirtioBlkStatus.IOERR
    )
    expect(blkRequest(h, VirtioBlkType.IN, 0, { inLength: 100 }).status).toBe(VirtioBlkStatus.IOERR)
    expect(blkRequest(h, VirtioBlkType.IN, SECTORS - 1, { inLength: SECTOR_SIZE }).status).toBe(VirtioBlkStatus.OK)
    expect(h.store.data.every((b) => b === 0)).toBe(true)
    expect(h.drv.status & VirtioStatus.DEVICE_NEEDS_RESET).toBe(0)

    const ro = setupBlk({ readOnly: true })
    const accepted = ro.drv.init(1, 16, VirtioFeature.VERSION_1 | VirtioBlkFeature.RO)
    expect(accepted & VirtioBlkFeature.RO).toBe(VirtioBlkFeature.RO)
    expect(blkRequest(ro, VirtioBlkType.OUT, 0, { out: pattern(SECTOR_SIZE, 1) }).status).toBe(VirtioBlkStatus.IOERR)
    expect(ro.store.data.every((b) => b === 0)).toBe(true)

    const failing = setupBlk()
    Object.assign(failing.store, { write: () => false, flush: () => false })
    failing.drv.init(1)
    expect(blkRequest(failing, VirtioBlkType.OUT, 0, { out: pattern(SECTOR_SIZE, 1) }).status).toBe(
      VirtioBlkStatus.IOERR
    )
    expect(blkRequest(failing, VirtioBlkType.FLUSH, 0).status).toBe(VirtioBlkStatus.IOERR)
  })

  it("writes only the request's device-writable buffers and the used ring", () => {
    const h = setupBlk()
    h.drv.init(1)
    h.guest.writes.length = 0
    blkRequest(h, VirtioBlkType.IN, 1, { inLength: SECTOR_SIZE })
    const q = h.drv.queues[0]!
    expect(
      writesWithin(h.guest, [
        [DATA, DATA + SECTOR_SIZE],
        [STATUS, STATUS + 1],
        [q.used, q.used + 6 + 8 * 16]
      ])
    ).toBe(true)
  })

  it("honours avail NO_INTERRUPT and serves requests kicked before DRIVER_OK once it is set", () => {
    const h = setupBlk()
    h.drv.init(1)
    h.drv.queues[0]!.setAvailFlags(1)
    expect(blkRequest(h, VirtioBlkType.FLUSH, 0).used).toHaveLength(1)
    expect(h.irq.raises).toBe(0)

    const early = setupBlk()
    early.drv.negotiate()
    early.drv.setupQueue(0, 16, 0x1000)
    const r = blkRequest(early, VirtioBlkType.FLUSH, 0)
    expect(r.used).toHaveLength(0)
    expect(early.store.flushes).toBe(0)
    early.drv.driverOk()
    expect(early.drv.queues[0]!.collect()).toHaveLength(1)
    expect(early.store.flushes).toBe(1)
  })

  it("serves a whole batch in one notification, wrapping the 16-bit indices", () => {
    const h = setupBlk()
    h.drv.init(1, 4)
    let done = 0
    for (let round = 0; round < 32_800; round++) {
      // 2-descriptor chains, two at a time in a ring of 4: past 65535 and around
      for (let i = 0; i < 2; i++) {
        h.guest.view.setUint32(HDR, VirtioBlkType.FLUSH, true)
        h.drv.queues[0]!.submit([
          { addr: HDR, len: 16 },
          { addr: STATUS + i, len: 1, write: true }
        ])
      }
      h.drv.kick(0)
      done += h.drv.queues[0]!.collect().length
    }
    expect(done).toBe(65_600)
    expect(h.store.flushes).toBe(65_600)
    expect(h.drv.status & VirtioStatus.DEVICE_NEEDS_RESET).toBe(0)
  })
})
