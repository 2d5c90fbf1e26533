/**
 * Fuzz suite `virtio` (issue 8): the virtio-mmio transport and the split
 * virtqueues behind virtio-blk and virtio-net (vmm/virtio/: the mmio.ts and
 * virtqueue.ts headers; OASIS virtio 1.1 2.6 split virtqueues, 4.2
 * virtio-mmio, 5.1 net, 5.2 block) driven by a hostile driver. Three kinds
 * of case, on either device:
 *
 * - `registers`: random register traffic (any offset, size, value), random
 *   pokes into guest RAM (rings included), proper initializations in
 *   between, well-formed traffic and frames arriving from the switch;
 * - `ring`: an initialized device whose ring holds random descriptors,
 *   heads, avail.idx and request headers, made hostile on purpose:
 *   descriptor loops (next back into the chain, a descriptor that is its
 *   own next, a ring through the whole table), chains longer than the
 *   queue inside an indirect table, indirect tables that are the
 *   descriptor table itself or contain themselves (nested indirect, which
 *   2.6.5.3.1 forbids), buffers straddling the end of RAM or beyond 4 GiB,
 *   lengths 0 and 0xffffffff, avail.idx jumping by more than the queue size;
 *   then a second kick after avail.idx moves again;
 * - `vm`: the same kind of traffic from a real guest (scripts/fuzz/virtio/vm.ts):
 *   its stores reach the transport through EPT-violation exits and the
 *   device reaches the VM's own frames; the guest ends by resetting the
 *   device and doing one request through it.
 *
 * The property: nothing throws; GuestMemory never refuses a device write
 * (the device never tries to reach outside the VM's RAM) and the canaries
 * around RAM (or, in a real VM, every machine frame the VM does not own)
 * stay intact; in `ring` cases the device writes only the used rings and
 * buffers that device-writable descriptors describe (checked at every write,
 * against RAM as the device saw it); and after a status reset the device
 * works (a block write read back; a frame each way).
 */
import { Effect } from "effect"
import fc from "fast-check"
import { VSwitch } from "../../../kernel/vswitch/vswitch.ts"
import { SECTOR_SIZE, VirtioBlkStatus, VirtioBlkType } from "../../../vmm/virtio/blk.ts"
import { VirtioReg as R, VirtioFeature } from "../../../vmm/virtio/mmio.ts"
import { MAX_INDIRECT, VirtqDesc } from "../../../vmm/virtio/virtqueue.ts"
import type { FuzzSuite } from "../campaign.ts"
import { blkRequest, setupBlk } from "../virtio/blk-harness.ts"
import { type DriverQueue, type Guest, must, RAM_SIZE } from "../virtio/driver.ts"
import { BROADCAST, frame, MAC_A, MAC_B, makeVm, recorder } from "../virtio/net-harness.ts"
import { renderVmCase, runVirtioVm, type VmCase, vmCase } from "../virtio/vm.ts"

export type DeviceKind = "blk" | "net"

/** Buffers and tables live here and above; the rings (driver.ts init) sit at 0x1000..0x7000. */
const BUFFER_AREA = 0x10000
/** Where the ring cases put their indirect table (room for MAX_INDIRECT entries below RAM_SIZE). */
const TABLE = 0x3a000
const QUEUE_SIZE = 8
/** Entries of the indirect table a case writes (more than QUEUE_SIZE: an indirect chain may be longer). */
const TABLE_ENTRIES = 24
const { NEXT, WRITE, INDIRECT } = VirtqDesc

const sameBytes = (a: Uint8Array | undefined, b: Uint8Array): boolean =>
  a !== undefined && a.length === b.length && a.every((x, i) => x === b[i])

/** The device under test, blk or net, with a way to prove it works. */
const rig = (kind: DeviceKind) => {
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
        const out = blkRequest(h, VirtioBlkType.OUT, 9, { out: data })
        must(out.status === VirtioBlkStatus.OK, `after a reset, a block write completed with status ${out.status}`)
        const back = blkRequest(h, VirtioBlkType.IN, 9, { inLength: 2 * SECTOR_SIZE })
        must(back.status === VirtioBlkStatus.OK, `after a reset, a block read completed with status ${back.status}`)
        must(sameBytes(back.data, data), "after a reset, a block read did not return what was written")
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
      const got = vm.received()
      must(got.length === 1 && sameBytes(got[0], f), `after a reset, the guest received ${got.length} frames, not f`)
      peer.got.length = 0
      const g = frame(BROADCAST, MAC_A, 64, 8)
      vm.send(g)
      must(
        peer.got.length === 1 && sameBytes(peer.got[0], g),
        `after a reset, the peer received ${peer.got.length} frames, not the one sent`
      )
    }
  }
}

