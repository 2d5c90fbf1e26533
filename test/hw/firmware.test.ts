/**
 * The FVFW firmware table (hw/firmware): the binary layout of table.ts's
 * header, one test per decoder check (in the order the header lists them),
 * the rules of description.ts, and fast-check properties: valid descriptions
 * round-trip, and mutated, re-checksummed, truncated or random bytes are
 * rejected or decode to a valid table that re-encodes to the same bytes,
 * without ever throwing.
 */
import { describe, expect, it } from "@effect/vitest"
import fc from "fast-check"
import {
  type DeviceType,
  deviceTypes,
  type FirmwareDescription,
  type FirmwareDevice,
  type MemoryRegion,
  memoryTypes,
  validateDescription
} from "../../hw/firmware/description.ts"
import {
  decodeFirmwareTable,
  encodeFirmwareTable,
  type FirmwareDecodeResult,
  firmwareTableLength,
  HEADER_SIZE,
  Header
} from "../../hw/firmware/table.ts"

/** The default host: 2 pCPUs, 256 MiB, the legacy PC devices plus fvblk and fvnic. */
const host: FirmwareDescription = {
  cpus: [
    { apicId: 0, bootstrap: true },
    { apicId: 1, bootstrap: false }
  ],
  memory: [
    { base: 0, length: 0x9f000, type: "usable" },
    { base: 0x9f000, length: 0x1000, type: "reserved" },
    { base: 0xf0000, length: 0x10000, type: "rom" },
    { base: 0x100000, length: 255 * 2 ** 20, type: "usable" },
    { base: 0xfeb00000, length: 0x01500000, type: "mmio" }
  ],
  devices: [
    { type: "pic8259", space: "port", base: 0x20, length: 2, irq: null },
    { type: "pic8259", space: "port", base: 0xa0, length: 2, irq: null },
    { type: "pit8254", space: "port", base: 0x40, length: 4, irq: 0 },
    { type: "uart16550", space: "port", base: 0x3f8, length: 8, irq: 4 },
    { type: "lapic", space: "mmio", base: 0xfee00000, length: 0x1000, irq: null },
    { type: "fvblk", space: "mmio", base: 0xfeb00000, length: 0x1000, irq: 11 },
    { type: "fvnic", space: "mmio", base: 0xfeb01000, length: 0x1000, irq: 10 }
  ]
}

const reasonOf = (r: FirmwareDecodeResult) => (r.ok ? "ok" : r.error.reason)
const sum = (bytes: Uint8Array, length = bytes.length) => bytes.subarray(0, length).reduce((a, b) => (a + b) & 0xff, 0)
/** Patch a valid table and fix its checksum, so the decoder's later checks are reached. */
const patched = (patch: (v: DataView, bytes: Uint8Array) => void, base = host): Uint8Array => {
  const bytes = encodeFirmwareTable(base).slice()
  patch(new DataView(bytes.buffer), bytes)
  const length = Math.min(new DataView(bytes.buffer).getUint32(Header.LENGTH, true), bytes.length)
  bytes[Header.CHECKSUM] = 0
  bytes[Header.CHECKSUM] = (256 - sum(bytes, length)) & 0xff
  return bytes
}
const cpuAt = (i: number) => HEADER_SIZE + 8 * i
const regionAt = (i: number) => HEADER_SIZE + 8 * host.cpus.length + 24 * i
const deviceAt = (i: number) => regionAt(host.memory.length) + 16 * i

