/**
 * fast-check properties of the virtio devices (vmm/virtio/: the mmio.ts
 * and virtqueue.ts headers; OASIS virtio 1.1 2.6 split virtqueues, 4.2
 * virtio-mmio, 5.1 net, 5.2 block):
 *
 * 1. random register traffic (any offset, size, value), random pokes into
 *    guest RAM (rings included), proper initializations in between, and
 *    frames arriving from the switch never throw, never make the device try
 *    a write outside guest RAM (GuestMemory never refuses one, the canaries
 *    around RAM stay intact), and after a status reset the device works;
 * 2. random ring contents (descriptors, heads, avail.idx, request headers)
 *    on an initialized device never throw, and the device writes only the
 *    used ring and the buffers of device-writable descriptors (with
 *    indirect tables: nothing below the buffer area but the used ring);
 *    then a status reset brings it back.
 */
import { describe, expect, it } from "@effect/vitest"
import fc from "fast-check"
import { VSwitch } from "../../../kernel/vswitch/vswitch.ts"
import { SECTOR_SIZE, VirtioBlkStatus, VirtioBlkType } from "../../../vmm/virtio/blk.ts"
import { VirtioReg as R, VirtioFeature } from "../../../vmm/virtio/mmio.ts"
import { VirtqDesc } from "../../../vmm/virtio/virtqueue.ts"
import { blkRequest, setupBlk } from "./blk-harness.ts"
import { type Guest, RAM_SIZE, writesWithin } from "./driver.ts"
import { BROADCAST, frame, MAC_A, MAC_B, makeVm, recorder } from "./net-harness.ts"

const BUFFER_AREA = 0x10000
const QUEUE_SIZE = 8

/** The device under test, blk or net, with a way to prove it works. */
const rig = (kind: "blk" | "net") => {
  if (kind === "blk") {
    const h = setupBlk()
    return {
      guest: h.guest,
      drv: h.drv,
      queues: 1,
      frameIn: (_len: number) => {},
      /** A well-formed request through whatever queue the driver has now. */
      traffic: (n: number) => {
        if ((h.drv.queues[0]?.freeCount ?? 0) >= 3) blkRequest(h, VirtioBlkType.IN, n % 70, { inLength: SECTOR_SIZE })
      },
      worksAfterReset: () => {
        h.drv.init(1)
        const data = Uint8Array.from({ length: 2 * SECTOR_SIZE }, (_, i) => (i * 13) & 0xff)
        expect(blkRequest(h, VirtioBlkType.OUT, 9, { out: data }).status).toBe(VirtioBlkStatus.OK)
        const back = blkRequest(h, VirtioBlkType.IN, 9, { inLength: 2 * SECTOR_SIZE })
        expect(back.status).toBe(VirtioBlkStatus.OK)
        expect(back.data).toEqual(data)
      }
    }
  }
  const sw = new VSwitch()
  const vm = makeVm(sw, "pg", "vm", MAC_A)
  const peer = recorder(sw, "pg", "peer")
  return {
    guest: vm.guest,
    drv: vm.drv,
    queues: 2,
    frameIn: (len: number) => peer.attachment.port.send(frame(MAC_A, MAC_B, Math.max(0, len - 14))),
    traffic: (n: number) => {
      const [rx, tx] = vm.drv.queues
      if (rx && rx.freeCount >= 1) vm.postRx(1)
      if (tx && tx.freeCount >= 2) vm.send(frame(BROADCAST, MAC_A, n % 1500))
      rx?.collect()
    },
    worksAfterReset: () => {
      vm.up()
      vm.postRx(2)
      const f = frame(MAC_A, MAC_B, 200, 7)
      peer.attachment.port.send(f)
      expect(vm.received()).toEqual([f])
      peer.got.length = 0
      const g = frame(BROADCAST, MAC_A, 64, 8)
      vm.send(g)
      expect(peer.got).toEqual([g])
    }
  }
}

const check = (guest: Guest) => {
  expect(guest.refused.count).toBe(0)
  expect(guest.canariesIntact()).toBe(true)
}

