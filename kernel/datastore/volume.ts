/**
 * A mounted datastore, as plain synchronous code over the block driver
 * (drivers/block.ts): the on-disk format of format.ts, the name rules of
 * names.ts. Every operation validates all of its arguments before its first
 * disk write, and returns its refusal as a value (errors.ts); the Effect
 * service (service.ts) lifts them into the error channel.
 *
 * In memory: the directory sectors as read from disk (`directory`, kept
 * byte-identical to the disk) and a name -> entry map decoded from them. A
 * directory change is written (one sector) and flushed before the
 * in-memory copy changes, so a failed write leaves the mounted view as the
 * disk last confirmed it.
 */
import { type BlockDriver, type BlockError, describeBlockError } from "../../drivers/block.ts"
import { err, ok, type Result } from "../../drivers/platform.ts"
import {
  DatastoreExistsError,
  DatastoreFormatError,
  DatastoreFullError,
  DatastoreIoError,
  DatastoreNotFoundError,
  DatastorePathError,
  DatastoreRangeError
} from "./errors.ts"
import {
  DIRECTORY_START,
  type DirectoryEntry,
  decodeDirectory,
  decodeSuperblock,
  ENTRIES_PER_SECTOR,
  encodeEntry,
  encodeSuperblock,
  entryLocation,
  findExtent,
  hasMagic,
  SECTOR,
  type Superblock
} from "./format.ts"
import { nameProblems } from "./names.ts"

export type FormatPolicy = "if-blank" | "never" | "always"

export interface MountOptions {
  /**
   * "if-blank" (default): format a disk whose sector 0 is all zeros, refuse
   * one that holds anything else that is not a datastore; "never": only
   * mount an existing datastore; "always": erase and format.
   */
  readonly format?: FormatPolicy
  /** Directory sectors when formatting (8 entries each; default 8: 64 files). */
  readonly directorySectors?: number
}

export interface DatastoreFileInfo {
  readonly name: string
  /** First sector of the file's extent on the disk. */
  readonly start: number
  readonly sectors: number
  readonly bytes: number
}

export interface DatastoreUsage {
  readonly totalSectors: number
  readonly dataStart: number
  readonly freeSectors: number
  readonly files: number
  readonly slots: number
}

/** Sectors zeroed per write when a file is created. */
const ZERO_CHUNK = 256
const zeros = new Uint8Array(ZERO_CHUNK * SECTOR)

const io =
  (operation: string) =>
  (e: BlockError): DatastoreIoError =>
    new DatastoreIoError({ operation, reason: describeBlockError(e) })

const infoOf = (e: DirectoryEntry): DatastoreFileInfo => ({
  name: e.name,
  start: e.start,
  sectors: e.sectors,
  bytes: e.sectors * SECTOR
})

const checkName = (name: string): DatastorePathError | undefined => {
  const problems = nameProblems(name)
  return problems.length > 0 ? new DatastorePathError({ path: name, problems }) : undefined
}

export class DatastoreVolume {
  readonly superblock: Superblock
  private readonly block: BlockDriver
  private readonly directory: Uint8Array
  private readonly entries: Map<string, DirectoryEntry>
  /** Open handles (lookup's results) and the entry each was opened on. */
  private readonly opened = new WeakMap<DatastoreFileInfo, DirectoryEntry>()

  private constructor(block: BlockDriver, sb: Superblock, directory: Uint8Array, entries: Array<DirectoryEntry>) {
    this.block = block
    this.superblock = sb
    this.directory = directory
    this.entries = new Map(entries.map((e) => [e.name, e]))
  }

  /** Mount the datastore on `block`'s disk, formatting it first if the policy says so. */
  static mount(
    block: BlockDriver,
    options: MountOptions = {}
  ): Result<DatastoreVolume, DatastoreFormatError | DatastoreIoError> {
    const policy = options.format ?? "if-blank"
    const first = block.read(0, 1)
    if (!first.ok) return err(io("mount")(first.error))
    const sector0 = first.value
    const blank = sector0.every((b) => b === 0)
    if (policy === "always" || (policy === "if-blank" && blank))
      return DatastoreVolume.format(block, options.directorySectors ?? 8)
    const decoded = decodeSuperblock(sector0, block.capacity)
    if ("problems" in decoded) {
      const why = !hasMagic(sector0) && !blank ? ["the disk holds other data: not formatting it"] : []
      return err(new DatastoreFormatError({ problems: [...decoded.problems, ...why] }))
    }
    const sb = decoded.superblock
    const dir = block.read(DIRECTORY_START, sb.directorySectors)
    if (!dir.ok) return err(io("mount")(dir.error))
    const { entries, problems } = decodeDirectory(dir.value, sb)
    if (problems.length > 0) return err(new DatastoreFormatError({ problems }))
    return ok(new DatastoreVolume(block, sb, dir.value, entries))
  }

