/**
 * Fuzz suite `faults` (issue 8 "Fault injection"): the hardware under the
 * hypervisor fails while guests do I/O, and only the guest whose disk or
 * NIC failed notices, through its virtual device.
 *
 * The host: a Machine whose datastore disk is wrapped by `faultyDisk`
 * (scripts/fuzz/faults/backends.ts), the Datastore service on it, and two
 * guests A and B, each a virtio-blk driver (scripts/fuzz/virtio/) over its
 * own datastore file (a.disk, b.disk) through the VMM's datastoreBlockStore.
 * Media faults hit a.disk's extent only: read errors, write errors, torn
 * (short) writes, or one request in three. Also: a.disk deleted under A (and
 * maybe re-created, for someone else, in the same place), and the datastore
 * filled until creation is refused. On the network, guests A, B and C have
 * virtio-net NICs on one vSwitch port group, A's behind `faultyPort`
 * (lossy, or down: carrier lost).
 *
 * Checked after every step, against a model of what each guest was told:
 *   - A's request fails (virtio-blk status IOERR) whenever its medium is
 *     failing the operation or its file is gone, succeeds on a healthy
 *     medium, and fails under a flaky one only if a fault was injected
 *     during it: the guest is told, never lied to;
 *   - data a guest was acknowledged (status OK) is what later successful
 *     reads return, unless a later failed write to the same sector may have
 *     torn it; B never sees an error and its data is always exact;
 *   - a deleted file's old handle never reaches the file re-created in its
 *     place; a refused creation (full datastore) writes nothing to the disk;
 *   - A's transmissions always complete (the chain comes back) even when the
 *     frame is dropped; A's link status follows the carrier; frames between
 *     B and C are never lost; nothing throws.
 * At the end, with the medium healed, every acknowledged sector of A (if its
 * file still exists), of B and of the re-created file reads back exact
 * through the datastore, below the guests.
 */
import { Effect } from "effect"
import fc from "fast-check"
import type { BlockBackend } from "../../../hw/devices/block/backend.ts"
import { memoryBackend } from "../../../hw/devices/block/memory-backend.ts"
import { decodeMachineConfig, defaultMachineConfig } from "../../../hw/machine/config.ts"
import { Machine } from "../../../hw/machine/machine.ts"
import { Kernel } from "../../../kernel/boot.ts"
import { Datastore, type DatastoreShape } from "../../../kernel/datastore/service.ts"
import { VSwitch } from "../../../kernel/vswitch/vswitch.ts"
import { datastoreBlockStore } from "../../../vmm/platform/virtio.ts"
import { SECTOR_SIZE, VirtioBlkStatus, VirtioBlkType } from "../../../vmm/virtio/blk.ts"
import { VirtioReg } from "../../../vmm/virtio/mmio.ts"
import { type FuzzSuite, renderSteps } from "../campaign.ts"
import { type FaultyDisk, faultyDisk, faultyPort, type LinkFault, type MediaFault } from "../faults/backends.ts"
import { blkRequest, setupBlk } from "../virtio/blk-harness.ts"
import { frame, MAC_A, MAC_B, MAC_D, makeVm } from "../virtio/net-harness.ts"

const DISK_SECTORS = 4096 // 2 MiB datastore
const FILE_SECTORS = 48
const MAX_REQUEST = 8
const ISR_CONFIG_CHANGE = 2
const NET_STATUS = 0x100 + 6 // config space: mac[6], then status

type Guest = "a" | "b"
type Nic = "a" | "b" | "c"

export type FaultOp =
  | { readonly k: "write"; readonly vm: Guest; readonly sector: number; readonly count: number; readonly seed: number }
  | { readonly k: "read"; readonly vm: Guest; readonly sector: number; readonly count: number }
  | { readonly k: "flush"; readonly vm: Guest }
  | { readonly k: "media"; readonly fault: MediaFault }
  | { readonly k: "delete" }
  | { readonly k: "recreate"; readonly seed: number }
  | { readonly k: "fill" }
  | { readonly k: "link"; readonly fault: LinkFault }
  | { readonly k: "send"; readonly from: Nic; readonly to: Nic; readonly seed: number }