const registers = Object.values(R)
const offset = fc.oneof(
  { weight: 8, arbitrary: fc.constantFrom(...registers) },
  { weight: 1, arbitrary: fc.integer({ min: -8, max: 0x210 }) }
)
const value = fc.oneof(
  fc.integer({ min: 0, max: 16 }),
  fc.constantFrom(0x3, 0x7, 0xb, 0xf, 0x40, 0x80, 0xff, 0x1000, 0x2000, 0x3000, 0x4000, 0x5000, 0x6000),
  fc.nat(RAM_SIZE),
  fc.integer({ min: 0, max: 0xffffffff })
)
const op = fc.oneof(
  {
    weight: 6,
    arbitrary: fc.record({ k: fc.constant("w" as const), offset, size: fc.constantFrom(1, 2, 4, 4, 4), value })
  },
  { weight: 2, arbitrary: fc.record({ k: fc.constant("r" as const), offset, size: fc.constantFrom(1, 2, 4) }) },
  {
    weight: 3,
    arbitrary: fc.record({
      k: fc.constant("poke" as const),
      at: fc.oneof(fc.integer({ min: 0x1000, max: 0x7ff0 }), fc.nat(RAM_SIZE - 16)),
      bytes: fc.uint8Array({ minLength: 1, maxLength: 16 })
    })
  },
  {
    weight: 1,
    arbitrary: fc.record({
      k: fc.constant("init" as const),
      size: fc.constantFrom(1, 2, 4, 8, 16),
      indirect: fc.boolean()
    })
  },
  { weight: 1, arbitrary: fc.record({ k: fc.constant("frame" as const), len: fc.integer({ min: 0, max: 1600 }) }) },
  { weight: 4, arbitrary: fc.record({ k: fc.constant("traffic" as const), n: fc.nat(5000) }) }
)

