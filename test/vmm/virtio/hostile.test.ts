/**
 * Hostile rings (vmm/virtio/virtqueue.ts header, OASIS virtio 1.1 2.6.5
 * "The Virtqueue Descriptor Table", 2.6.5.3 "Indirect Descriptors", 2.6.6
 * "The Virtqueue Available Ring", 2.1.2 DEVICE_NEEDS_RESET): descriptor
 * loops, indices out of range, buffers outside guest RAM, huge lengths, an
 * available index that jumps, misordered and malformed chains. Each one
 * makes the device set DEVICE_NEEDS_RESET (with a configuration-change
 * interrupt) and stop that queue, without throwing, without writing
 * anything, and the device works again after a status reset.
 */
import { describe, expect, it } from "@effect/vitest"
import { blkRequest, setupBlk } from "../../../scripts/fuzz/virtio/blk-harness.ts"
import { type DriverQueue, type Guest, RAM_SIZE, writesWithin } from "../../../scripts/fuzz/virtio/driver.ts"
import { SECTOR_SIZE, VirtioBlkType } from "../../../vmm/virtio/blk.ts"
import { VirtioReg as R, VirtioFeature, VirtioInterrupt, VirtioStatus } from "../../../vmm/virtio/mmio.ts"
import { VirtqDesc } from "../../../vmm/virtio/virtqueue.ts"

const { NEXT, WRITE, INDIRECT } = VirtqDesc
const HDR = 0x20000
const BUF = 0x20100
const STATUS = 0x21000
const TABLE = 0x9000

/** A well-formed FLUSH request header at HDR. */
const flushHeader = (g: Guest) => {
  g.view.setUint32(HDR, VirtioBlkType.FLUSH, true)
  g.ram[STATUS] = 0xff
}

type Rig = (q: DriverQueue, g: Guest) => void

const cases: ReadonlyArray<readonly [string, Rig, RegExp, boolean?]> = [
  [
    "a two-descriptor loop",
    (q) => {
      q.setDesc(0, HDR, 16, NEXT, 1)
      q.setDesc(1, BUF, 16, NEXT, 0)
      q.publish(0)
    },
    /loop/
  ],
  [
    "a descriptor that is its own next",
    (q) => {
      q.setDesc(3, HDR, 16, NEXT, 3)
      q.publish(3)
    },
    /loop/
  ],
  [
    "a chain through every descriptor and back",
    (q) => {
      for (let i = 0; i < 16; i++) q.setDesc(i, HDR, 16, NEXT, (i + 1) % 16)
      q.publish(5)
    },
    /loop/
  ],
  [
    "a next index past the table",
    (q) => {
      q.setDesc(0, HDR, 16, NEXT, 16)
      q.publish(0)
    },
    /next 16/
  ],
  ["a head index past the table", (q) => q.publish(0xffff), /not below the queue size/],
  [
    "a buffer straddling the end of guest RAM",
    (q) => {
      q.setDesc(0, RAM_SIZE - 8, 16, NEXT, 1)
      q.setDesc(1, STATUS, 1, WRITE, 0)
      q.publish(0)
    },
    /outside guest memory/
  ],
  [
    "a buffer above 4 GiB",
    (q) => {
      q.setDesc(0, 2 ** 40 + HDR, 16, NEXT, 1)
      q.setDesc(1, STATUS, 1, WRITE, 0)
      q.publish(0)
    },
    /outside guest memory/
  ],
  [
    "a buffer at the top of the 64-bit space",
    (q, g) => {
      q.setDesc(0, HDR, 16, NEXT, 1)
      q.setDesc(1, 0, 16, WRITE, 0)
      g.view.setUint32(q.desc + 16, 0xfffffff8, true)
      g.view.setUint32(q.desc + 20, 0xffffffff, true)
      q.publish(0)
    },
    /outside guest memory/
  ],
  [
    "a huge length",
    (q) => {
      q.setDesc(0, HDR, 16, NEXT, 1)
      q.setDesc(1, BUF, 0xffffffff, WRITE, 0)
      q.publish(0)
    },
    /outside guest memory/
  ],
  [
    "an available index that jumps past the queue size",
    (q) => {
      q.setDesc(0, HDR, 16, NEXT, 1)
      q.setDesc(1, STATUS, 1, WRITE, 0)
      q.setAvailIdx(17)
    },
    /more than the queue size/
  ],
  ["an available index that runs backwards", (q) => q.setAvailIdx(0xfff0), /more than the queue size/],
  [
    "a device-readable buffer after a device-writable one",
    (q) => {
      q.setDesc(0, STATUS, 1, WRITE | NEXT, 1)
      q.setDesc(1, HDR, 16, 0, 0)
      q.publish(0)
    },
    /readable buffer after a device-writable/
  ],
  [
    "an indirect descriptor without VIRTIO_F_INDIRECT_DESC",
    (q) => {
      q.setDesc(0, TABLE, 32, INDIRECT, 0)
      q.publish(0)
    },
    /without VIRTIO_F_INDIRECT_DESC/
  ],
  [
    "an indirect descriptor with NEXT",
    (q) => {
      q.setDesc(0, TABLE, 32, INDIRECT | NEXT, 1)
      q.publish(0)
    },
    /with NEXT/,
    true
  ],
  [
    "an indirect table inside an indirect table",
    (q) => {
      q.setDesc(0, TABLE, 32, INDIRECT, 0)
      q.setDesc(0, TABLE + 0x100, 32, INDIRECT, 0, TABLE)
      q.publish(0)
    },
    /inside an indirect table/,
    true
  ],
  [
    "an indirect table whose length is not a multiple of 16",
    (q) => {
      q.setDesc(0, TABLE, 24, INDIRECT, 0)
      q.publish(0)
    },
    /multiple of 16/,
    true
  ],
  [
    "an indirect table past the end of guest RAM",
    (q) => {
      q.setDesc(0, RAM_SIZE - 16, 64, INDIRECT, 0)
      q.publish(0)
    },
    /indirect table outside/,
    true
  ],
  [
    "an indirect descriptor in the middle of a chain",
    (q) => {
      q.setDesc(0, HDR, 16, NEXT, 1)
      q.setDesc(1, TABLE, 32, INDIRECT, 0)
      q.publish(0)
    },
    /not at the head/,
    true
  ],
  [
    "a loop inside an indirect table",
    (q) => {
      q.setDesc(0, TABLE, 48, INDIRECT, 0)
      q.setDesc(0, HDR, 16, NEXT, 1, TABLE)
      q.setDesc(1, BUF, 16, NEXT, 2, TABLE)
      q.setDesc(2, BUF, 16, NEXT, 1, TABLE)
      q.publish(0)
    },
    /loop/,
    true
  ],
  [
    "a block request without a 16-byte header",
    (q) => {
      q.setDesc(0, HDR, 8, NEXT, 1)
      q.setDesc(1, STATUS, 1, WRITE, 0)
      q.publish(0)
    },
    /header shorter/
  ],
  [
    "a block request without a status byte",
    (q) => {
      q.setDesc(0, HDR, 16, 0, 0)
      q.publish(0)
    },
    /no writable status byte/
  ]
]

