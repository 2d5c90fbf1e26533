/**
 * The Datastore service: the host's datastore (VMFS's role in ESX), a flat
 * table of files (VM disks, swap files) stored on the physical disk through
 * the fvblk driver. On-disk format: format.ts (superblock at sector 0, a
 * directory of {name, start sector, size} entries in sectors 1..D, then the
 * data extents); name rules: names.ts; the synchronous core: volume.ts.
 *
 * Operations: list, create(name, sectors) (zero-filled, first fit), open
 * (a handle that reads/writes by sector inside the file and fails with
 * DatastoreNotFoundError once the file is deleted), read/write by name,
 * delete, usage. A name that is not a plain file name inside the datastore
 * (empty, absolute, with a separator or "..", NUL, control or other
 * characters, too long) fails with DatastorePathError listing every problem,
 * before anything is written.
 *
 * Each operation runs as one synchronous step (one Effect.sync around the
 * driver calls), so operations from concurrent fibers never interleave on
 * the disk or the directory. Virtual time advances while the controller
 * serves the requests (drivers/block.ts).
 */
import { Context, Effect, Layer } from "effect"
import type { BlockDriver } from "../../drivers/block.ts"
import type { Result } from "../../drivers/platform.ts"
import type {
  DatastoreExistsError,
  DatastoreFormatError,
  DatastoreFullError,
  DatastoreIoError,
  DatastoreNotFoundError,
  DatastorePathError,
  DatastoreRangeError
} from "./errors.ts"
import { type DatastoreFileInfo, type DatastoreUsage, DatastoreVolume, type MountOptions } from "./volume.ts"

export * from "./errors.ts"
export type { DatastoreFileInfo, DatastoreUsage, FormatPolicy, MountOptions } from "./volume.ts"

export interface DatastoreOptions extends MountOptions {
  /** The opened fvblk driver of the datastore disk. */
  readonly block: BlockDriver
}

/** An open file: reads and writes by sector, relative to the file's start. */
export interface DatastoreFile {
  readonly name: string
  readonly sectors: number
  readonly read: (
    sector: number,
    count: number
  ) => Effect.Effect<Uint8Array, DatastoreNotFoundError | DatastoreRangeError | DatastoreIoError>
  readonly write: (
    sector: number,
    data: Uint8Array
  ) => Effect.Effect<void, DatastoreNotFoundError | DatastoreRangeError | DatastoreIoError>
}

export interface DatastoreShape {
  readonly list: Effect.Effect<ReadonlyArray<DatastoreFileInfo>>
  readonly usage: Effect.Effect<DatastoreUsage>
  readonly create: (
    name: string,
    sectors: number
  ) => Effect.Effect<
    DatastoreFileInfo,
    DatastorePathError | DatastoreRangeError | DatastoreExistsError | DatastoreFullError | DatastoreIoError
  >
  readonly open: (name: string) => Effect.Effect<DatastoreFile, DatastorePathError | DatastoreNotFoundError>
  readonly read: (
    name: string,
    sector: number,
    count: number
  ) => Effect.Effect<Uint8Array, DatastorePathError | DatastoreNotFoundError | DatastoreRangeError | DatastoreIoError>
  readonly write: (
    name: string,
    sector: number,
    data: Uint8Array
  ) => Effect.Effect<void, DatastorePathError | DatastoreNotFoundError | DatastoreRangeError | DatastoreIoError>
  readonly delete: (name: string) => Effect.Effect<void, DatastorePathError | DatastoreNotFoundError | DatastoreIoError>
  readonly flush: Effect.Effect<void, DatastoreIoError>
}

/** Run a synchronous core operation; its refusal goes to the error channel. */
const lift = <A, E>(f: () => Result<A, E>): Effect.Effect<A, E> =>
  Effect.suspend(() => {
    const r = f()
    return r.ok ? Effect.succeed(r.value) : Effect.fail(r.error)
  })

/** Mount (formatting per `options.format`) and build the service. */
export const make = (
  options: DatastoreOptions
): Effect.Effect<DatastoreShape, DatastoreFormatError | DatastoreIoError> =>
  Effect.map(
    lift(() => DatastoreVolume.mount(options.block, options)),
    (volume): DatastoreShape => ({
      list: Effect.sync(() => volume.list()),
      usage: Effect.sync(() => volume.usage()),
      create: (name, sectors) => lift(() => volume.create(name, sectors)),
      open: (name) =>
        Effect.map(
          lift(() => volume.lookup(name)),
          (info): DatastoreFile => ({
            name: info.name,
            sectors: info.sectors,
            read: (sector, count) => lift(() => volume.readOpen(info, sector, count)),
            write: (sector, data) => lift(() => volume.writeOpen(info, sector, data))
          })
        ),
      read: (name, sector, count) => lift(() => volume.read(name, sector, count)),
      write: (name, sector, data) => lift(() => volume.write(name, sector, data)),
      delete: (name) => lift(() => volume.remove(name)),
      flush: lift(() => volume.flush())
    })
  )

export class Datastore extends Context.Service<Datastore, DatastoreShape>()("fibervisor/Datastore") {
  static readonly make = make
  static readonly layer = (
    options: DatastoreOptions
  ): Layer.Layer<Datastore, DatastoreFormatError | DatastoreIoError> => Layer.effect(Datastore, make(options))
}
