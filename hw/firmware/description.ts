/**
 * What the firmware table says about the machine, as named records: the
 * CPUs (by local APIC ID), the physical memory map, and the devices with
 * their address windows and interrupt lines. table.ts turns this into the
 * "FVFW" binary format in ROM and back.
 *
 * `validateDescription` holds every rule a kernel may rely on once a table
 * decodes (the encoder refuses to write a table that breaks one):
 *
 * - CPUs: 1..255, APIC IDs integers 0..254 (255 is the broadcast ID), no
 *   duplicates, exactly one bootstrap processor;
 * - memory map: 1..256 regions, each length > 0, inside the 32-bit physical
 *   space, sorted by base, not overlapping; at least one usable region;
 * - devices: 0..256, a known type, length > 0, MMIO windows inside the
 *   32-bit space and covered by an "mmio" region of the memory map, port
 *   windows inside the 64 KiB I/O space, no overlaps within a space, irq
 *   null or an integer 0..254.
 */

export type MemoryType = "usable" | "reserved" | "rom" | "mmio"
export type DeviceType = "uart16550" | "pit8254" | "pic8259" | "lapic" | "fvblk" | "fvnic"
export type AddressSpace = "mmio" | "port"

export interface FirmwareCpu {
  readonly apicId: number
  /** The processor that runs the boot code; the others wait for INIT/SIPI. */
  readonly bootstrap: boolean
}

export interface MemoryRegion {
  readonly base: number
  readonly length: number
  readonly type: MemoryType
}

export interface FirmwareDevice {
  readonly type: DeviceType
  readonly space: AddressSpace
  readonly base: number
  readonly length: number
  /** Interrupt line (ISA IRQ / interrupt-controller input), or null for none. */
  readonly irq: number | null
}

export interface FirmwareDescription {
  readonly cpus: ReadonlyArray<FirmwareCpu>
  readonly memory: ReadonlyArray<MemoryRegion>
  readonly devices: ReadonlyArray<FirmwareDevice>
}

export type FirmwareErrorReason =
  | "not-bytes"
  | "truncated"
  | "signature"
  | "version"
  | "header"
  | "length"
  | "checksum"
  | "reserved"
  | "cpus"
  | "memory"
  | "devices"

/** Why a table was refused: a stable reason code and a sentence for humans. */
export interface FirmwareTableError {
  readonly _tag: "FirmwareTableError"
  readonly reason: FirmwareErrorReason
  readonly message: string
}

export const firmwareError = (reason: FirmwareErrorReason, message: string): FirmwareTableError => ({
  _tag: "FirmwareTableError",
  reason,
  message
})

export const MAX_CPUS = 255
export const MAX_REGIONS = 256
export const MAX_DEVICES = 256
const SPACE_END = { mmio: 2 ** 32, port: 0x10000 } as const

export const memoryTypes: ReadonlyArray<MemoryType> = ["usable", "reserved", "rom", "mmio"]
export const deviceTypes: ReadonlyArray<DeviceType> = ["uart16550", "pit8254", "pic8259", "lapic", "fvblk", "fvnic"]

const isInt = (n: unknown, min: number, max: number): n is number =>
  typeof n === "number" && Number.isInteger(n) && n >= min && n <= max

const validateCpus = (cpus: ReadonlyArray<FirmwareCpu>): FirmwareTableError | undefined => {
  if (cpus.length < 1 || cpus.length > MAX_CPUS) return firmwareError("cpus", `${cpus.length} CPUs (1..${MAX_CPUS})`)
  const seen = new Set<number>()
  for (const [i, cpu] of cpus.entries()) {
    if (!isInt(cpu.apicId, 0, 254)) return firmwareError("cpus", `CPU ${i}: APIC ID ${cpu.apicId} is not 0..254`)
    if (seen.has(cpu.apicId)) return firmwareError("cpus", `CPU ${i}: APIC ID ${cpu.apicId} appears twice`)
    seen.add(cpu.apicId)
  }
  const bsps = cpus.filter((c) => c.bootstrap === true).length
  return bsps === 1 ? undefined : firmwareError("cpus", `${bsps} bootstrap processors (exactly 1)`)
}

const validateMemory = (memory: ReadonlyArray<MemoryRegion>): FirmwareTableError | undefined => {
  if (memory.length < 1 || memory.length > MAX_REGIONS)
    return firmwareError("memory", `${memory.length} memory regions (1..${MAX_REGIONS})`)
  let end = 0
  for (const [i, r] of memory.entries()) {
    if (!memoryTypes.includes(r.type)) return firmwareError("memory", `region ${i}: unknown type ${String(r.type)}`)
    if (!isInt(r.base, 0, 2 ** 32 - 1) || !isInt(r.length, 1, 2 ** 32) || r.base + r.length > 2 ** 32)
      return firmwareError("memory", `region ${i}: [${r.base}, +${r.length}) is not inside the 32-bit physical space`)
    if (r.base < end) return firmwareError("memory", `region ${i} at ${r.base} overlaps or is out of order`)
    end = r.base + r.length
  }
  return memory.some((r) => r.type === "usable") ? undefined : firmwareError("memory", "no usable RAM")
}

const validateDevices = (
  devices: ReadonlyArray<FirmwareDevice>,
  memory: ReadonlyArray<MemoryRegion>
): FirmwareTableError | undefined => {
  if (devices.length > MAX_DEVICES) return firmwareError("devices", `${devices.length} devices (0..${MAX_DEVICES})`)
  for (const [i, d] of devices.entries()) {
    if (!deviceTypes.includes(d.type)) return firmwareError("devices", `device ${i}: unknown type ${String(d.type)}`)
    if (d.space !== "mmio" && d.space !== "port")
      return firmwareError("devices", `device ${i}: unknown address space ${String(d.space)}`)
    const limit = SPACE_END[d.space]
    if (!isInt(d.base, 0, limit - 1) || !isInt(d.length, 1, limit) || d.base + d.length > limit)
      return firmwareError(
        "devices",
        `device ${i} (${d.type}): window [${d.base}, +${d.length}) outside ${d.space} space`
      )
    if (d.irq !== null && !isInt(d.irq, 0, 254))
      return firmwareError("devices", `device ${i}: irq ${d.irq} is not 0..254`)
    if (
      d.space === "mmio" &&
      !memory.some((r) => r.type === "mmio" && r.base <= d.base && d.base + d.length <= r.base + r.length)
    )
      return firmwareError("devices", `device ${i} (${d.type}): MMIO window at ${d.base} not in an mmio region`)
    for (let j = 0; j < i; j++) {
      const o = devices[j]!
      if (o.space === d.space && o.base < d.base + d.length && d.base < o.base + o.length)
        return firmwareError("devices", `device ${i} (${d.type}) overlaps device ${j} (${o.type})`)
    }
  }
  return undefined
}

/** The first rule `d` breaks, or undefined if it is a description a kernel can trust. */
export const validateDescription = (d: FirmwareDescription): FirmwareTableError | undefined =>
  validateCpus(d.cpus) ?? validateMemory(d.memory) ?? validateDevices(d.devices, d.memory)
