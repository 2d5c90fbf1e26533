/**
 * kernel/datastore: the Datastore service on a real Machine's fvblk disk.
 * Round trip (create / write / read / list / delete) checked against the
 * disk back-end's bytes; the on-disk format (superblock, directory entry);
 * persistence across a "reboot" on the same disk; path traversal and bad
 * names rejected with every problem listed and nothing written; a
 * fast-check property over random names; open handles; full and range
 * errors; refusing to format a disk that holds other data.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Exit, Layer } from "effect"
import fc from "fast-check"
import { BlockDriver } from "../../drivers/block.ts"
import { type MemoryBackend, memoryBackend } from "../../hw/devices/block/memory-backend.ts"
import { crc32, DIRECTORY_START, ENTRY_SIZE, MAGIC, SECTOR } from "../../kernel/datastore/format.ts"
import { MAX_NAME_BYTES, nameProblems } from "../../kernel/datastore/names.ts"
import { Datastore, type DatastoreOptions, DatastorePathError } from "../../kernel/datastore/service.ts"
import { makeHost, unwrap } from "../drivers/harness.ts"

/** Boot a host on `disk` (a fresh 1 MiB one by default) and open the block driver. */
const boot = (disk?: MemoryBackend) => {
  const h = makeHost(disk === undefined ? {} : { disk })
  const block = unwrap(BlockDriver.open(h.machine, { allocFrame: h.allocFrame }))
  return { ...h, block }
}

const layerOn = (disk?: MemoryBackend, options: Omit<DatastoreOptions, "block"> = {}) => {
  const h = boot(disk)
  return { ...h, layer: Datastore.layer({ block: h.block, ...options }) }
}

const pattern = (sectors: number, seed: number) =>
  Uint8Array.from({ length: sectors * SECTOR }, (_, i) => (i * 13 + seed * 101 + (i >>> 9)) & 0xff)

/** Byte-for-byte equality of two disk images (a loop: toEqual on a MiB array is slow). */
const sameBytes = (a: Uint8Array, b: Uint8Array): boolean => {
  if (a.length !== b.length) return false
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false
  return true
}

const sectorOf = (disk: MemoryBackend, sector: number, count = 1) =>
  disk.bytes.subarray(sector * SECTOR, (sector + count) * SECTOR)

