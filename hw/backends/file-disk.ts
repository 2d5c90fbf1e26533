/**
 * A BlockBackend on a host file: the datastore disk behind an fvblk
 * controller (contract in hw/devices/block/backend.ts). The one place in hw/
 * that touches the host file system.
 *
 * Synchronous positional I/O on one file descriptor (pread/pwrite through
 * fs.readSync/fs.writeSync with a position, fsync for flush), so a request
 * completes inside the controller's virtual-time step and runs stay
 * deterministic. Opening creates the file if it is missing and extends it
 * (sparse) to the requested size; a larger existing file keeps its extra
 * bytes, unseen. Bytes past a host file that shrank underneath us read as 0.
 *
 * Only `openFileDisk` throws (the host refused the file: a host failure for
 * the caller to report); read/write/flush report failures as undefined/false.
 */
import { closeSync, constants, fstatSync, fsyncSync, ftruncateSync, openSync, readSync, writeSync } from "node:fs"
import { type BlockBackend, validRange } from "../devices/block/backend.ts"
import { SECTOR_SIZE } from "../devices/block/registers.ts"

export interface FileDisk extends BlockBackend {
  readonly path: string
  /** Close the file; afterwards every operation fails (returns undefined/false). */
  close(): void
}

/** Open (creating or extending as needed) a disk file of `sizeBytes` bytes, a positive multiple of 512. */
export const openFileDisk = (path: string, sizeBytes: number): FileDisk => {
  if (!Number.isSafeInteger(sizeBytes) || sizeBytes <= 0 || sizeBytes % SECTOR_SIZE !== 0)
    throw new RangeError(`file disk ${path}: size must be a positive multiple of ${SECTOR_SIZE} bytes`)
  const fd = openSync(path, constants.O_RDWR | constants.O_CREAT, 0o644)
  try {
    if (fstatSync(fd).size < sizeBytes) ftruncateSync(fd, sizeBytes)
  } catch (error) {
    closeSync(fd)
    throw error
  }
  const sectors = sizeBytes / SECTOR_SIZE
  let open = true

  const read = (sector: number, count: number): Uint8Array | undefined => {
    if (!open || !validRange(sectors, sector, count)) return undefined
    const out = new Uint8Array(count * SECTOR_SIZE)
    try {
      let done = 0
      while (done < out.length) {
        const n = readSync(fd, out, done, out.length - done, sector * SECTOR_SIZE + done)
        if (n === 0) break // end of a file that shrank: the rest stays 0
        done += n
      }
      return out
    } catch {
      return undefined
    }
  }

  const write = (sector: number, data: Uint8Array): boolean => {
    if (!open || data.length % SECTOR_SIZE !== 0 || !validRange(sectors, sector, data.length / SECTOR_SIZE))
      return false
    try {
      let done = 0
      while (done < data.length) done += writeSync(fd, data, done, data.length - done, sector * SECTOR_SIZE + done)
      return true
    } catch {
      return false
    }
  }

  const flush = (): boolean => {
    if (!open) return false
    try {
      fsyncSync(fd)
      return true
    } catch {
      return false
    }
  }

  return {
    path,
    sectors,
    read,
    write,
    flush,
    close: () => {
      if (!open) return
      open = false
      try {
        closeSync(fd)
      } catch {
        // already gone: nothing left to release
      }
    }
  }
}