describe("layout (table.ts header)", () => {
  it("encodes the header, entries and a zero-sum checksum", () => {
    const bytes = encodeFirmwareTable(host)
    const v = new DataView(bytes.buffer)
    expect(String.fromCharCode(...bytes.subarray(0, 4))).toBe("FVFW")
    expect(v.getUint16(Header.VERSION, true)).toBe(1)
    expect(v.getUint16(Header.HEADER_LENGTH, true)).toBe(24)
    expect(v.getUint32(Header.LENGTH, true)).toBe(bytes.length)
    expect(bytes.length).toBe(24 + 2 * 8 + 5 * 24 + 7 * 16)
    expect(firmwareTableLength(host)).toBe(bytes.length)
    expect([Header.CPU_COUNT, Header.MEMORY_COUNT, Header.DEVICE_COUNT].map((o) => v.getUint16(o, true))).toEqual([
      2, 5, 7
    ])
    expect(sum(bytes)).toBe(0)
    expect([bytes[cpuAt(0)], bytes[cpuAt(0) + 1], bytes[cpuAt(1)], bytes[cpuAt(1) + 1]]).toEqual([0, 1, 1, 0])
    expect(v.getBigUint64(regionAt(4), true)).toBe(0xfeb00000n)
    expect(v.getUint32(regionAt(4) + 16, true)).toBe(4) // mmio
    expect([v.getUint16(deviceAt(3), true), bytes[deviceAt(3) + 2], bytes[deviceAt(3) + 3]]).toEqual([1, 1, 4])
    expect(bytes[deviceAt(0) + 3]).toBe(0xff) // no irq
  })

  it("round-trips, ignoring bytes after the table (the rest of the ROM page)", () => {
    const rom = new Uint8Array(4096).fill(0xcc)
    rom.set(encodeFirmwareTable(host))
    expect(decodeFirmwareTable(rom)).toEqual({ ok: true, table: host })
  })

  it("the encoder refuses a description the decoder would refuse", () => {
    expect(() => encodeFirmwareTable({ ...host, cpus: [] })).toThrow(RangeError)
    expect(() =>
      encodeFirmwareTable({ ...host, devices: [{ ...host.devices[0]!, type: "gpu" as DeviceType }] })
    ).toThrow(/unknown type/)
  })
})