describe("Datastore", () => {
  it.effect("formats a blank disk: superblock and empty directory", () => {
    const h = layerOn()
    return Effect.gen(function* () {
      const ds = yield* Datastore
      expect(yield* ds.list).toEqual([])
      expect(yield* ds.usage).toEqual({ totalSectors: 2048, dataStart: 9, freeSectors: 2039, files: 0, slots: 64 })
      const sb = sectorOf(h.disk, 0)
      expect(new TextDecoder().decode(sb.subarray(0, 8))).toBe(MAGIC)
      const v = new DataView(sb.buffer, sb.byteOffset, SECTOR)
      expect([v.getUint32(8, true), v.getUint32(12, true), v.getUint32(16, true)]).toEqual([1, 512, 2048])
      expect([v.getUint32(20, true), v.getUint32(24, true), v.getUint32(28, true)]).toEqual([1, 8, 9])
      expect(v.getUint32(508, true)).toBe(crc32(sb.subarray(0, 508)))
    }).pipe(Effect.provide(h.layer))
  })

  it.effect("create / write / read / list / delete round trip, data verified on the disk", () => {
    const h = layerOn()
    return Effect.gen(function* () {
      const ds = yield* Datastore
      const a = yield* ds.create("vm1-flat.vmdk", 40)
      const b = yield* ds.create("vm2.swap", 3)
      expect(a).toEqual({ name: "vm1-flat.vmdk", start: 9, sectors: 40, bytes: 40 * SECTOR })
      expect(b.start).toBe(49)
      const data = pattern(17, 1)
      yield* ds.write("vm1-flat.vmdk", 5, data)
      expect(sectorOf(h.disk, a.start + 5, 17)).toEqual(data)
      expect(yield* ds.read("vm1-flat.vmdk", 5, 17)).toEqual(data)
      expect((yield* ds.read("vm1-flat.vmdk", 0, 5)).every((x) => x === 0)).toBe(true)
      expect((yield* ds.list).map((f) => f.name)).toEqual(["vm1-flat.vmdk", "vm2.swap"])
      // directory entry 0 on the disk: in use, name, extent
      const entry = sectorOf(h.disk, DIRECTORY_START).subarray(0, ENTRY_SIZE)
      const ev = new DataView(entry.buffer, entry.byteOffset, ENTRY_SIZE)
      expect([entry[0], entry[1], ev.getUint32(4, true), ev.getUint32(8, true)]).toEqual([1, 13, 9, 40])
      expect(new TextDecoder().decode(entry.subarray(16, 29))).toBe("vm1-flat.vmdk")
      yield* ds.delete("vm1-flat.vmdk")
      expect((yield* ds.list).map((f) => f.name)).toEqual(["vm2.swap"])
      expect(
        sectorOf(h.disk, DIRECTORY_START)
          .subarray(0, ENTRY_SIZE)
          .every((x) => x === 0)
      ).toBe(true)
      const gone = yield* Effect.flip(ds.read("vm1-flat.vmdk", 0, 1))
      expect(gone._tag).toBe("DatastoreNotFoundError")
      // the freed extent is reused, zero-filled: no data from the deleted file shows through
      const c = yield* ds.create("vm3.vmdk", 20)
      expect(c.start).toBe(9)
      expect((yield* ds.read("vm3.vmdk", 0, 20)).every((x) => x === 0)).toBe(true)
    }).pipe(Effect.provide(h.layer))
  })

  it("persists: a reboot on the same disk sees the same files and data", () => {
    const first = layerOn()
    const data = pattern(8, 7)
    Effect.runSync(
      Effect.gen(function* () {
        const ds = yield* Datastore
        yield* ds.create("persist.vmdk", 16)
        yield* ds.create("other.img", 2)
        yield* ds.write("persist.vmdk", 8, data)
        yield* ds.delete("other.img")
        yield* ds.create("third.img", 1)
      }).pipe(Effect.provide(first.layer))
    )
    const second = layerOn(first.disk, { format: "never" })
    const seen = Effect.runSync(
      Effect.gen(function* () {
        const ds = yield* Datastore
        return { list: yield* ds.list, data: yield* ds.read("persist.vmdk", 8, 8) }
      }).pipe(Effect.provide(second.layer))
    )
    expect(seen.list.map((f) => [f.name, f.sectors])).toEqual([
      ["persist.vmdk", 16],
      ["third.img", 1]
    ])
    expect(seen.data).toEqual(data)
  })

  it.effect("rejects path traversal and bad names, listing every problem, writing nothing", () => {
    const h = layerOn()
    return Effect.gen(function* () {
      const ds = yield* Datastore
      yield* ds.create("victim.vmdk", 2)
      const before = h.disk.bytes.slice()
      const requests = h.block.requests
      const bad = [
        "",
        "/etc/passwd",
        "../../etc/shadow",
        "..",
        ".",
        "a/b",
        "..\\windows",
        "C:\\boot.ini",
        "nul\u0000byte",
        "x".repeat(MAX_NAME_BYTES + 1),
        "tab\tname",
        "spaces here",
        "victim.vmdk/../x"
      ]
      for (const name of bad) {
        const ops: ReadonlyArray<Effect.Effect<unknown, { readonly _tag: string }>> = [
          ds.create(name, 1),
          ds.delete(name),
          ds.write(name, 0, new Uint8Array(SECTOR)),
          ds.read(name, 0, 1),
          ds.open(name)
        ]
        for (const op of ops) {
          const e = yield* Effect.flip(op)
          expect(e).toBeInstanceOf(DatastorePathError)
          if (e instanceof DatastorePathError) {
            expect(e.path).toBe(name)
            expect(e.problems.length).toBeGreaterThan(0)
          }
        }
      }
      const traversal = yield* Effect.flip(ds.create("/../etc/x", 1))
      expect(traversal._tag === "DatastorePathError" && traversal.problems).toEqual([
        "an absolute path (starts with a separator)",
        "contains a path separator ('/' or '\\')",
        "contains '..' (a parent-directory reference)"
      ])
      expect(traversal.message).toMatch(/invalid datastore file name "\/\.\.\/etc\/x": an absolute path/)
      expect(sameBytes(h.disk.bytes, before)).toBe(true)
      expect(h.block.requests).toBe(requests)
      expect((yield* ds.list).map((f) => f.name)).toEqual(["victim.vmdk"])
    }).pipe(Effect.provide(h.layer))
  })

  it("accepts exactly the plain names (property over random names; nothing written on rejection)", () => {
    const h = boot(memoryBackend(64))
    const ds = Effect.runSync(Datastore.make({ block: h.block }))
    const reference = (n: string) => /^[A-Za-z0-9._+-]{1,48}$/.test(n) && !n.includes("..") && n !== "."
    const nameArb = fc.oneof(
      fc.string({ maxLength: 60 }),
      fc.string({
        unit: fc.constantFrom("a", "Z", "0", ".", "-", "_", "+", "/", "\\", "\u0000", ":", " "),
        maxLength: 52
      }),
      fc.stringMatching(/^[A-Za-z0-9._+-]{1,48}$/),
      fc.constantFrom("..", ".", "../x", "x/..", "/abs", "C:x", "a..b", ".hidden", "x".repeat(48), "x".repeat(49))
    )
    const seen = { accepted: 0, rejected: 0 }
    fc.assert(
      fc.property(nameArb, (name) => {
        const before = h.disk.bytes.slice()
        const exit = Effect.runSyncExit(ds.create(name, 1))
        seen[reference(name) ? "accepted" : "rejected"]++
        if (reference(name)) {
          expect(Exit.isSuccess(exit)).toBe(true)
          expect(nameProblems(name)).toEqual([])
          expect(Effect.runSync(ds.list).map((f) => f.name)).toContain(name)
          Effect.runSync(ds.delete(name))
        } else {
          expect(Exit.isFailure(exit)).toBe(true)
          const e = Effect.runSync(Effect.flip(ds.create(name, 1)))
          expect(e._tag).toBe("DatastorePathError")
          expect(sameBytes(h.disk.bytes, before)).toBe(true)
        }
        expect(Effect.runSync(ds.list)).toEqual([])
      }),
      { numRuns: 150, seed: 5 }
    )
    expect(seen.accepted).toBeGreaterThan(20)
    expect(seen.rejected).toBeGreaterThan(20)
  })

  it.effect("open handles read and write inside the file and go stale when it is deleted", () => {
    const h = layerOn()
    return Effect.gen(function* () {
      const ds = yield* Datastore
      yield* ds.create("disk.vmdk", 10)
      const f = yield* ds.open("disk.vmdk")
      expect([f.name, f.sectors]).toEqual(["disk.vmdk", 10])
      const data = pattern(2, 3)
      yield* f.write(8, data)
      expect(yield* f.read(8, 2)).toEqual(data)
      expect((yield* Effect.flip(f.read(9, 2)))._tag).toBe("DatastoreRangeError")
      expect((yield* Effect.flip(f.write(-1, data)))._tag).toBe("DatastoreRangeError")
      expect((yield* Effect.flip(f.write(0, new Uint8Array(100))))._tag).toBe("DatastoreRangeError")
      yield* ds.delete("disk.vmdk")
      yield* ds.create("disk.vmdk", 4) // same name, another file
      expect((yield* Effect.flip(f.read(0, 1)))._tag).toBe("DatastoreNotFoundError")
      // same name, same size, same extent (first fit): still another file, which the old handle must not reach
      yield* ds.delete("disk.vmdk")
      yield* ds.create("disk.vmdk", 10)
      expect((yield* Effect.flip(f.write(8, data)))._tag).toBe("DatastoreNotFoundError")
      expect(yield* ds.read("disk.vmdk", 8, 2)).toEqual(new Uint8Array(1024))
      expect((yield* Effect.flip(ds.open("missing")))._tag).toBe("DatastoreNotFoundError")
      expect(h.disk.flushes).toBeGreaterThan(0)
    }).pipe(Effect.provide(h.layer))
  })

  it.effect("refuses duplicates, bad sizes, a full disk and a full directory", () => {
    const h = layerOn(undefined, { directorySectors: 1 })
    return Effect.gen(function* () {
      const ds = yield* Datastore
      yield* ds.create("a", 1)
      expect((yield* Effect.flip(ds.create("a", 1)))._tag).toBe("DatastoreExistsError")
      expect((yield* Effect.flip(ds.create("b", 0)))._tag).toBe("DatastoreRangeError")
      expect((yield* Effect.flip(ds.create("b", 1.5)))._tag).toBe("DatastoreRangeError")
      const tooBig = yield* Effect.flip(ds.create("big", 5000))
      expect(tooBig._tag).toBe("DatastoreFullError")
      for (let i = 0; i < 7; i++) yield* ds.create(`f${i}`, 1)
      const full = yield* Effect.flip(ds.create("nine", 1))
      expect(full.message).toMatch(/directory is full/)
      expect(h.block.capacity).toBe(2048)
    }).pipe(Effect.provide(h.layer))
  })

  it("refuses to mount or format a disk that holds other data, and a damaged datastore", () => {
    const h = boot()
    h.disk.bytes.set(new TextEncoder().encode("MBR or some other file system"), 0)
    const before = h.disk.bytes.slice()
    const exit = Effect.runSyncExit(Layer.build(Datastore.layer({ block: h.block })).pipe(Effect.scoped))
    expect(Exit.isFailure(exit)).toBe(true)
    expect(String(exit)).toMatch(/DatastoreFormatError/)
    expect(sameBytes(h.disk.bytes, before)).toBe(true)

    const good = layerOn()
    Effect.runSync(Datastore.use((ds) => ds.create("x.vmdk", 1)).pipe(Effect.provide(good.layer)))
    good.disk.bytes[DIRECTORY_START * SECTOR + 20] = 0x21 // corrupt the entry's name: "x.vm!k"
    const damaged = boot(good.disk)
    const err = Effect.runSync(Effect.flip(Datastore.make({ block: damaged.block })))
    expect(err._tag).toBe("DatastoreFormatError")
    expect(err.message).toMatch(/entry 0: checksum mismatch/)
  })
})
