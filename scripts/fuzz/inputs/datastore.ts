/**
 * Datastore file names and operations for fuzz suite `inputs`: random names
 * (plain names, path traversal out of the datastore like "../x" or
 * "/etc/passwd", separators, NUL and other control characters, non-ASCII,
 * very long names) and random create / open-and-write / write / read /
 * delete sequences on a freshly formatted in-memory datastore (a real
 * Machine's fvblk disk on a memory back-end, as test/kernel/datastore.test.ts
 * builds it).
 *
 * After each operation:
 *
 *   - `nameProblems(name)` is empty exactly for the plain names (an
 *     independent reference rule), and names the specific rule a traversal
 *     breaks (separator, "..", absolute, NUL, length);
 *   - a bad name fails with DatastorePathError whose path is the name and
 *     whose problems are exactly nameProblems(name), without a single block
 *     request and with the backing disk byte-for-byte unchanged;
 *   - a good name never fails with DatastorePathError; the outcome is the one
 *     a model of the directory predicts (exists, not found, out of range);
 *     every other refusal also leaves the disk unchanged, and a success
 *     writes only where it should (the directory, the file's own extent,
 *     exactly the sector written);
 *
 * and at the end the datastore lists exactly the model's files, also when
 * mounted again from the disk's bytes (a reboot on the same disk).
 */
import { Cause, Effect, Exit } from "effect"
import fc from "fast-check"
import { BlockDriver } from "../../../drivers/block.ts"
import { type MemoryBackend, memoryBackend } from "../../../hw/devices/block/memory-backend.ts"
import { decodeMachineConfig, defaultMachineConfig } from "../../../hw/machine/config.ts"
import { Machine } from "../../../hw/machine/machine.ts"
import { DIRECTORY_START, SECTOR } from "../../../kernel/datastore/format.ts"
import { MAX_NAME_BYTES, nameProblems } from "../../../kernel/datastore/names.ts"
import { Datastore, DatastorePathError, type DatastoreShape } from "../../../kernel/datastore/service.ts"

const must = (condition: boolean, message: string): void => {
  if (!condition) throw new Error(message)
}

// ---------------------------------------------------------------------------
// names

/** Names a VM config or an operator might give, aimed at leaving the datastore. */
const traversals = [
  "..",
  ".",
  "../x",
  "../../etc/shadow",
  "/etc/passwd",
  "/",
  "\\",
  "a/b",
  "x/..",
  "vm.disk/../../x",
  "..\\windows",
  "C:\\boot.ini",
  "C:x",
  "\\\\server\\share",
  "./vm.disk",
  "vm.disk/",
  "nul\u0000byte",
  "\u0000",
  "vm.disk\u0000.png",
  "tab\tname",
  "line\nbreak",
  "\u001b[31mred",
  "\u007f",
  "\u0085",
  "spaces here",
  "é.disk",
  "\u202eksid.exe",
  "ａ.disk",
  "%2e%2e%2fetc",
  "a..b",
  ".hidden",
  "x".repeat(MAX_NAME_BYTES),
  "x".repeat(MAX_NAME_BYTES + 1),
  `${"../".repeat(40)}etc/passwd`,
  "\ud800"
]

const nameUnit = fc.constantFrom("a", "Z", "0", ".", "-", "_", "+", "/", "\\", "\u0000", ":", " ", "\t", "\u001f", "é")

/** Plain names and every kind of bad one. */
export const diskName: fc.Arbitrary<string> = fc.oneof(
  { weight: 3, arbitrary: fc.stringMatching(/^[A-Za-z0-9._+-]{1,48}$/) },
  { weight: 3, arbitrary: fc.constantFrom(...traversals) },
  { weight: 2, arbitrary: fc.string({ unit: nameUnit, maxLength: 52 }) },
  { weight: 1, arbitrary: fc.string({ maxLength: 60 }) },
  { weight: 1, arbitrary: fc.string({ unit: "binary", maxLength: 20 }) },
  {
    weight: 1,
    arbitrary: fc.oneof(
      fc.integer({ min: 49, max: 5000 }).map((n) => "a".repeat(n)),
      fc.integer({ min: 1, max: 200 }).map((n) => `${"../".repeat(n)}etc/passwd`)
    )
  }
)

/** The rule of kernel/datastore/names.ts, stated independently: 1..48 ASCII letters, digits, . _ - +; no "..", not ".". */
export const isPlainName = (name: string): boolean =>
  /^[A-Za-z0-9._+-]{1,48}$/.test(name) && !name.includes("..") && name !== "."