describe("decoder checks, in order", () => {
  const good = encodeFirmwareTable(host)
  it.each<[string, unknown, string]>([
    ["not bytes: undefined", undefined, "not-bytes"],
    ["not bytes: a number array", Array.from(good), "not-bytes"],
    ["shorter than the header", good.subarray(0, 23), "truncated"],
    ["cut inside the entries", good.subarray(0, good.length - 1), "truncated"],
    ["bad signature", patched((_v, b) => b.set([0x46, 0x56, 0x46, 0x57].reverse(), 0)), "signature"],
    ["version 2", patched((v) => v.setUint16(Header.VERSION, 2, true)), "version"],
    ["header length 32", patched((v) => v.setUint16(Header.HEADER_LENGTH, 32, true)), "header"],
    ["length larger than the bytes", patched((v) => v.setUint32(Header.LENGTH, 0xffffffff, true)), "truncated"],
    ["one CPU more than the length covers", patched((v) => v.setUint16(Header.CPU_COUNT, 3, true)), "length"],
    ["zero devices but device bytes present", patched((v) => v.setUint16(Header.DEVICE_COUNT, 0, true)), "length"],
    ["a flipped byte", Uint8Array.from(good, (b, i) => (i === 40 ? b ^ 1 : b)), "checksum"],
    [
      "reserved header byte",
      patched((_v, b) => {
        b[Header.RESERVED0] = 1
      }),
      "reserved"
    ],
    [
      "reserved CPU flag bit",
      patched((_v, b) => {
        b[cpuAt(1) + 1] = 2
      }),
      "reserved"
    ],
    ["reserved region field", patched((v) => v.setUint32(regionAt(0) + 20, 1, true)), "reserved"],
    ["reserved device field", patched((v) => v.setUint32(deviceAt(0) + 12, 1, true)), "reserved"],
    [
      "no bootstrap CPU",
      patched((_v, b) => {
        b[cpuAt(0) + 1] = 0
      }),
      "cpus"
    ],
    [
      "two bootstrap CPUs",
      patched((_v, b) => {
        b[cpuAt(1) + 1] = 1
      }),
      "cpus"
    ],
    [
      "duplicate APIC ID",
      patched((_v, b) => {
        b[cpuAt(1)] = 0
      }),
      "cpus"
    ],
    [
      "APIC ID 255 (broadcast)",
      patched((_v, b) => {
        b[cpuAt(1)] = 255
      }),
      "cpus"
    ],
    ["memory type 0", patched((v) => v.setUint32(regionAt(1) + 16, 0, true)), "memory"],
    ["memory type 5", patched((v) => v.setUint32(regionAt(1) + 16, 5, true)), "memory"],
    ["region above 4 GiB", patched((v) => v.setUint32(regionAt(4) + 4, 1, true)), "memory"],
    ["region of length 0", patched((v) => v.setBigUint64(regionAt(1) + 8, 0n, true)), "memory"],
    ["overlapping regions", patched((v) => v.setBigUint64(regionAt(1), 0x9e000n, true)), "memory"],
    ["region past 4 GiB", patched((v) => v.setBigUint64(regionAt(4) + 8, 0x01600000n, true)), "memory"],
    ["device type 0", patched((v) => v.setUint16(deviceAt(2), 0, true)), "devices"],
    ["device type 99", patched((v) => v.setUint16(deviceAt(2), 99, true)), "devices"],
    [
      "address space 2",
      patched((_v, b) => {
        b[deviceAt(2) + 2] = 2
      }),
      "devices"
    ],
    ["port window past 64 KiB", patched((v) => v.setUint32(deviceAt(3) + 4, 0xfffc, true)), "devices"],
    ["device of length 0", patched((v) => v.setUint32(deviceAt(3) + 8, 0, true)), "devices"],
    ["overlapping port devices", patched((v) => v.setUint32(deviceAt(1) + 4, 0x21, true)), "devices"],
    ["MMIO device outside an mmio region", patched((v) => v.setUint32(deviceAt(5) + 4, 0x1000, true)), "devices"],
    ["MMIO window wrapping past 4 GiB", patched((v) => v.setUint32(deviceAt(6) + 8, 0xffffffff, true)), "devices"]
  ])("%s", (_name, input, reason) => {
    const result = decodeFirmwareTable(input)
    expect(reasonOf(result)).toBe(reason)
    if (!result.ok) expect(result.error.message.length).toBeGreaterThan(10)
  })

  it("no usable RAM is refused", () => {
    const noRam: FirmwareDescription = {
      ...host,
      memory: host.memory.map((r) => (r.type === "usable" ? { ...r, type: "reserved" as const } : r))
    }
    expect(validateDescription(noRam)?.reason).toBe("memory")
    const bytes = patched((v) => {
      v.setUint32(regionAt(0) + 16, 2, true)
      v.setUint32(regionAt(3) + 16, 2, true)
    })
    expect(decodeFirmwareTable(bytes)).toMatchObject({
      ok: false,
      error: { reason: "memory", message: "no usable RAM" }
    })
  })
})

// ---- properties ---------------------------------------------------------------

const MMIO_BASE = 0xf0000000