const guest = fc.constantFrom<Guest>("a", "a", "b")
const range = fc
  .record({ sector: fc.nat(FILE_SECTORS - 1), count: fc.integer({ min: 1, max: MAX_REQUEST }) })
  .map((r) => ({ sector: r.sector, count: Math.min(r.count, FILE_SECTORS - r.sector) }))
const nic = fc.constantFrom<Nic>("a", "b", "c")
const opArb: fc.Arbitrary<FaultOp> = fc.oneof(
  {
    weight: 6,
    arbitrary: fc.tuple(guest, range, fc.nat(255)).map(([vm, r, seed]) => ({ k: "write" as const, vm, ...r, seed }))
  },
  { weight: 5, arbitrary: fc.tuple(guest, range).map(([vm, r]) => ({ k: "read" as const, vm, ...r })) },
  { weight: 1, arbitrary: guest.map((vm) => ({ k: "flush" as const, vm })) },
  {
    weight: 3,
    arbitrary: fc
      .constantFrom<MediaFault>("none", "readErrors", "writeErrors", "shortWrites", "flaky")
      .map((fault) => ({ k: "media" as const, fault }))
  },
  { weight: 1, arbitrary: fc.constant({ k: "delete" as const }) },
  { weight: 1, arbitrary: fc.nat(255).map((seed) => ({ k: "recreate" as const, seed })) },
  { weight: 1, arbitrary: fc.constant({ k: "fill" as const }) },
  {
    weight: 2,
    arbitrary: fc.constantFrom<LinkFault>("none", "lossy", "down").map((fault) => ({ k: "link" as const, fault }))
  },
  {
    weight: 4,
    arbitrary: fc.tuple(nic, nic, fc.nat(255)).map(([from, to, seed]) => ({ k: "send" as const, from, to, seed }))
  }
)

const pattern = (count: number, seed: number, salt: number) =>
  Uint8Array.from({ length: count * SECTOR_SIZE }, (_, i) => (i * 7 + seed * 31 + salt) & 0xff)

/** What a guest was told about its disk: per sector, the acknowledged bytes, or null once a failed write may have torn it. */
type DiskModel = Array<Uint8Array | null>
const zeroDisk = (): DiskModel => Array.from({ length: FILE_SECTORS }, () => new Uint8Array(SECTOR_SIZE))

const sameBytes = (a: Uint8Array, b: Uint8Array) => a.length === b.length && a.every((x, i) => x === b[i])

/** Known sectors of `model` from `first` that `data` (read from there) contradicts. */
const contradictions = (model: DiskModel, first: number, data: Uint8Array): Array<number> => {
  const bad: Array<number> = []
  for (let i = 0; i < data.length / SECTOR_SIZE; i++) {
    const known = model[first + i]
    if (known && !sameBytes(known, data.subarray(i * SECTOR_SIZE, (i + 1) * SECTOR_SIZE))) bad.push(first + i)
  }
  return bad
}

const rawDisk = (disk: BlockBackend) => disk.read(0, disk.sectors)!

