/**
 * The "FVFW" firmware table: how the machine describes itself to whatever
 * boots on it, in ROM (the role ACPI's MADT + e820, or the MP table, play on
 * a PC), in a simple format of our own. Everything is little-endian.
 *
 *   header (24 bytes)
 *   +0   char[4]  signature "FVFW"
 *   +4   u16      version = 1
 *   +6   u16      header length = 24
 *   +8   u32      total length of the table in bytes (header + entries)
 *   +12  u8       checksum: all `length` bytes sum to 0 mod 256
 *   +13  u8       reserved, 0
 *   +14  u16      CPU count (C)
 *   +16  u16      memory region count (M)
 *   +18  u16      device count (D)
 *   +20  u32      reserved, 0
 *
 *   C CPU entries (8 bytes)
 *   +0   u8   local APIC ID
 *   +1   u8   flags: bit 0 bootstrap processor; other bits 0
 *   +2   u16  reserved, 0
 *   +4   u32  reserved, 0
 *
 *   M memory regions (24 bytes), sorted by base, not overlapping
 *   +0   u64  base
 *   +8   u64  length
 *   +16  u32  type: 1 usable, 2 reserved, 3 ROM, 4 MMIO
 *   +20  u32  reserved, 0
 *
 *   D devices (16 bytes)
 *   +0   u16  type: 1 UART 16550, 2 PIT 8254, 3 PIC 8259, 4 local APIC, 5 fvblk, 6 fvnic
 *   +2   u8   address space: 0 MMIO, 1 port I/O
 *   +3   u8   irq line, 0xFF = none
 *   +4   u32  base (physical address or port)
 *   +8   u32  length in bytes (or ports)
 *   +12  u32  reserved, 0
 *
 * total length = 24 + 8C + 24M + 16D exactly; bytes after it are not part
 * of the table. The decoder is what the kernel boots with: it checks, in
 * this order, that it has bytes, the header fits, signature, version,
 * header length, that the whole table fits, that the counts account for the
 * length exactly, the checksum, every reserved field, every type code, and
 * finally the rules of description.ts. It never throws, and a table it
 * accepts re-encodes to the same bytes.
 */
import {
  type DeviceType,
  deviceTypes,
  type FirmwareDescription,
  type FirmwareDevice,
  type FirmwareTableError,
  firmwareError,
  type MemoryRegion,
  type MemoryType,
  memoryTypes,
  validateDescription
} from "./description.ts"

export const FIRMWARE_SIGNATURE = "FVFW"
export const FIRMWARE_VERSION = 1
export const HEADER_SIZE = 24
export const CPU_ENTRY_SIZE = 8
export const MEMORY_ENTRY_SIZE = 24
export const DEVICE_ENTRY_SIZE = 16
export const IRQ_NONE = 0xff

/** Offsets in the header. */
export const Header = {
  SIGNATURE: 0,
  VERSION: 4,
  HEADER_LENGTH: 6,
  LENGTH: 8,
  CHECKSUM: 12,
  RESERVED0: 13,
  CPU_COUNT: 14,
  MEMORY_COUNT: 16,
  DEVICE_COUNT: 18,
  RESERVED1: 20
} as const

const CPU_BOOTSTRAP = 1
// type codes are the list index + 1 (0 is never valid)
const memoryCode = (t: MemoryType) => memoryTypes.indexOf(t) + 1
const deviceCode = (t: DeviceType) => deviceTypes.indexOf(t) + 1

export type FirmwareDecodeResult =
  | { readonly ok: true; readonly table: FirmwareDescription }
  | { readonly ok: false; readonly error: FirmwareTableError }

/** Size in bytes of the table for a description. */
export const firmwareTableLength = (d: FirmwareDescription): number =>
  HEADER_SIZE +
  CPU_ENTRY_SIZE * d.cpus.length +
  MEMORY_ENTRY_SIZE * d.memory.length +
  DEVICE_ENTRY_SIZE * d.devices.length

const checksumOf = (bytes: Uint8Array, length: number): number => {
  let sum = 0
  for (let i = 0; i < length; i++) sum = (sum + bytes[i]!) & 0xff
  return sum
}

/**
 * Encode a machine description (the machine builder's side). Throws a
 * RangeError if the description breaks a rule of description.ts: writing a
 * table the kernel would refuse is a bug in the machine, not guest input.
 */
export const encodeFirmwareTable = (d: FirmwareDescription): Uint8Array => {
  const invalid = validateDescription(d)
  if (invalid !== undefined) throw new RangeError(`firmware table: ${invalid.message}`)
  const length = firmwareTableLength(d)
  const bytes = new Uint8Array(length)
  const v = new DataView(bytes.buffer)
  for (let i = 0; i < 4; i++) bytes[i] = FIRMWARE_SIGNATURE.charCodeAt(i)
  v.setUint16(Header.VERSION, FIRMWARE_VERSION, true)
  v.setUint16(Header.HEADER_LENGTH, HEADER_SIZE, true)
  v.setUint32(Header.LENGTH, length, true)
  v.setUint16(Header.CPU_COUNT, d.cpus.length, true)
  v.setUint16(Header.MEMORY_COUNT, d.memory.length, true)
  v.setUint16(Header.DEVICE_COUNT, d.devices.length, true)
  let at = HEADER_SIZE
  for (const cpu of d.cpus) {
    v.setUint8(at, cpu.apicId)
    v.setUint8(at + 1, cpu.bootstrap ? CPU_BOOTSTRAP : 0)
    at += CPU_ENTRY_SIZE
  }
  for (const r of d.memory) {
    v.setBigUint64(at, BigInt(r.base), true)
    v.setBigUint64(at + 8, BigInt(r.length), true)
    v.setUint32(at + 16, memoryCode(r.type), true)
    at += MEMORY_ENTRY_SIZE
  }
  for (const dev of d.devices) {
    v.setUint16(at, deviceCode(dev.type), true)
    v.setUint8(at + 2, dev.space === "mmio" ? 0 : 1)
    v.setUint8(at + 3, dev.irq ?? IRQ_NONE)
    v.setUint32(at + 4, dev.base, true)
    v.setUint32(at + 8, dev.length, true)
    at += DEVICE_ENTRY_SIZE
  }
  bytes[Header.CHECKSUM] = (256 - checksumOf(bytes, length)) & 0xff
  return bytes
}

