/**
 * The datastore's on-disk format (version 1): a flat table of files, each
 * one contiguous extent of sectors (VM disks are allocated whole, like
 * thick-provisioned VMDKs). All integers are little-endian; a sector is 512
 * bytes.
 *
 *   sector 0             superblock
 *   sectors 1 .. D       directory: D sectors x 8 entries of 64 bytes
 *   sectors D+1 .. T-1   data: the files' extents, in any order, never overlapping
 *
 * Superblock (sector 0):
 *   +0    char[8]  magic "FVDSTORE"
 *   +8    u32      version = 1
 *   +12   u32      sector size = 512
 *   +16   u32      T: sectors the datastore spans (<= the disk's capacity)
 *   +20   u32      directory start = 1
 *   +24   u32      D: directory sectors (>= 1)
 *   +28   u32      data start = 1 + D (< T)
 *   +32   ...      zero up to +508
 *   +508  u32      CRC-32 (IEEE 802.3) of bytes 0..507
 *
 * Directory entry (64 bytes; entry i lives in sector 1 + floor(i / 8) at
 * offset (i mod 8) x 64):
 *   +0    u8       state: 0 free (the whole entry is zero), 1 in use
 *   +1    u8       name length n, 1..48
 *   +2    u16      reserved, 0
 *   +4    u32      first sector of the extent (>= data start)
 *   +8    u32      size in sectors (>= 1; start + size <= T)
 *   +12   u32      CRC-32 of the entry with this field read as 0
 *   +16   u8[48]   name: n ASCII bytes (names.ts rules), zero padded
 *
 * Updates: one directory entry is one sector write (a create or delete
 * touches exactly one directory sector), followed by a FLUSH. A create
 * zero-fills its extent before the entry that makes it visible is written,
 * so a new file never shows a deleted file's data, and a crash between the
 * two leaves only free space. Format writes the directory before the
 * superblock, so a half-formatted disk has no valid magic.
 *
 * Mount-time checks (every problem is reported): magic, version, sector
 * size, CRCs, geometry, each entry's state, name, extent bounds, no two
 * extents overlapping, no two entries with the same name.
 */
import { MAX_NAME_BYTES, nameProblems } from "./names.ts"

export const SECTOR = 512
export const MAGIC = "FVDSTORE"
export const FORMAT_VERSION = 1
export const DIRECTORY_START = 1
export const ENTRY_SIZE = 64
export const ENTRIES_PER_SECTOR = SECTOR / ENTRY_SIZE
const CRC_OFFSET = 508
const ENTRY_CRC = 12
const ENTRY_NAME = 16
const STATE_USED = 1

export interface Superblock {
  readonly totalSectors: number
  readonly directorySectors: number
  readonly dataStart: number
}

export interface DirectoryEntry {
  /** Index of the entry in the directory. */
  readonly slot: number
  readonly name: string
  readonly start: number
  readonly sectors: number
}

// ---- CRC-32 (IEEE 802.3, reflected, polynomial 0xEDB88320) ----

const CRC_TABLE = (() => {
  const table = new Uint32Array(256)
  for (let n = 0; n < 256; n++) {
    let c = n
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1
    table[n] = c >>> 0
  }
  return table
})()

export const crc32 = (bytes: Uint8Array): number => {
  let c = 0xffffffff
  for (let i = 0; i < bytes.length; i++) c = CRC_TABLE[(c ^ bytes[i]!) & 0xff]! ^ (c >>> 8)
  return (c ^ 0xffffffff) >>> 0
}

const view = (bytes: Uint8Array) => new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
const ascii = new TextEncoder()
const text = new TextDecoder()

// ---- superblock ----

export const encodeSuperblock = (sb: Superblock): Uint8Array => {
  const bytes = new Uint8Array(SECTOR)
  bytes.set(ascii.encode(MAGIC), 0)
  const v = view(bytes)
  v.setUint32(8, FORMAT_VERSION, true)
  v.setUint32(12, SECTOR, true)
  v.setUint32(16, sb.totalSectors, true)
  v.setUint32(20, DIRECTORY_START, true)
  v.setUint32(24, sb.directorySectors, true)
  v.setUint32(28, sb.dataStart, true)
  v.setUint32(CRC_OFFSET, crc32(bytes.subarray(0, CRC_OFFSET)), true)
  return bytes
}

export const hasMagic = (sector: Uint8Array): boolean => text.decode(sector.subarray(0, 8)) === MAGIC

