/**
 * What an fvblk controller stores its sectors in: the datastore disk's
 * back-end. Two implementations: memory-backend.ts (in-process, tests and
 * scratch disks) and hw/backends/file-disk.ts (a host file).
 *
 * Contract: sectors are 512 bytes; no method throws. `read` returns a new
 * array of count * 512 bytes, or undefined when the range is outside the
 * disk or the host failed; `write` takes a whole number of sectors and
 * returns false (nothing guaranteed written) on a bad range or host failure;
 * `flush` makes earlier writes durable and returns false on failure.
 */

export interface BlockBackend {
  /** Disk size in 512-byte sectors. */
  readonly sectors: number
  read(sector: number, count: number): Uint8Array | undefined
  write(sector: number, data: Uint8Array): boolean
  flush(): boolean
}

/** Is [sector, sector + count) a valid non-empty range of a disk of `sectors` sectors? */
export const validRange = (sectors: number, sector: number, count: number): boolean =>
  Number.isSafeInteger(sector) && Number.isSafeInteger(count) && sector >= 0 && count > 0 && sector + count <= sectors