/** Valid descriptions: sorted regions below 3.75 GiB then an mmio window at 0xF0000000 holding the MMIO devices. */
const descriptionArb: fc.Arbitrary<FirmwareDescription> = fc
  .record({
    ids: fc.uniqueArray(fc.integer({ min: 0, max: 254 }), { minLength: 1, maxLength: 16 }),
    bsp: fc.nat(),
    regions: fc.array(
      fc.record({
        gap: fc.nat({ max: 0x1000 }),
        pages: fc.integer({ min: 1, max: 0x8000 }),
        type: fc.constantFrom(...memoryTypes)
      }),
      { maxLength: 12 }
    ),
    slots: fc.uniqueArray(fc.nat({ max: 4000 }), { maxLength: 20 }),
    kinds: fc.array(
      fc.record({
        type: fc.constantFrom(...deviceTypes),
        mmio: fc.boolean(),
        irq: fc.option(fc.nat({ max: 254 }), { nil: null })
      }),
      { minLength: 20, maxLength: 20 }
    )
  })
  .map(({ ids, bsp, regions, slots, kinds }) => {
    const memory: Array<MemoryRegion> = [{ base: 0, length: 0x1000, type: "usable" }]
    let end = 0x1000
    for (const r of regions) {
      const base = end + r.gap * 0x1000
      memory.push({ base, length: r.pages * 0x1000, type: r.type })
      end = base + r.pages * 0x1000
    }
    memory.push({ base: MMIO_BASE, length: 0x10000000, type: "mmio" })
    const devices: Array<FirmwareDevice> = slots.map((slot, i) => {
      const k = kinds[i]!
      return k.mmio
        ? { type: k.type, space: "mmio", base: MMIO_BASE + slot * 0x1000, length: 0x1000, irq: k.irq }
        : { type: k.type, space: "port", base: slot * 16, length: 1 + (slot % 16), irq: k.irq }
    })
    return { cpus: ids.map((apicId, i) => ({ apicId, bootstrap: i === bsp % ids.length })), memory, devices }
  })

/** Decoding never throws; a table it accepts is valid and re-encodes to exactly its bytes. */
const checkDecode = (bytes: Uint8Array) => {
  const result = decodeFirmwareTable(bytes)
  if (result.ok) {
    expect(validateDescription(result.table)).toBeUndefined()
    const again = encodeFirmwareTable(result.table)
    expect(again).toEqual(bytes.subarray(0, again.length))
  } else {
    expect(result.error._tag).toBe("FirmwareTableError")
  }
  return result
}

describe("properties", () => {
  it("every valid description round-trips", () => {
    fc.assert(
      fc.property(descriptionArb, (d) => {
        expect(validateDescription(d)).toBeUndefined()
        expect(decodeFirmwareTable(encodeFirmwareTable(d))).toEqual({ ok: true, table: d })
      }),
      { seed: 0xf1f0, numRuns: 300 }
    )
  })

  const mutations = fc.array(fc.record({ at: fc.nat(), value: fc.nat({ max: 255 }) }), { minLength: 1, maxLength: 4 })

  it("random byte mutations are rejected (a changed byte breaks the checksum) without throwing", () => {
    fc.assert(
      fc.property(descriptionArb, mutations, (d, muts) => {
        const bytes = encodeFirmwareTable(d)
        const original = bytes.slice()
        for (const m of muts) bytes[m.at % bytes.length] = m.value
        const result = checkDecode(bytes)
        if (muts.length === 1 && !bytes.every((b, i) => b === original[i])) expect(result.ok).toBe(false)
      }),
      { seed: 0xf1f1, numRuns: 400 }
    )
  })

  it("mutations with the checksum fixed up are rejected by a later check or decode to a valid, canonical table", () => {
    fc.assert(
      fc.property(descriptionArb, mutations, (d, muts) => {
        const bytes = encodeFirmwareTable(d)
        for (const m of muts) bytes[m.at % bytes.length] = m.value
        bytes[Header.CHECKSUM] = 0
        bytes[Header.CHECKSUM] = (256 - sum(bytes)) & 0xff
        const result = checkDecode(bytes)
        if (!result.ok) expect(result.error.reason).not.toBe("checksum")
      }),
      { seed: 0xf1f2, numRuns: 600 }
    )
  })

  it("every truncation is refused; random bytes never throw", () => {
    fc.assert(
      fc.property(descriptionArb, fc.nat(), (d, cut) => {
        const bytes = encodeFirmwareTable(d)
        expect(checkDecode(bytes.subarray(0, cut % bytes.length)).ok).toBe(false)
      }),
      { seed: 0xf1f3, numRuns: 200 }
    )
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), fc.boolean(), (random, signed) => {
        if (signed && random.length >= 4) random.set([0x46, 0x56, 0x46, 0x57], 0)
        checkDecode(random)
      }),
      { seed: 0xf1f4, numRuns: 500 }
    )
  })
})