/** nameProblems agrees with the reference rule and names what a traversal breaks. */
export function checkNameProblems(name: string): ReadonlyArray<string> {
  const problems = nameProblems(name)
  const shown = JSON.stringify(name.length > 80 ? `${name.slice(0, 80)}...` : name)
  must(
    (problems.length === 0) === isPlainName(name),
    `nameProblems(${shown}) = ${JSON.stringify(problems)}, but the name is ${isPlainName(name) ? "" : "not "}plain`
  )
  const expect = (when: boolean, fragment: string) =>
    must(
      !when || problems.some((p) => p.includes(fragment)),
      `nameProblems(${shown}) does not say "${fragment}": ${JSON.stringify(problems)}`
    )
  expect(/[/\\]/.test(name), "path separator")
  expect(/^[/\\]/.test(name), "absolute path")
  expect(name.includes(".."), "'..'")
  expect(name.includes("\u0000"), "NUL")
  expect(new TextEncoder().encode(name).length > MAX_NAME_BYTES, `longer than ${MAX_NAME_BYTES} bytes`)
  return problems
}

// ---------------------------------------------------------------------------
// operations

export type DatastoreOp =
  | { readonly kind: "create"; readonly name: string; readonly sectors: number }
  /** open, then write one sector through the handle */
  | { readonly kind: "open"; readonly name: string; readonly sector: number; readonly fill: number }
  | { readonly kind: "write"; readonly name: string; readonly sector: number; readonly fill: number }
  | { readonly kind: "read"; readonly name: string; readonly sector: number }
  | { readonly kind: "delete"; readonly name: string }

/** A few good names recur so operations meet the files earlier ones created. */
const opName = fc.oneof(
  { weight: 2, arbitrary: fc.constantFrom("vm1.disk", "a", "B-2_+.img", "x".repeat(MAX_NAME_BYTES)) },
  { weight: 3, arbitrary: diskName }
)
const sector = fc.nat(5)
const fill = fc.integer({ min: 1, max: 255 })

export const datastoreOps: fc.Arbitrary<ReadonlyArray<DatastoreOp>> = fc.array(
  fc.oneof(
    fc.record({ kind: fc.constant("create" as const), name: opName, sectors: fc.integer({ min: 1, max: 4 }) }),
    fc.record({ kind: fc.constant("open" as const), name: opName, sector, fill }),
    fc.record({ kind: fc.constant("write" as const), name: opName, sector, fill }),
    fc.record({ kind: fc.constant("read" as const), name: opName, sector }),
    fc.record({ kind: fc.constant("delete" as const), name: opName })
  ),
  { minLength: 1, maxLength: 12 }
)

/** The smallest host that has a disk (RAM is most of a host's cost). */
const hostConfig = Effect.runSync(
  decodeMachineConfig(
    "fuzz datastore host",
    JSON.stringify({
      ...defaultMachineConfig,
      ramMiB: 2,
      pcpus: 1,
      block: { path: "memory", sizeMiB: 1 },
      nic: { backend: "none" }
    })
  )
)

/** A host with a 64-sector in-memory disk and a freshly formatted datastore on it (or the one on `existing`). */
export function datastoreHost(existing?: MemoryBackend): {
  disk: MemoryBackend
  block: BlockDriver
  ds: DatastoreShape
} {
  const disk = existing ?? memoryBackend(64)
  const machine = new Machine(hostConfig, { console: { transmit: () => {} }, disk })
  let frame = 0x100
  const opened = BlockDriver.open(machine, { allocFrame: () => frame++ })
  if (!opened.ok) throw new Error(`the fvblk driver did not open: ${JSON.stringify(opened.error)}`)
  const ds = Effect.runSync(
    Datastore.make({ block: opened.value, format: existing === undefined ? "if-blank" : "never" })
  )
  return { disk, block: opened.value, ds }
}

const tagOf = (exit: Exit.Exit<unknown, { readonly _tag: string }>): string => {
  if (Exit.isSuccess(exit)) return "Success"
  const failure = exit.cause.reasons.find(Cause.isFailReason)
  if (failure !== undefined) return failure.error._tag
  throw new Error(`the datastore died instead of failing: ${Cause.pretty(exit.cause)}`)
}

const errorOf = (exit: Exit.Exit<unknown, unknown>): unknown =>
  Exit.isFailure(exit) ? exit.cause.reasons.find(Cause.isFailReason)?.error : undefined

/** The first byte where `a` and `b` differ outside `allowed` ranges (byte offsets), or -1. */
const changedOutside = (a: Uint8Array, b: Uint8Array, allowed: ReadonlyArray<readonly [number, number]>): number => {
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i] && !allowed.some(([lo, hi]) => i >= lo && i < hi)) return i
  return -1
}

const describeOp = (op: DatastoreOp): string =>
  JSON.stringify(op, (k, v) => (k === "name" && typeof v === "string" && v.length > 80 ? `${v.slice(0, 80)}...` : v))