const fail = (error: FirmwareTableError): FirmwareDecodeResult => ({ ok: false, error })

/** Decode and validate a firmware table (the kernel's side). Never throws. */
export const decodeFirmwareTable = (bytes: unknown): FirmwareDecodeResult => {
  if (!(bytes instanceof Uint8Array)) return fail(firmwareError("not-bytes", "the firmware table is not a byte array"))
  if (bytes.length < HEADER_SIZE)
    return fail(firmwareError("truncated", `${bytes.length} bytes: shorter than the ${HEADER_SIZE}-byte header`))
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  const signature = String.fromCharCode(...bytes.subarray(0, 4))
  if (signature !== FIRMWARE_SIGNATURE)
    return fail(firmwareError("signature", `signature ${JSON.stringify(signature)} is not "${FIRMWARE_SIGNATURE}"`))
  const version = v.getUint16(Header.VERSION, true)
  if (version !== FIRMWARE_VERSION) return fail(firmwareError("version", `version ${version} is not supported (1)`))
  const headerLength = v.getUint16(Header.HEADER_LENGTH, true)
  if (headerLength !== HEADER_SIZE) return fail(firmwareError("header", `header length ${headerLength} is not 24`))
  const length = v.getUint32(Header.LENGTH, true)
  if (length > bytes.length)
    return fail(firmwareError("truncated", `the table says ${length} bytes but only ${bytes.length} are present`))
  const cpuCount = v.getUint16(Header.CPU_COUNT, true)
  const memoryCount = v.getUint16(Header.MEMORY_COUNT, true)
  const deviceCount = v.getUint16(Header.DEVICE_COUNT, true)
  const expected =
    HEADER_SIZE + CPU_ENTRY_SIZE * cpuCount + MEMORY_ENTRY_SIZE * memoryCount + DEVICE_ENTRY_SIZE * deviceCount
  if (length !== expected)
    return fail(
      firmwareError(
        "length",
        `length ${length} does not match the counts (${cpuCount} CPUs, ${memoryCount} regions, ${deviceCount} devices need ${expected})`
      )
    )
  const sum = checksumOf(bytes, length)
  if (sum !== 0) return fail(firmwareError("checksum", `bytes sum to ${sum} mod 256, not 0`))
  if (bytes[Header.RESERVED0] !== 0 || v.getUint32(Header.RESERVED1, true) !== 0)
    return fail(firmwareError("reserved", "a reserved header field is not 0"))

  const cpus = []
  let at = HEADER_SIZE
  for (let i = 0; i < cpuCount; i++, at += CPU_ENTRY_SIZE) {
    const flags = v.getUint8(at + 1)
    if ((flags & ~CPU_BOOTSTRAP) !== 0 || v.getUint16(at + 2, true) !== 0 || v.getUint32(at + 4, true) !== 0)
      return fail(firmwareError("reserved", `CPU ${i}: reserved bits set`))
    cpus.push({ apicId: v.getUint8(at), bootstrap: (flags & CPU_BOOTSTRAP) !== 0 })
  }
  const memory: Array<MemoryRegion> = []
  for (let i = 0; i < memoryCount; i++, at += MEMORY_ENTRY_SIZE) {
    if (v.getUint32(at + 20, true) !== 0) return fail(firmwareError("reserved", `region ${i}: reserved field set`))
    const type = memoryTypes[v.getUint32(at + 16, true) - 1]
    if (type === undefined)
      return fail(firmwareError("memory", `region ${i}: unknown type ${v.getUint32(at + 16, true)}`))
    const base = v.getBigUint64(at, true)
    const size = v.getBigUint64(at + 8, true)
    if (base >= 1n << 32n || size > 1n << 32n)
      return fail(firmwareError("memory", `region ${i}: not inside the 32-bit physical space`))
    memory.push({ base: Number(base), length: Number(size), type })
  }
  const devices: Array<FirmwareDevice> = []
  for (let i = 0; i < deviceCount; i++, at += DEVICE_ENTRY_SIZE) {
    if (v.getUint32(at + 12, true) !== 0) return fail(firmwareError("reserved", `device ${i}: reserved field set`))
    const type = deviceTypes[v.getUint16(at, true) - 1]
    if (type === undefined) return fail(firmwareError("devices", `device ${i}: unknown type ${v.getUint16(at, true)}`))
    const space = v.getUint8(at + 2)
    if (space > 1) return fail(firmwareError("devices", `device ${i}: unknown address space ${space}`))
    const irq = v.getUint8(at + 3)
    devices.push({
      type,
      space: space === 0 ? "mmio" : "port",
      base: v.getUint32(at + 4, true),
      length: v.getUint32(at + 8, true),
      irq: irq === IRQ_NONE ? null : irq
    })
  }
  const table: FirmwareDescription = { cpus, memory, devices }
  const invalid = validateDescription(table)
  return invalid === undefined ? { ok: true, table } : fail(invalid)
}