/** Run `ops` on a fresh host; throws naming the step and the broken promise. */
export const runFaults = (ops: ReadonlyArray<FaultOp>) => {
  const backing = memoryBackend(DISK_SECTORS)
  const disk: FaultyDisk = faultyDisk(backing)
  const config = Effect.runSync(
    decodeMachineConfig(
      "faults host",
      JSON.stringify({ ...defaultMachineConfig, ramMiB: 32, block: { path: "datastore.img", sizeMiB: 2 } })
    )
  )
  const machine = new Machine(config, { disk })
  return Effect.gen(function* () {
    const datastore: DatastoreShape = yield* Datastore
    yield* datastore.create("a.disk", FILE_SECTORS)
    yield* datastore.create("b.disk", FILE_SECTORS)
    const extentOf = (name: string) =>
      Effect.map(datastore.list, (files) => {
        const f = files.find((x) => x.name === name)!
        return { start: f.start, end: f.start + f.sectors }
      })
    const aExtent = yield* extentOf("a.disk")
    const rigs = {
      a: setupBlk({ store: datastoreBlockStore(yield* datastore.open("a.disk"), datastore.flush) }),
      b: setupBlk({ store: datastoreBlockStore(yield* datastore.open("b.disk"), datastore.flush) })
    }
    for (const rig of Object.values(rigs)) rig.drv.init(1)
    const models: Record<Guest, DiskModel> = { a: zeroDisk(), b: zeroDisk() }
    let aDeleted = false
    /** The file re-created where a.disk was, for someone else: its model (written by the host). */
    let successor: DiskModel | undefined

    const sw = new VSwitch()
    let aPort: ReturnType<typeof faultyPort> | undefined
    const nics = {
      a: makeVm(sw, "pg", "a", MAC_A, (port) => {
        aPort = faultyPort(port)
        return aPort
      }),
      b: makeVm(sw, "pg", "b", MAC_B),
      c: makeVm(sw, "pg", "c", MAC_D)
    }
    const macs = { a: MAC_A, b: MAC_B, c: MAC_D }
    for (const n of Object.values(nics)) {
      n.up()
      n.postRx(8)
    }

    for (const [step, op] of ops.entries()) {
      const fail = (message: string): never => {
        throw new Error(`step ${step} (${JSON.stringify(op)}): ${message}`)
      }
      const mediaFault = disk.fault.kind
      const injectedBefore = disk.injected
      /** The status A's request must get: IOERR when owed one, OK when healthy, either under a flaky medium. */
      const expectStatus = (vm: Guest, failing: boolean, status: number) => {
        const injected = disk.injected > injectedBefore
        if (status !== VirtioBlkStatus.OK && status !== VirtioBlkStatus.IOERR) fail(`status ${status}`)
        if (vm === "b" && status !== VirtioBlkStatus.OK) fail("B, on a healthy file, got an I/O error")
        if (vm === "b") return
        if (failing && status !== VirtioBlkStatus.IOERR) fail("A's request succeeded although its disk failed it")
        if (!failing && status === VirtioBlkStatus.IOERR && !(mediaFault === "flaky" && injected))
          fail("A got an I/O error that nothing caused")
      }
      switch (op.k) {
        case "write": {
          const data = pattern(op.count, op.seed, step)
          const r = blkRequest(rigs[op.vm], VirtioBlkType.OUT, op.sector, { out: data })
          const failing = op.vm === "a" && (aDeleted || mediaFault === "writeErrors" || mediaFault === "shortWrites")
          expectStatus(op.vm, failing, r.status)
          for (let i = 0; i < op.count; i++)
            models[op.vm][op.sector + i] =
              r.status === VirtioBlkStatus.OK ? data.slice(i * SECTOR_SIZE, (i + 1) * SECTOR_SIZE) : null
          break
        }
        case "read": {
          const r = blkRequest(rigs[op.vm], VirtioBlkType.IN, op.sector, { inLength: op.count * SECTOR_SIZE })
          expectStatus(op.vm, op.vm === "a" && (aDeleted || mediaFault === "readErrors"), r.status)
          if (r.status === VirtioBlkStatus.OK) {
            const bad = contradictions(models[op.vm], op.sector, r.data)
            if (bad.length > 0)
              fail(`${op.vm.toUpperCase()} read back sectors ${bad.join(", ")} different from what it was acknowledged`)
          }
          break
        }
        case "flush": {
          const r = blkRequest(rigs[op.vm], VirtioBlkType.FLUSH, 0)
          if (r.status !== VirtioBlkStatus.OK && !(op.vm === "a" && aDeleted)) fail(`flush failed with ${r.status}`)
          break
        }
        case "media":
          disk.fault = { ...aExtent, kind: aDeleted ? "none" : op.fault }
          break
        case "delete": {
          if (aDeleted) break
          disk.fault = { ...aExtent, kind: "none" }
          yield* datastore.delete("a.disk")
          aDeleted = true
          break
        }
        case "recreate": {
          if (!aDeleted || successor !== undefined) break
          yield* datastore.create("a.disk", FILE_SECTORS)
          const data = pattern(FILE_SECTORS, op.seed, 0x5a)
          yield* datastore.write("a.disk", 0, data)
          successor = Array.from({ length: FILE_SECTORS }, (_, i) => data.slice(i * SECTOR_SIZE, (i + 1) * SECTOR_SIZE))
          break
        }
        case "fill": {
          // fill the datastore, check the refusal wrote nothing, then give the space back
          const saved = disk.fault
          disk.fault = { ...saved, kind: "none" }
          const made: Array<string> = []
          for (let i = 0; ; i++) {
            const before = rawDisk(backing)
            const created = yield* Effect.result(datastore.create(`fill${i}`, 1024))
            if (created._tag === "Success") {
              made.push(`fill${i}`)
              continue
            }
            if (created.failure._tag !== "DatastoreFullError")
              fail(`creating on a full datastore failed with ${created.failure._tag}, not DatastoreFullError`)
            if (!sameBytes(before, rawDisk(backing))) fail("a refused creation wrote to the disk")
            break
          }
          for (const name of made) yield* datastore.delete(name)
          disk.fault = saved
          break
        }
        case "link": {
          const a = nics.a
          const wasUp = a.net.link
          a.dev.read(VirtioReg.INTERRUPT_STATUS, 4)
          a.dev.write(VirtioReg.INTERRUPT_ACK, 4, 0xff)
          aPort!.setFault(op.fault)
          const up = (a.dev.read(NET_STATUS, 1) & 1) === 1
          if (up !== (op.fault !== "down")) fail(`A's link status reads ${up ? "up" : "down"}`)
          if (wasUp !== up && !(a.dev.read(VirtioReg.INTERRUPT_STATUS, 4) & ISR_CONFIG_CHANGE))
            fail("A's link changed without a configuration-change interrupt")
          break
        }
        case "send": {
          if (op.from === op.to) break
          const receiver = nics[op.to]
          receiver.received()
          if (receiver.drv.queues[0]!.freeCount > 0) receiver.postRx(1)
          const f = frame(macs[op.to], macs[op.from], 60, op.seed)
          /** Frames A's back-end dropped, or A's device (its link being down) did. */
          const aDropped = () => aPort!.dropped + nics.a.net.stats().txDropped + nics.a.net.stats().rxDropped
          const droppedBefore = aDropped()
          const used = nics[op.from].send(f)
          if (used.length !== 1) fail(`${op.from.toUpperCase()}'s transmission did not complete`)
          const got = receiver.received().filter((x) => x !== undefined && sameBytes(x, f))
          const throughA = op.from === "a" || op.to === "a"
          if (!throughA && got.length !== 1) fail(`a frame from ${op.from} to ${op.to} was lost`)
          if (throughA) {
            const dropped = aDropped() > droppedBefore
            if (aPort!.fault === "none" && got.length !== 1) fail("a frame through A's healthy NIC was lost")
            if (aPort!.fault === "down" && got.length !== 0) fail("a frame passed A's pulled cable")
            if (got.length !== (dropped ? 0 : 1)) fail(`delivered ${got.length} copies, dropped: ${dropped}`)
          }
          break
        }
      }
    }

    // the medium heals: every acknowledged sector reads back exact, below the guests
    disk.fault = { ...aExtent, kind: "none" }
    const verify = (name: string, model: DiskModel) =>
      Effect.gen(function* () {
        const data = yield* datastore.read(name, 0, FILE_SECTORS)
        const bad = contradictions(model, 0, data)
        if (bad.length > 0) throw new Error(`at the end, ${name} sectors ${bad.join(", ")} lost acknowledged data`)
      })
    if (!aDeleted) yield* verify("a.disk", models.a)
    if (successor !== undefined) yield* verify("a.disk", successor)
    yield* verify("b.disk", models.b)
  }).pipe(Effect.provide(Kernel.boot(machine)), Effect.scoped)
}

export const faultsSuite: FuzzSuite<ReadonlyArray<FaultOp>> = {
  name: "faults",
  description:
    "disk media errors, torn writes, a deleted disk, a full datastore and a failing NIC: only the affected guest sees errors, acknowledged data survives",
  arbitrary: fc.array(opArb, { minLength: 1, maxLength: 40 }),
  ciRuns: 60,
  check: async (ops) => {
    await Effect.runPromise(runFaults(ops))
  },
  render: (ops) => renderSteps(ops, "k")
}
