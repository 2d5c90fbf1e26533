/**
 * An in-memory BlockBackend (backend.ts contract): a disk that lives in a
 * Uint8Array. Flush always succeeds; nothing survives the process.
 */
import { type BlockBackend, validRange } from "./backend.ts"
import { SECTOR_SIZE } from "./registers.ts"

export interface MemoryBackend extends BlockBackend {
  /** The disk's bytes (live view: tests inspect and seed it). */
  readonly bytes: Uint8Array
  /** How many flushes were requested. */
  readonly flushes: number
}

/** A zero-filled disk of `sectors` sectors, or one holding a copy of `contents` (padded to whole sectors). */
export const memoryBackend = (sectors: number, contents?: Uint8Array): MemoryBackend => {
  if (!Number.isSafeInteger(sectors) || sectors < 0) throw new RangeError("memoryBackend: sectors must be >= 0")
  const bytes = new Uint8Array(sectors * SECTOR_SIZE)
  if (contents !== undefined) bytes.set(contents.subarray(0, bytes.length))
  let flushes = 0
  return {
    sectors,
    bytes,
    get flushes() {
      return flushes
    },
    read: (sector, count) =>
      validRange(sectors, sector, count)
        ? bytes.slice(sector * SECTOR_SIZE, (sector + count) * SECTOR_SIZE)
        : undefined,
    write: (sector, data) => {
      if (data.length % SECTOR_SIZE !== 0 || !validRange(sectors, sector, data.length / SECTOR_SIZE)) return false
      bytes.set(data, sector * SECTOR_SIZE)
      return true
    },
    flush: () => {
      flushes++
      return true
    }
  }
}