/** No device write refused by GuestMemory (none outside RAM), the canaries around RAM intact. */
const checkMemory = (guest: Guest, when: string) => {
  must(guest.refused.count === 0, `${when}: the device tried ${guest.refused.count} writes outside guest RAM`)
  must(guest.canariesIntact(), `${when}: the canaries around guest RAM were overwritten`)
}

// ---- case `registers` ------------------------------------------------------------------------------

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
const registerOp = fc.oneof(
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
export type RegisterOp = typeof registerOp extends fc.Arbitrary<infer T> ? T : never

export interface RegistersCase {
  readonly kind: "registers"
  readonly device: DeviceKind
  readonly ops: ReadonlyArray<RegisterOp>
}

const checkRegisters = (c: RegistersCase) => {
  const t = rig(c.device)
  for (const o of c.ops) {
    if (o.k === "w") t.drv.dev.write(o.offset, o.size as 1 | 2 | 4, o.value)
    else if (o.k === "r") t.drv.dev.read(o.offset, o.size as 1 | 2 | 4)
    else if (o.k === "poke") t.guest.ram.set(o.bytes, o.at)
    else if (o.k === "init")
      t.drv.init(t.queues, o.size, VirtioFeature.VERSION_1 | (o.indirect ? VirtioFeature.INDIRECT_DESC : 0n))
    else if (o.k === "frame") t.frameIn(o.len)
    else t.traffic(o.n)
  }
  checkMemory(t.guest, "after the register traffic")
  t.worksAfterReset()
  checkMemory(t.guest, "after the reset")
}

const hex = (n: number) => `0x${n.toString(16)}`

const renderRegisterOp = (o: RegisterOp): string =>
  o.k === "w"
    ? `write ${hex(o.offset)}/${o.size} = ${hex(o.value)}`
    : o.k === "r"
      ? `read ${hex(o.offset)}/${o.size}`
      : o.k === "poke"
        ? `poke ${hex(o.at)}: ${[...o.bytes].map((b) => b.toString(16).padStart(2, "0")).join(" ")}`
        : o.k === "init"
          ? `init (queue size ${o.size}${o.indirect ? ", INDIRECT_DESC" : ""})`
          : o.k === "frame"
            ? `frame of ${o.len} bytes from the switch`
            : `well-formed traffic (${o.n})`

// ---- case `ring` -----------------------------------------------------------------------------------

export interface Desc {
  readonly addr: number
  readonly len: number
  readonly flags: number
  readonly next: number
}

/** A deliberate hostility, applied to the descriptor table (or the indirect table) after everything else. */
export type Hostility =
  /** descs[from] continues (NEXT) at `to`: with `to` earlier in the chain, a loop. */
  | { readonly h: "loop"; readonly from: number; readonly to: number }
  /** A descriptor that is its own next. */
  | { readonly h: "self"; readonly at: number }
  /** 0 -> 1 -> ... -> Q-1 -> 0: a chain through every descriptor and back. */
  | { readonly h: "ring" }
  /** An indirect descriptor whose table is the descriptor table itself. */
  | { readonly h: "selfTable"; readonly at: number }
  /** An indirect descriptor -> TABLE, and TABLE[entry] is an indirect descriptor -> TABLE again (2.6.5.3.1). */
  | { readonly h: "nested"; readonly at: number; readonly entry: number }
  /** An indirect descriptor -> a linear chain of `entries` in TABLE: longer than the queue; `back` >= 0 closes a loop. */
  | { readonly h: "long"; readonly at: number; readonly entries: number; readonly back: number }
  /** descs[at] is a buffer that starts `before` bytes before the end of RAM and is `len` long. */
  | { readonly h: "straddle"; readonly at: number; readonly before: number; readonly len: number }
  /** descs[at] gets an extreme length. */
  | { readonly h: "len"; readonly at: number; readonly len: number }
  /** An indirect descriptor whose table starts 16 * `before` bytes before the end of RAM, `entries` long. */
  | { readonly h: "tableOut"; readonly at: number; readonly before: number; readonly entries: number }

export interface RingCase {
  readonly kind: "ring"
  readonly device: DeviceKind
  /** net: 0 receiveq, 1 transmitq (blk has only 0). */
  readonly queue: number
  /** Negotiate VIRTIO_F_INDIRECT_DESC. */
  readonly indirect: boolean
  readonly descs: ReadonlyArray<Desc>
  /** The indirect table's entries at TABLE. */
  readonly table: ReadonlyArray<Desc>
  readonly heads: ReadonlyArray<number>
  readonly availIdx: number
  readonly requests: ReadonlyArray<{ readonly at: number; readonly type: number; readonly sector: number }>
  /** Start from well-formed two-descriptor chains (header, then data + status), then corrupt a few descriptors. */
  readonly template: boolean
  readonly writableLengths: ReadonlyArray<number>
  readonly mutations: ReadonlyArray<{ readonly i: number; readonly d: Desc }>
  readonly hostile: ReadonlyArray<Hostility>
  readonly frames: ReadonlyArray<number>
  /** After the first kick, move avail.idx on by this much and kick again. */
  readonly again: number | null
}

const address = fc.oneof(
  { weight: 14, arbitrary: fc.integer({ min: BUFFER_AREA, max: RAM_SIZE - 0x1000 }) },
  { weight: 2, arbitrary: fc.constant(TABLE) },
  { weight: 1, arbitrary: fc.integer({ min: RAM_SIZE - 32, max: RAM_SIZE + 16 }) },
  {
    weight: 1,
    arbitrary: fc.constantFrom(
      0,
      0x1000,
      RAM_SIZE - 4,
      2 ** 32 - 512,
      2 ** 32,
      2 ** 40,
      0xfffffff0 * 2 ** 32,
      2 ** 64 - 4096
    )
  }
)
const length = fc.oneof(
  { weight: 10, arbitrary: fc.integer({ min: 0, max: 2048 }) },
  { weight: 2, arbitrary: fc.constantFrom(0, 1, 16, 32, 48, 512, 1024, 0xffffffff) },
  {
    weight: 1,
    arbitrary: fc.constantFrom(RAM_SIZE, 0x80000000, 0xfffffff0, 16 * MAX_INDIRECT, 16 * (MAX_INDIRECT + 1))
  }
)
const index = (size: number) => fc.oneof({ weight: 12, arbitrary: fc.nat(size - 1) }, fc.constantFrom(size, 0xffff))
const flags = fc
  .record({ next: fc.boolean(), write: fc.boolean(), indirect: fc.nat(7) })
  .map((f) => (f.next ? NEXT : 0) | (f.write ? WRITE : 0) | (f.indirect === 0 ? INDIRECT : 0))
const descriptor = (size: number): fc.Arbitrary<Desc> =>
  fc.record({ addr: address, len: length, flags, next: index(size) })
const slot = fc.nat(QUEUE_SIZE - 1)
const hostility: fc.Arbitrary<Hostility> = fc.oneof(
  fc.record({ h: fc.constant("loop" as const), from: slot, to: slot }),
  fc.record({ h: fc.constant("self" as const), at: slot }),
  fc.constant({ h: "ring" as const }),
  fc.record({ h: fc.constant("selfTable" as const), at: slot }),
  fc.record({ h: fc.constant("nested" as const), at: slot, entry: fc.nat(3) }),
  fc.record({
    h: fc.constant("long" as const),
    at: slot,
    entries: fc.integer({ min: QUEUE_SIZE + 1, max: TABLE_ENTRIES }),
    back: fc.oneof(fc.constant(-1), fc.nat(TABLE_ENTRIES - 1))
  }),
  fc.record({
    h: fc.constant("straddle" as const),
    at: slot,
    before: fc.integer({ min: 1, max: 16 }),
    len: fc.integer({ min: 2, max: 32 })
  }),
  fc.record({ h: fc.constant("len" as const), at: slot, len: fc.constantFrom(0, 0xffffffff, 0x80000000) }),
  fc.record({
    h: fc.constant("tableOut" as const),
    at: slot,
    before: fc.nat(3),
    entries: fc.integer({ min: 1, max: 4 })
  })
)

const ringCase: fc.Arbitrary<RingCase> = fc.record({
  kind: fc.constant("ring" as const),
  device: fc.constantFrom<DeviceKind>("blk", "net"),
  queue: fc.nat(1),
  indirect: fc.boolean(),
  descs: fc.array(descriptor(QUEUE_SIZE), { minLength: QUEUE_SIZE, maxLength: QUEUE_SIZE }),
  table: fc.array(descriptor(TABLE_ENTRIES), { maxLength: TABLE_ENTRIES }),
  heads: fc.array(index(QUEUE_SIZE), { minLength: QUEUE_SIZE, maxLength: QUEUE_SIZE }),
  availIdx: fc.oneof(
    { weight: 12, arbitrary: fc.nat(QUEUE_SIZE) },
    fc.constantFrom(QUEUE_SIZE + 1, 0x8000, 0xffff),
    fc.integer({ min: QUEUE_SIZE + 1, max: 0xffff })
  ),
  requests: fc.array(
    fc.record({
      at: fc.integer({ min: BUFFER_AREA, max: RAM_SIZE - 16 }),
      type: fc.constantFrom(0, 1, 4, 8, 11, 0xffffffff),
      sector: fc.oneof(fc.nat(70), fc.constant(2 ** 40))
    }),
    { maxLength: 8 }
  ),
  template: fc.boolean(),
  writableLengths: fc.array(fc.constantFrom(1, 100, 513, 1025, 2048), { minLength: 4, maxLength: 4 }),
  mutations: fc.array(fc.record({ i: slot, d: descriptor(QUEUE_SIZE) }), { maxLength: 3 }),
  hostile: fc.array(hostility, { maxLength: 3 }),
  frames: fc.array(fc.integer({ min: 0, max: 1600 }), { maxLength: 4 }),
  again: fc.option(fc.integer({ min: 0, max: QUEUE_SIZE + 2 }))
})

/** The descriptor table, indirect table and avail.ring a ring case puts in guest RAM (with the ring's areas). */
export const materialize = (r: RingCase, descTable: number) => {
  const descs = [...r.descs]
  const table: Array<Desc> = [...r.table]
  const heads = [...r.heads]
  if (r.template) {
    for (let k = 0; k < QUEUE_SIZE / 2; k++) {
      const header = r.requests[k]?.at ?? BUFFER_AREA + 0x100 * k
      descs[2 * k] = { addr: header, len: 16, flags: NEXT, next: 2 * k + 1 }
      const len = r.writableLengths[k]!
      descs[2 * k + 1] = { addr: BUFFER_AREA + 0x8000 + 0x1000 * k, len, flags: WRITE, next: 0 }
    }
    for (const m of r.mutations) descs[m.i] = m.d
    for (let i = 0; i < QUEUE_SIZE / 2; i++) {
      const head = heads[i]!
      if (head < QUEUE_SIZE) heads[i] = 2 * (head % (QUEUE_SIZE / 2))
    }
  }
  for (const x of r.hostile) {
    switch (x.h) {
      case "loop":
        descs[x.from] = { ...descs[x.from]!, flags: (descs[x.from]!.flags & ~INDIRECT) | NEXT, next: x.to }
        break
      case "self":
        descs[x.at] = { ...descs[x.at]!, flags: (descs[x.at]!.flags & ~INDIRECT) | NEXT, next: x.at }
        break
      case "ring":
        for (let i = 0; i < QUEUE_SIZE; i++)
          descs[i] = { addr: BUFFER_AREA + 0x10 * i, len: 16, flags: NEXT, next: (i + 1) % QUEUE_SIZE }
        break
      case "selfTable":
        descs[x.at] = { addr: descTable, len: 16 * QUEUE_SIZE, flags: INDIRECT, next: 0 }
        break
      case "nested":
        descs[x.at] = { addr: TABLE, len: 16 * (x.entry + 1), flags: INDIRECT, next: 0 }
        while (table.length <= x.entry) table.push({ addr: BUFFER_AREA, len: 16, flags: NEXT, next: table.length + 1 })
        table[x.entry] = { addr: TABLE, len: 16 * (x.entry + 1), flags: INDIRECT, next: 0 }
        break
      case "long":
        descs[x.at] = { addr: TABLE, len: 16 * x.entries, flags: INDIRECT, next: 0 }
        for (let k = 0; k < x.entries; k++) {
          const last = k === x.entries - 1
          table[k] = {
            addr: BUFFER_AREA + 0x20 * k,
            len: k === 0 ? 16 : 8,
            flags: (k === 0 ? 0 : WRITE) | (last && x.back < 0 ? 0 : NEXT),
            next: last ? Math.max(0, x.back) % x.entries : k + 1
          }
        }
        break
      case "straddle":
        descs[x.at] = { ...descs[x.at]!, addr: RAM_SIZE - x.before, len: x.len }
        break
      case "len":
        descs[x.at] = { ...descs[x.at]!, len: x.len }
        break
      case "tableOut":
        descs[x.at] = { addr: RAM_SIZE - 16 * x.before, len: 16 * x.entries, flags: INDIRECT, next: 0 }
        break
    }
  }
  return { descs, table, heads }
}

const readDesc = (guest: Guest, at: number): Desc => {
  const v = guest.view
  return {
    addr: v.getUint32(at, true) + v.getUint32(at + 4, true) * 2 ** 32,
    len: v.getUint32(at + 8, true),
    flags: v.getUint16(at + 12, true),
    next: v.getUint16(at + 14, true)
  }
}

/**
 * Every region the driver's rings let the device write, read from RAM now:
 * the used rings, and the buffers of device-writable descriptors in the
 * descriptor tables and in the indirect tables they point to (a superset of
 * what a correct device may write: it ignores which chains are published).
 */
const writableRegions = (guest: Guest, queues: ReadonlyArray<DriverQueue | undefined>) => {
  const regions: Array<readonly [number, number]> = []
  const buffer = (d: Desc) => {
    if (d.flags & WRITE && !(d.flags & INDIRECT) && d.len > 0) regions.push([d.addr, d.addr + d.len])
  }
  for (const q of queues) {
    if (q === undefined) continue
    regions.push([q.used, q.used + 6 + 8 * q.size])
    for (let i = 0; i < q.size; i++) {
      const d = readDesc(guest, q.desc + 16 * i)
      if (!(d.flags & INDIRECT)) {
        buffer(d)
        continue
      }
      // 2.6.5.3.1: the device ignores WRITE on the indirect descriptor itself; the table's entries count
      if (d.len === 0 || d.len % 16 !== 0 || d.len > 16 * MAX_INDIRECT || d.addr + d.len > RAM_SIZE) continue
      for (let k = 0; k < d.len / 16; k++) buffer(readDesc(guest, d.addr + 16 * k))
    }
  }
  return regions
}

/**
 * Checks each device write against the regions the rings describe at that
 * moment, keeping every region seen so far: a chain is read when it is
 * taken, and the first write after that sees RAM exactly as the device read
 * it, so a later write of the same chain is checked against that too.
 */
const writeOracle = (guest: Guest, queues: ReadonlyArray<DriverQueue | undefined>) => {
  const seen = new Map<string, readonly [number, number]>()
  const violations: Array<string> = []
  return {
    violations,
    observe: (gpa: number, len: number) => {
      for (const region of writableRegions(guest, queues)) seen.set(`${region[0]}:${region[1]}`, region)
      for (const [start, end] of seen.values()) if (gpa >= start && gpa + len <= end) return
      violations.push(`${hex(gpa)}+${len}`)
    }
  }
}

/** The queue a ring case fills, and where driver.ts's init puts its descriptor table. */
const queueOf = (r: RingCase) => (r.device === "blk" ? 0 : r.queue)
const descTableOf = (r: RingCase) => 0x1000 + 0x3000 * queueOf(r)

const checkRing = (r: RingCase) => {
  const t = rig(r.device)
  t.drv.init(t.queues, QUEUE_SIZE, VirtioFeature.VERSION_1 | (r.indirect ? VirtioFeature.INDIRECT_DESC : 0n))
  const index = queueOf(r)
  const q = t.drv.queues[index]!
  must(q.desc === descTableOf(r), `the driver put queue ${index} at ${hex(q.desc)}`)
  const m = materialize(r, q.desc)
  for (const req of r.requests) {
    t.guest.view.setUint32(req.at, req.type, true)
    t.guest.view.setUint32(req.at + 8, req.sector % 2 ** 32, true)
    t.guest.view.setUint32(req.at + 12, Math.floor(req.sector / 2 ** 32), true)
  }
  for (const [i, d] of m.table.entries()) q.setDesc(i, d.addr, d.len, d.flags, d.next, TABLE)
  for (const [i, d] of m.descs.entries()) q.setDesc(i, d.addr, d.len, d.flags, d.next)
  for (const [i, head] of m.heads.entries()) t.guest.view.setUint16(q.avail + 4 + 2 * i, head, true)
  q.setAvailIdx(r.availIdx)

  const oracle = writeOracle(t.guest, t.drv.queues)
  t.guest.beforeWrite = oracle.observe
  t.drv.kick(index)
  for (const len of r.frames) t.frameIn(len)
  if (r.again !== null) {
    q.setAvailIdx(r.availIdx + r.again)
    t.drv.kick(index)
  }
  t.drv.dev.read(R.STATUS, 4)
  t.guest.beforeWrite = undefined

  checkMemory(t.guest, "after the hostile ring")
  must(
    oracle.violations.length === 0,
    `the device wrote outside the used rings and device-writable buffers: ${oracle.violations.join(", ")}`
  )
  t.worksAfterReset()
  checkMemory(t.guest, "after the reset")
}

const flagText = (f: number) =>
  `${f & NEXT ? "N" : ""}${f & WRITE ? "W" : ""}${f & INDIRECT ? "I" : ""}${f & ~(NEXT | WRITE | INDIRECT) ? `+${hex(f)}` : ""}` ||
  "-"
const descLine = (i: number, d: Desc) => `  ${i}: ${hex(d.addr)} ${d.len} ${flagText(d.flags)} ${d.next}`

const renderRing = (r: RingCase): string => {
  const m = materialize(r, descTableOf(r))
  return [
    `ring: ${r.device} queue ${queueOf(r)} (size ${QUEUE_SIZE}, table at ${hex(descTableOf(r))}), ` +
      `INDIRECT_DESC ${r.indirect ? "on" : "off"}, avail.idx ${r.availIdx}` +
      (r.again === null ? "" : `, then avail.idx + ${r.again} and a second kick`),
    `hostilities: ${r.hostile.map((x) => JSON.stringify(x)).join(" ") || "none"}${r.template ? " (over the template)" : ""}`,
    "descriptor table (i: addr len flags next):",
    ...m.descs.map((d, i) => descLine(i, d)),
    ...(m.table.length > 0 ? [`indirect table at ${hex(TABLE)}:`, ...m.table.map((d, i) => descLine(i, d))] : []),
    `avail.ring: ${m.heads.join(" ")}`,
    `request headers: ${r.requests.map((q) => `${hex(q.at)} type ${hex(q.type)} sector ${q.sector}`).join("; ") || "none"}`,
    `frames from the switch: ${r.frames.join(" ") || "none"}`
  ].join("\n")
}

// ---- the suite -------------------------------------------------------------------------------------

export type VirtioCase = RegistersCase | RingCase | VmCase

const registersCase: fc.Arbitrary<RegistersCase> = fc.record({
  kind: fc.constant("registers" as const),
  device: fc.constantFrom<DeviceKind>("blk", "net"),
  ops: fc.array(registerOp, { minLength: 10, maxLength: 80, size: "medium" })
})

export const virtioCase: fc.Arbitrary<VirtioCase> = fc.oneof(
  { weight: 10, arbitrary: registersCase },
  { weight: 12, arbitrary: ringCase },
  { weight: 1, arbitrary: vmCase }
)

export const virtioSuite: FuzzSuite<VirtioCase> = {
  name: "virtio",
  description:
    "virtio-mmio registers and rings with hostile descriptors: loops, out-of-range addresses, huge lengths: " +
    "no host exception, no access outside the VM's memory, the device stays usable after a reset",
  arbitrary: virtioCase,
  ciRuns: 500,
  check: async (c) => {
    if (c.kind === "registers") checkRegisters(c)
    else if (c.kind === "ring") checkRing(c)
    else await Effect.runPromise(runVirtioVm(c))
  },
  render: (c) =>
    c.kind === "registers"
      ? [`registers: ${c.device}, ${c.ops.length} steps`, ...c.ops.map((o) => `  ${renderRegisterOp(o)}`)].join("\n")
      : c.kind === "ring"
        ? renderRing(c)
        : renderVmCase(c)
}