  private static format(
    block: BlockDriver,
    directorySectors: number
  ): Result<DatastoreVolume, DatastoreFormatError | DatastoreIoError> {
    const totalSectors = Math.min(block.capacity, 0xffffffff)
    if (!Number.isInteger(directorySectors) || directorySectors < 1 || directorySectors > 255)
      return err(new DatastoreFormatError({ problems: [`directory of ${directorySectors} sectors (1..255)`] }))
    const sb = { totalSectors, directorySectors, dataStart: DIRECTORY_START + directorySectors }
    if (sb.dataStart >= totalSectors)
      return err(new DatastoreFormatError({ problems: [`a disk of ${totalSectors} sectors is too small to format`] }))
    const directory = new Uint8Array(directorySectors * SECTOR)
    const steps = [
      () => block.write(DIRECTORY_START, directory), // directory first: no magic until it is clean
      () => block.write(0, encodeSuperblock(sb)),
      () => block.flush()
    ]
    for (const step of steps) {
      const r = step()
      if (!r.ok) return err(io("format")(r.error))
    }
    return ok(new DatastoreVolume(block, sb, directory, []))
  }

  /** Every file, by name. */
  list(): Array<DatastoreFileInfo> {
    return [...this.entries.values()].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0)).map(infoOf)
  }

  usage(): DatastoreUsage {
    const used = [...this.entries.values()].reduce((n, e) => n + e.sectors, 0)
    return {
      totalSectors: this.superblock.totalSectors,
      dataStart: this.superblock.dataStart,
      freeSectors: this.superblock.totalSectors - this.superblock.dataStart - used,
      files: this.entries.size,
      slots: this.superblock.directorySectors * ENTRIES_PER_SECTOR
    }
  }

  /** The entry named `name` (validated first). */
  lookup(name: string): Result<DatastoreFileInfo, DatastorePathError | DatastoreNotFoundError> {
    const found = this.resolve(name)
    if (!found.ok) return found
    const info = infoOf(found.value)
    this.opened.set(info, found.value)
    return ok(info)
  }

  /** Create a zero-filled file of `sectors` sectors in the first free extent that fits. */
  create(
    name: string,
    sectors: number
  ): Result<
    DatastoreFileInfo,
    DatastorePathError | DatastoreRangeError | DatastoreExistsError | DatastoreFullError | DatastoreIoError
  > {
    const bad = checkName(name)
    if (bad !== undefined) return err(bad)
    if (!Number.isSafeInteger(sectors) || sectors < 1 || sectors > 0xffffffff)
      return err(
        new DatastoreRangeError({ path: name, reason: `a file needs a whole number of sectors >= 1, not ${sectors}` })
      )
    if (this.entries.has(name)) return err(new DatastoreExistsError({ path: name }))
    const slot = this.freeSlot()
    if (slot === undefined)
      return err(new DatastoreFullError({ path: name, requested: sectors, reason: "the directory is full" }))
    const start = findExtent(this.entries.values(), this.superblock, sectors)
    if (start === undefined)
      return err(
        new DatastoreFullError({
          path: name,
          requested: sectors,
          reason: `no free extent of ${sectors} sectors (${this.usage().freeSectors} free in all)`
        })
      )
    for (let done = 0; done < sectors; done += ZERO_CHUNK) {
      const n = Math.min(ZERO_CHUNK, sectors - done)
      const r = this.block.write(start + done, zeros.subarray(0, n * SECTOR))
      if (!r.ok) return err(io(`create ${name}`)(r.error))
    }
    const entry: DirectoryEntry = { slot, name, start, sectors }
    const written = this.writeDirectoryEntry(slot, entry, `create ${name}`)
    if (!written.ok) return written
    this.entries.set(name, entry)
    return ok(infoOf(entry))
  }

  /** Remove `name` from the directory (its extent becomes free space). */
  remove(name: string): Result<void, DatastorePathError | DatastoreNotFoundError | DatastoreIoError> {
    const bad = checkName(name)
    if (bad !== undefined) return err(bad)
    const entry = this.entries.get(name)
    if (entry === undefined) return err(new DatastoreNotFoundError({ path: name }))
    const written = this.writeDirectoryEntry(entry.slot, undefined, `delete ${name}`)
    if (!written.ok) return written
    this.entries.delete(name)
    return ok(undefined)
  }

  /** Read `count` sectors of `name` from its sector `sector`. */
  read(
    name: string,
    sector: number,
    count: number
  ): Result<Uint8Array, DatastorePathError | DatastoreNotFoundError | DatastoreRangeError | DatastoreIoError> {
    const found = this.resolve(name)
    return found.ok ? this.readEntry(found.value, sector, count) : found
  }

  /** Write `data` (whole sectors) into `name` at its sector `sector`. */
  write(
    name: string,
    sector: number,
    data: Uint8Array
  ): Result<void, DatastorePathError | DatastoreNotFoundError | DatastoreRangeError | DatastoreIoError> {
    const found = this.resolve(name)
    return found.ok ? this.writeEntry(found.value, sector, data) : found
  }

  /** `read` through an open handle: only while `file` is still the same file. */
  readOpen(
    file: DatastoreFileInfo,
    sector: number,
    count: number
  ): Result<Uint8Array, DatastoreNotFoundError | DatastoreRangeError | DatastoreIoError> {
    const found = this.still(file)
    return found.ok ? this.readEntry(found.value, sector, count) : found
  }

  /** `write` through an open handle: only while `file` is still the same file. */
  writeOpen(
    file: DatastoreFileInfo,
    sector: number,
    data: Uint8Array
  ): Result<void, DatastoreNotFoundError | DatastoreRangeError | DatastoreIoError> {
    const found = this.still(file)
    return found.ok ? this.writeEntry(found.value, sector, data) : found
  }

  private readEntry(
    e: DirectoryEntry,
    sector: number,
    count: number
  ): Result<Uint8Array, DatastoreRangeError | DatastoreIoError> {
    const range = this.checkRange(e, sector, count)
    if (range !== undefined) return err(range)
    const r = this.block.read(e.start + sector, count)
    return r.ok ? r : err(io(`read ${e.name}`)(r.error))
  }

  private writeEntry(
    e: DirectoryEntry,
    sector: number,
    data: Uint8Array
  ): Result<void, DatastoreRangeError | DatastoreIoError> {
    if (data.length === 0 || data.length % SECTOR !== 0)
      return err(
        new DatastoreRangeError({ path: e.name, reason: `${data.length} bytes is not a whole number of sectors` })
      )
    const range = this.checkRange(e, sector, data.length / SECTOR)
    if (range !== undefined) return err(range)
    const r = this.block.write(e.start + sector, data)
    return r.ok ? r : err(io(`write ${e.name}`)(r.error))
  }

  /** Make every earlier write durable. */
  flush(): Result<void, DatastoreIoError> {
    const r = this.block.flush()
    return r.ok ? r : err(io("flush")(r.error))
  }

  private resolve(name: string): Result<DirectoryEntry, DatastorePathError | DatastoreNotFoundError> {
    const bad = checkName(name)
    if (bad !== undefined) return err(bad)
    const e = this.entries.get(name)
    return e === undefined ? err(new DatastoreNotFoundError({ path: name })) : ok(e)
  }

  /**
   * The entry an open handle refers to, if the file still exists: the very
   * entry `lookup` found, not a file re-created under the same name (even in
   * the same extent, as first fit places it: found by fuzz suite `faults`,
   * where a deleted disk's handle wrote into its successor).
   */
  private still(file: DatastoreFileInfo): Result<DirectoryEntry, DatastoreNotFoundError> {
    const e = this.entries.get(file.name)
    return e !== undefined && this.opened.get(file) === e ? ok(e) : err(new DatastoreNotFoundError({ path: file.name }))
  }

  private checkRange(e: DirectoryEntry, sector: number, count: number): DatastoreRangeError | undefined {
    const fine =
      Number.isSafeInteger(sector) &&
      Number.isSafeInteger(count) &&
      sector >= 0 &&
      count >= 1 &&
      sector + count <= e.sectors
    return fine
      ? undefined
      : new DatastoreRangeError({
          path: e.name,
          reason: `sectors ${sector}+${count} are outside the file (${e.sectors} sectors)`
        })
  }

  private freeSlot(): number | undefined {
    const used = new Set([...this.entries.values()].map((e) => e.slot))
    const slots = this.superblock.directorySectors * ENTRIES_PER_SECTOR
    for (let slot = 0; slot < slots; slot++) if (!used.has(slot)) return slot
    return undefined
  }

  /** Write entry `slot` (undefined: free it): one directory sector, then FLUSH, then the in-memory copy. */
  private writeDirectoryEntry(
    slot: number,
    entry: DirectoryEntry | undefined,
    operation: string
  ): Result<void, DatastoreIoError> {
    const { sector, offset } = entryLocation(slot)
    const base = (sector - DIRECTORY_START) * SECTOR
    const updated = this.directory.slice(base, base + SECTOR)
    updated.set(encodeEntry(entry), offset)
    const w = this.block.write(sector, updated)
    if (!w.ok) return err(io(operation)(w.error))
    const f = this.block.flush()
    if (!f.ok) return err(io(operation)(f.error))
    this.directory.set(updated, base)
    return ok(undefined)
  }
}