describe("hostile rings => DEVICE_NEEDS_RESET, no exception, nothing written", () => {
  for (const [name, rig, reason, indirect] of cases) {
    it(name, () => {
      const h = setupBlk()
      const want = VirtioFeature.VERSION_1 | (indirect ? VirtioFeature.INDIRECT_DESC : 0n)
      h.drv.init(1, 16, want)
      const q = h.drv.queues[0]!
      flushHeader(h.guest)
      h.guest.writes.length = 0
      rig(q, h.guest)
      const rigged = h.guest.ram.slice()
      expect(() => h.drv.kick(0)).not.toThrow()

      expect(h.drv.status & VirtioStatus.DEVICE_NEEDS_RESET).toBe(VirtioStatus.DEVICE_NEEDS_RESET)
      expect(h.drv.r(R.INTERRUPT_STATUS) & VirtioInterrupt.CONFIG_CHANGE).toBe(VirtioInterrupt.CONFIG_CHANGE)
      expect(h.irq.level).toBe(true)
      expect(h.dev.stats().error).toMatch(reason)
      expect(h.guest.writes).toEqual([])
      expect(h.guest.ram.every((b, i) => b === rigged[i])).toBe(true)
      expect(h.guest.refused.count).toBe(0)
      expect(h.guest.canariesIntact()).toBe(true)
      expect(h.store.flushes).toBe(0)

      // the queue stays stopped: more kicks do nothing
      expect(() => h.drv.kick(0)).not.toThrow()
      expect(h.guest.writes).toEqual([])

      // a status reset brings the device back
      h.drv.ack()
      expect(h.irq.level).toBe(false)
      h.drv.init(1, 16, want)
      expect(h.drv.status & VirtioStatus.DEVICE_NEEDS_RESET).toBe(0)
      const data = Uint8Array.from({ length: SECTOR_SIZE }, (_, i) => i & 0xff)
      expect(blkRequest(h, VirtioBlkType.OUT, 7, { out: data }).status).toBe(0)
      expect(h.store.data.slice(7 * SECTOR_SIZE, 8 * SECTOR_SIZE)).toEqual(data)
    })
  }

  it("serves the good requests before a bad one, writing only their buffers and the used ring", () => {
    const h = setupBlk()
    h.drv.init(1)
    const q = h.drv.queues[0]!
    flushHeader(h.guest)
    h.guest.writes.length = 0
    q.setDesc(0, HDR, 16, NEXT, 1)
    q.setDesc(1, STATUS, 1, WRITE, 0)
    q.publish(0)
    q.setDesc(2, HDR, 16, NEXT, 3)
    q.setDesc(3, BUF, 0x7fffffff, WRITE, 0)
    q.publish(2)
    q.publish(0)
    h.drv.kick(0)
    expect(h.store.flushes).toBe(1)
    expect(q.usedIdx()).toBe(1)
    expect(h.drv.status & VirtioStatus.DEVICE_NEEDS_RESET).toBe(VirtioStatus.DEVICE_NEEDS_RESET)
    expect(
      writesWithin(h.guest, [
        [STATUS, STATUS + 1],
        [q.used, q.used + 6 + 8 * 16]
      ])
    ).toBe(true)
    expect(h.irq.level).toBe(true)
    expect(h.drv.r(R.INTERRUPT_STATUS)).toBe(VirtioInterrupt.USED_BUFFER | VirtioInterrupt.CONFIG_CHANGE)
  })

  it("a driver that sets FAILED stops the device until reset", () => {
    const h = setupBlk()
    h.drv.init(1)
    h.drv.w(R.STATUS, h.drv.status | VirtioStatus.FAILED)
    expect(h.dev.live).toBe(false)
    expect(blkRequest(h, VirtioBlkType.FLUSH, 0).used).toEqual([])
    expect(h.store.flushes).toBe(0)
    h.drv.init(1)
    expect(blkRequest(h, VirtioBlkType.FLUSH, 0).status).toBe(0)
  })
})