describe("virtio properties", () => {
  it("random register traffic and RAM never throw or write outside RAM, and a reset brings the device back", () => {
    fc.assert(
      fc.property(
        fc.constantFrom("blk" as const, "net" as const),
        fc.array(op, { minLength: 10, maxLength: 80, size: "medium" }),
        (kind, ops) => {
          const t = rig(kind)
          for (const o of ops) {
            if (o.k === "w") t.drv.dev.write(o.offset, o.size, o.value)
            else if (o.k === "r") t.drv.dev.read(o.offset, o.size)
            else if (o.k === "poke") t.guest.ram.set(o.bytes, o.at)
            else if (o.k === "init")
              t.drv.init(t.queues, o.size, VirtioFeature.VERSION_1 | (o.indirect ? VirtioFeature.INDIRECT_DESC : 0n))
            else if (o.k === "frame") t.frameIn(o.len)
            else t.traffic(o.n)
          }
          check(t.guest)
          t.worksAfterReset()
          check(t.guest)
        }
      ),
      { numRuns: 250, seed: 61 }
    )
  })

  const address = fc.oneof(
    { weight: 16, arbitrary: fc.integer({ min: BUFFER_AREA, max: RAM_SIZE - 0x1000 }) },
    { weight: 1, arbitrary: fc.constantFrom(RAM_SIZE - 4, RAM_SIZE, 2 ** 32 - 512, 2 ** 40, 0xfffffff0 * 2 ** 32) }
  )
  const length = fc.oneof(
    { weight: 12, arbitrary: fc.integer({ min: 0, max: 2048 }) },
    { weight: 1, arbitrary: fc.constantFrom(16, 512, 1024, RAM_SIZE, 0x80000000, 0xffffffff) }
  )
  const index = fc.oneof({ weight: 12, arbitrary: fc.nat(QUEUE_SIZE - 1) }, fc.constantFrom(QUEUE_SIZE, 0xffff))
  const flags = fc
    .record({ next: fc.boolean(), write: fc.boolean(), indirect: fc.nat(11) })
    .map(
      (f) =>
        (f.next ? VirtqDesc.NEXT : 0) | (f.write ? VirtqDesc.WRITE : 0) | (f.indirect === 0 ? VirtqDesc.INDIRECT : 0)
    )
  const descriptor = fc.record({ addr: address, len: length, flags, next: index })
  const request = fc.record({
    at: fc.integer({ min: BUFFER_AREA, max: RAM_SIZE - 16 }),
    type: fc.constantFrom(0, 1, 4, 8, 11, 0xffffffff),
    sector: fc.oneof(fc.nat(70), fc.constant(2 ** 40))
  })
  const ring = fc.record({
    kind: fc.constantFrom("blk" as const, "net" as const),
    queue: fc.nat(1),
    indirect: fc.boolean(),
    descs: fc.array(descriptor, { minLength: QUEUE_SIZE, maxLength: QUEUE_SIZE }),
    heads: fc.array(index, { minLength: QUEUE_SIZE, maxLength: QUEUE_SIZE }),
    availIdx: fc.oneof({ weight: 12, arbitrary: fc.nat(QUEUE_SIZE) }, fc.constantFrom(QUEUE_SIZE + 1, 0x8000, 0xffff)),
    requests: fc.array(request, { maxLength: 8 }),
    /** Start from well-formed two-descriptor chains (header, then data + status), then corrupt a few descriptors. */
    template: fc.boolean(),
    writableLengths: fc.array(fc.constantFrom(1, 100, 513, 1025, 2048), { minLength: 4, maxLength: 4 }),
    mutations: fc.array(fc.record({ i: fc.nat(QUEUE_SIZE - 1), d: descriptor }), { maxLength: 3 }),
    frames: fc.array(fc.integer({ min: 0, max: 1600 }), { maxLength: 4 })
  })

  it("random ring contents never throw and only the used ring and device-writable buffers are written", () => {
    fc.assert(
      fc.property(ring, (r) => {
        const t = rig(r.kind)
        t.drv.init(t.queues, QUEUE_SIZE, VirtioFeature.VERSION_1 | (r.indirect ? VirtioFeature.INDIRECT_DESC : 0n))
        const index = r.kind === "blk" ? 0 : r.queue
        const q = t.drv.queues[index]!
        const descs = [...r.descs]
        if (r.template) {
          for (let k = 0; k < QUEUE_SIZE / 2; k++) {
            const header = r.requests[k]?.at ?? BUFFER_AREA + 0x100 * k
            descs[2 * k] = { addr: header, len: 16, flags: VirtqDesc.NEXT, next: 2 * k + 1 }
            const len = r.writableLengths[k]!
            descs[2 * k + 1] = { addr: BUFFER_AREA + 0x8000 + 0x1000 * k, len, flags: VirtqDesc.WRITE, next: 0 }
          }
          for (const m of r.mutations) descs[m.i] = m.d
        }
        for (const [i, d] of descs.entries()) q.setDesc(i, d.addr, d.len, d.flags, d.next)
        for (const [i, head] of r.heads.entries()) {
          const h = r.template && i < QUEUE_SIZE / 2 && head < QUEUE_SIZE ? 2 * (head % (QUEUE_SIZE / 2)) : head
          t.guest.view.setUint16(q.avail + 4 + 2 * i, h, true)
        }
        for (const req of r.requests) {
          t.guest.view.setUint32(req.at, req.type, true)
          t.guest.view.setUint32(req.at + 8, req.sector % 2 ** 32, true)
          t.guest.view.setUint32(req.at + 12, Math.floor(req.sector / 2 ** 32), true)
        }
        q.setAvailIdx(r.availIdx)
        t.guest.writes.length = 0

        t.drv.kick(index)
        for (const len of r.frames) t.frameIn(len)
        t.drv.dev.read(R.STATUS, 4)

        check(t.guest)
        const usedRing = [q.used, q.used + 6 + 8 * QUEUE_SIZE] as const
        const writable = descs
          .filter((d) => d.flags & VirtqDesc.WRITE && !(d.flags & VirtqDesc.INDIRECT))
          .map((d) => [d.addr, d.addr + d.len] as const)
        const allowed = r.indirect ? [usedRing, [BUFFER_AREA, RAM_SIZE] as const] : [usedRing, ...writable]
        expect(writesWithin(t.guest, allowed)).toBe(true)

        t.worksAfterReset()
        check(t.guest)
      }),
      { numRuns: 300, seed: 62 }
    )
  })
})