/** Decode sector 0 of a disk of `capacity` sectors: the superblock, or every problem found. */
export const decodeSuperblock = (
  sector: Uint8Array,
  capacity: number
): { readonly superblock: Superblock } | { readonly problems: Array<string> } => {
  if (!hasMagic(sector)) return { problems: [`sector 0 holds no "${MAGIC}" superblock`] }
  const v = view(sector)
  const problems: Array<string> = []
  const version = v.getUint32(8, true)
  const sectorSize = v.getUint32(12, true)
  const totalSectors = v.getUint32(16, true)
  const directoryStart = v.getUint32(20, true)
  const directorySectors = v.getUint32(24, true)
  const dataStart = v.getUint32(28, true)
  const crc = v.getUint32(CRC_OFFSET, true)
  if (crc !== crc32(sector.subarray(0, CRC_OFFSET))) problems.push("superblock checksum mismatch")
  if (version !== FORMAT_VERSION) problems.push(`format version ${version} (this kernel reads ${FORMAT_VERSION})`)
  if (sectorSize !== SECTOR) problems.push(`sector size ${sectorSize} (expected ${SECTOR})`)
  if (directoryStart !== DIRECTORY_START) problems.push(`directory at sector ${directoryStart} (expected 1)`)
  if (directorySectors < 1) problems.push("empty directory")
  if (dataStart !== DIRECTORY_START + directorySectors)
    problems.push(`data start ${dataStart} is not 1 + ${directorySectors}`)
  if (totalSectors > capacity) problems.push(`spans ${totalSectors} sectors but the disk has ${capacity}`)
  if (dataStart >= totalSectors) problems.push(`no room for data (data start ${dataStart}, ${totalSectors} sectors)`)
  for (let i = 32; i < CRC_OFFSET; i++) {
    if (sector[i] !== 0) {
      problems.push(`reserved superblock byte ${i} is not zero`)
      break
    }
  }
  return problems.length > 0 ? { problems } : { superblock: { totalSectors, directorySectors, dataStart } }
}

// ---- directory entries ----

/** The 64 bytes of an entry; undefined encodes a free entry (all zero). */
export const encodeEntry = (entry: Omit<DirectoryEntry, "slot"> | undefined): Uint8Array => {
  const bytes = new Uint8Array(ENTRY_SIZE)
  if (entry === undefined) return bytes
  const name = ascii.encode(entry.name)
  bytes[0] = STATE_USED
  bytes[1] = name.length
  const v = view(bytes)
  v.setUint32(4, entry.start, true)
  v.setUint32(8, entry.sectors, true)
  bytes.set(name, ENTRY_NAME)
  v.setUint32(ENTRY_CRC, crc32(bytes), true)
  return bytes
}

/** Where entry `slot` lives: the directory sector (absolute) and the byte offset inside it. */
export const entryLocation = (slot: number): { readonly sector: number; readonly offset: number } => ({
  sector: DIRECTORY_START + Math.floor(slot / ENTRIES_PER_SECTOR),
  offset: (slot % ENTRIES_PER_SECTOR) * ENTRY_SIZE
})

/** Decode the whole directory (D sectors) against the superblock: the entries in use, and every problem found. */
export const decodeDirectory = (
  directory: Uint8Array,
  sb: Superblock
): { readonly entries: Array<DirectoryEntry>; readonly problems: Array<string> } => {
  const entries: Array<DirectoryEntry> = []
  const problems: Array<string> = []
  const slots = sb.directorySectors * ENTRIES_PER_SECTOR
  for (let slot = 0; slot < slots; slot++) {
    const bytes = directory.subarray(slot * ENTRY_SIZE, (slot + 1) * ENTRY_SIZE)
    const state = bytes[0]!
    if (state === 0) {
      if (bytes.some((b) => b !== 0)) problems.push(`entry ${slot}: free but not zero`)
      continue
    }
    if (state !== STATE_USED) {
      problems.push(`entry ${slot}: unknown state ${state}`)
      continue
    }
    const v = view(bytes)
    const copy = bytes.slice()
    view(copy).setUint32(ENTRY_CRC, 0, true)
    if (v.getUint32(ENTRY_CRC, true) !== crc32(copy)) {
      problems.push(`entry ${slot}: checksum mismatch`)
      continue
    }
    const length = bytes[1]!
    const name =
      length >= 1 && length <= MAX_NAME_BYTES ? text.decode(bytes.subarray(ENTRY_NAME, ENTRY_NAME + length)) : ""
    const bad = nameProblems(name)
    if (bad.length > 0) {
      problems.push(`entry ${slot}: bad name ${JSON.stringify(name)} (${bad.join("; ")})`)
      continue
    }
    const start = v.getUint32(4, true)
    const sectors = v.getUint32(8, true)
    if (sectors < 1 || start < sb.dataStart || start + sectors > sb.totalSectors) {
      problems.push(`entry ${slot} (${name}): extent ${start}+${sectors} outside the data area`)
      continue
    }
    entries.push({ slot, name, start, sectors })
  }
  const byStart = [...entries].sort((a, b) => a.start - b.start)
  for (let i = 1; i < byStart.length; i++) {
    const prev = byStart[i - 1]!
    const cur = byStart[i]!
    if (prev.start + prev.sectors > cur.start) problems.push(`extents of ${prev.name} and ${cur.name} overlap`)
  }
  const seen = new Set<string>()
  for (const e of entries) {
    if (seen.has(e.name)) problems.push(`two entries are named ${e.name}`)
    seen.add(e.name)
  }
  return { entries, problems }
}

/** First fit: the lowest start of a free run of `sectors` sectors in the data area, or undefined. */
export const findExtent = (entries: Iterable<DirectoryEntry>, sb: Superblock, sectors: number): number | undefined => {
  const used = [...entries].sort((a, b) => a.start - b.start)
  let cursor = sb.dataStart
  for (const e of used) {
    if (e.start - cursor >= sectors) return cursor
    cursor = Math.max(cursor, e.start + e.sectors)
  }
  return sb.totalSectors - cursor >= sectors ? cursor : undefined
}