/** Run `ops` on a fresh datastore with the checks of the header. */
export function checkDatastoreOps(ops: ReadonlyArray<DatastoreOp>): void {
  const { disk, block, ds } = datastoreHost()
  const model = new Map<string, { start: number; sectors: number }>()
  const dataStart = Effect.runSync(ds.usage).dataStart
  const directory = [DIRECTORY_START * SECTOR, dataStart * SECTOR] as const
  for (const op of ops) {
    const what = describeOp(op)
    const before = disk.bytes.slice()
    const requests = block.requests
    const flushes = disk.flushes
    const data = "fill" in op ? new Uint8Array(SECTOR).fill(op.fill) : new Uint8Array(0)
    const effect: Effect.Effect<unknown, { readonly _tag: string }> =
      op.kind === "create"
        ? ds.create(op.name, op.sectors)
        : op.kind === "open"
          ? Effect.flatMap(ds.open(op.name), (f) => f.write(op.sector, data))
          : op.kind === "write"
            ? ds.write(op.name, op.sector, data)
            : op.kind === "read"
              ? ds.read(op.name, op.sector, 1)
              : ds.delete(op.name)
    const exit = Effect.runSyncExit(effect)
    const tag = tagOf(exit)
    const problems = checkNameProblems(op.name)
    const unchanged = () => {
      const at = changedOutside(before, disk.bytes, [])
      must(at < 0, `${what}: refused with ${tag}, but disk byte ${at} changed`)
      must(disk.flushes === flushes, `${what}: refused with ${tag}, but the disk was flushed`)
    }
    if (problems.length > 0) {
      const e = errorOf(exit)
      must(e instanceof DatastorePathError, `${what}: a bad name gave ${tag}, not DatastorePathError`)
      const pathError = e as DatastorePathError
      must(pathError.path === op.name, `${what}: DatastorePathError names ${JSON.stringify(pathError.path)}`)
      must(
        JSON.stringify(pathError.problems) === JSON.stringify(problems),
        `${what}: DatastorePathError lists ${JSON.stringify(pathError.problems)}, nameProblems says ${JSON.stringify(problems)}`
      )
      must(pathError.message.length > 0, `${what}: DatastorePathError without a message`)
      must(block.requests === requests, `${what}: refused a bad name after ${block.requests - requests} block requests`)
      unchanged()
      continue
    }
    const file = model.get(op.name)
    const expected =
      op.kind === "create"
        ? file === undefined
          ? ["Success", "DatastoreFullError"]
          : ["DatastoreExistsError"]
        : file === undefined
          ? ["DatastoreNotFoundError"]
          : op.kind === "delete" || op.sector < file.sectors
            ? ["Success"]
            : ["DatastoreRangeError"]
    must(expected.includes(tag), `${what}: ${tag}, expected ${expected.join(" or ")}`)
    if (tag !== "Success") {
      unchanged()
      continue
    }
    if (op.kind === "create") {
      const info = (exit as Exit.Success<{ start: number; sectors: number }>).value
      must(info.sectors === op.sectors, `${what}: created ${info.sectors} sectors`)
      const extent = [info.start * SECTOR, (info.start + info.sectors) * SECTOR] as const
      must(
        extent[0] >= directory[1] && extent[1] <= disk.bytes.length,
        `${what}: extent ${extent} outside the data area`
      )
      for (const other of model.values())
        must(
          info.start >= other.start + other.sectors || info.start + info.sectors <= other.start,
          `${what}: extent at sector ${info.start} overlaps a file at ${other.start}`
        )
      const at = changedOutside(before, disk.bytes, [directory, extent])
      must(at < 0, `${what}: byte ${at} changed, outside the directory and the new file`)
      must(
        disk.bytes.subarray(extent[0], extent[1]).every((b) => b === 0),
        `${what}: the new file is not zero-filled`
      )
      model.set(op.name, { start: info.start, sectors: info.sectors })
    } else if (op.kind === "delete") {
      const at = changedOutside(before, disk.bytes, [directory])
      must(at < 0, `${what}: byte ${at} changed, outside the directory`)
      model.delete(op.name)
    } else if (op.kind === "read") {
      must(changedOutside(before, disk.bytes, []) < 0, `${what}: a read changed the disk`)
      const at = (file!.start + op.sector) * SECTOR
      const read = (exit as Exit.Success<Uint8Array>).value
      const want = disk.bytes.subarray(at, at + SECTOR)
      must(read.length === SECTOR && read.every((b, i) => b === want[i]), `${what}: read other bytes than the disk's`)
    } else {
      const at = (file!.start + op.sector) * SECTOR
      must(changedOutside(before, disk.bytes, [[at, at + SECTOR]]) < 0, `${what}: wrote outside its sector`)
      must(
        disk.bytes.subarray(at, at + SECTOR).every((b) => b === op.fill),
        `${what}: the sector does not hold the data`
      )
    }
  }
  const listed = Effect.runSync(ds.list).map((f) => f.name)
  const names = [...model.keys()].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0))
  must(JSON.stringify(listed) === JSON.stringify(names), `the datastore lists ${listed}, the model ${names}`)
  // what is on the disk is what the model says: a reboot on the same disk sees the same files
  const again = Effect.runSync(datastoreHost(disk).ds.list).map((f) => [f.name, f.start, f.sectors])
  const want = names.map((n) => [n, model.get(n)!.start, model.get(n)!.sectors])
  must(JSON.stringify(again) === JSON.stringify(want), `after a reboot the datastore lists ${JSON.stringify(again)}`)
}

export const renderDatastoreOps = (ops: ReadonlyArray<DatastoreOp>): string => ops.map(describeOp).join("\n")
