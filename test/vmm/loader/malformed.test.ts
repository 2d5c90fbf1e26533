/**
 * Every way an image (or the load options) can be wrong, each refused with
 * its own LoaderError reason and a message naming the field and values:
 * real images built by nasm/ld, then patched or cut (Multiboot 0.6.96 3.1,
 * TIS ELF 1.2 Book I 1-2 and 2-2).
 */
import { describe, expect, it } from "@effect/vitest"
import { Result } from "effect"
import { parseElf32 } from "../../../vmm/loader/elf32.ts"
import { LoaderError, type LoaderErrorReason } from "../../../vmm/loader/errors.ts"
import { type MultibootOptions, planMultibootLoad } from "../../../vmm/loader/multiboot.ts"
import { elfImage, flatImage, readerElfSource, readerKludgeSource } from "./images.ts"

const RAM = 8 << 20

const readerElf = () => elfImage(readerElfSource(), { text: 0x100000 }).bytes
const readerFlat = () => flatImage(readerKludgeSource()).bytes

/** A copy of `bytes` with `edit` applied through a little-endian DataView. */
const patched = (bytes: Uint8Array, edit: (dv: DataView, b: Uint8Array) => void): Uint8Array => {
  const copy = bytes.slice()
  edit(new DataView(copy.buffer), copy)
  return copy
}

/** File offset of program header `i` of the reader ELF. */
const phdr = (i: number) => {
  const elf = parseElf32(readerElf())
  if (Result.isFailure(elf)) throw new Error(elf.failure.message)
  return elf.success.header.phoff + i * 32
}
const P = { type: 0, offset: 4, vaddr: 8, paddr: 12, filesz: 16, memsz: 20, flags: 24, align: 28 } as const

/** Offset of the Multiboot header magic. */
const headerAt = (bytes: Uint8Array) => {
  const dv = new DataView(bytes.buffer, bytes.byteOffset)
  for (let at = 0; at < 8192; at += 4) if (dv.getUint32(at, true) === 0x1badb002) return at
  throw new Error("no header")
}

/** Set the header flags and recompute the checksum. */
const withFlags = (bytes: Uint8Array, flags: number) =>
  patched(bytes, (dv) => {
    const at = headerAt(bytes)
    dv.setUint32(at + 4, flags >>> 0, true)
    dv.setUint32(at + 8, (2 ** 32 - ((0x1badb002 + (flags >>> 0)) % 2 ** 32)) % 2 ** 32, true)
  })

const refused = (
  image: Uint8Array,
  reason: LoaderErrorReason,
  mentions: ReadonlyArray<string | RegExp> = [],
  options: MultibootOptions = { ramBytes: RAM }
) => {
  const result = planMultibootLoad(image, options)
  if (Result.isSuccess(result)) throw new Error(`expected ${reason}, but the image loaded`)
  const e = result.failure
  expect(e).toBeInstanceOf(LoaderError)
  expect(e._tag).toBe("LoaderError")
  expect({ reason: e.reason, message: e.message }).toMatchObject({ reason })
  expect(e.message.startsWith(`${reason}: `)).toBe(true)
  for (const m of mentions) expect(e.message).toMatch(m)
  return e
}

describe("the Multiboot header (spec 3.1.1, 3.1.2)", () => {
  it("no header at all: not-multiboot", () => {
    refused(new Uint8Array(0), "not-multiboot")
    refused(new Uint8Array(10_000).fill(0x90), "not-multiboot", ["0x1badb002", "first 8192 bytes"])
  })

  it("a wrong checksum: bad-checksum, with the checksum it should have", () => {
    const image = patched(readerElf(), (dv, b) =>
      dv.setUint32(headerAt(b) + 8, dv.getUint32(headerAt(b) + 8, true) + 1, true)
    )
    refused(image, "bad-checksum", ["offset 0x1000", "flags 0x3", "checksum 0xe4524ffc"])
  })

  it("a header beyond the first 8 KiB, or straddling it: header-too-far", () => {
    const far = flatImage(`bits 32
org 0x100000
start:
  times 8192 db 0
hdr:
  dd 0x1BADB002, 0x10000, -(0x1BADB002 + 0x10000)
  dd hdr, start, 0, 0, entry
entry: hlt
`).bytes
    refused(far, "header-too-far", ["offset 0x2000", "8192"])
    const straddle = flatImage(`bits 32
org 0x100000
start:
  times 8184 db 0
  dd 0x1BADB002, 3, -(0x1BADB002 + 3)
`).bytes
    refused(straddle, "header-too-far", ["offset 0x1ff8"])
    // the 12-byte header may end exactly at 8192 (QEMU would not look there; the spec allows it)
    const lastSlot = flatImage(`bits 32
org 0x100000
start:
  times 8180 db 0
hdr:
  dd 0x1BADB002, 0x3, -(0x1BADB002 + 0x3)
`).bytes
    refused(lastSlot, "not-elf32", ["offset 0x1ff4"])
    // ...but its address fields may not cross it
    const fieldsCross = flatImage(`bits 32
org 0x100000
start:
  times 8176 db 0
hdr:
  dd 0x1BADB002, 0x10000, -(0x1BADB002 + 0x10000)
  dd hdr, start, 0, 0, start
`).bytes
    refused(fieldsCross, "header-too-far", ["address fields", "0x2010"])
  })

  it("a file that ends inside the header: truncated", () => {
    refused(readerFlat().subarray(0, 8), "truncated", ["offset 0x0"])
    refused(readerFlat().subarray(0, 20), "truncated", ["address fields"])
  })

  it("requirements the loader cannot meet: unsupported-flags (bit 2 video, bits 3-15 undefined)", () => {
    refused(withFlags(readerElf(), 0x7), "unsupported-flags", ["flags 0x7", "bit 2 (video"])
    refused(withFlags(readerElf(), 0x8023), "unsupported-flags", ["bit 5 ", "bit 15 "])
    // optional bits 17..31 are ignored; bit 16 chooses the kludge
    expect(Result.isSuccess(planMultibootLoad(withFlags(readerElf(), 0xfffe0003), { ramBytes: RAM }))).toBe(true)
  })
})

describe("the ELF path (no flags bit 16)", () => {
  it("an image that is not ELF: not-elf32", () => {
    refused(withFlags(readerFlat(), 0x3), "not-elf32", ["flags bit 16", "ELF magic"])
  })

  it("ELF, but not ELF32 LE i386 ET_EXEC: not-elf32 naming the field", () => {
    refused(
      patched(readerElf(), (_, b) => {
        b[4] = 2
      }),
      "not-elf32",
      ["ELFCLASS64"]
    )
    refused(
      patched(readerElf(), (_, b) => {
        b[5] = 2
      }),
      "not-elf32",
      ["EI_DATA"]
    )
    refused(
      patched(readerElf(), (dv) => dv.setUint16(16, 1, true)),
      "not-elf32",
      ["ET_REL"]
    )
    refused(
      patched(readerElf(), (dv) => dv.setUint16(18, 62, true)),
      "not-elf32",
      ["e_machine = 62"]
    )
  })

  it("cut short: truncated, naming the segment or table", () => {
    refused(readerElf().subarray(0, 0x1000 + 0x40), "truncated", ["program header 1", "p_offset 0x1000"])
    refused(readerElf().subarray(0, readerElf().length - 1), "truncated", ["section-header table"])
  })

  it("inconsistent headers: bad-elf", () => {
    refused(
      patched(readerElf(), (dv) => dv.setUint16(42, 40, true)),
      "bad-elf",
      ["e_phentsize = 40"]
    )
    refused(
      patched(readerElf(), (dv) => dv.setUint32(phdr(1) + P.filesz, 0x200, true)),
      "bad-elf",
      ["p_filesz 0x200 is larger than p_memsz 0x151"]
    )
    refused(
      patched(readerElf(), (dv) => dv.setUint32(phdr(1) + P.vaddr, 0x100004, true)),
      "bad-elf",
      ["p_align"]
    )
    refused(
      patched(readerElf(), (dv) => dv.setUint32(phdr(2) + P.memsz, 0xfffff000, true)),
      "bad-elf",
      ["wraps past 4 GiB"]
    )
  })

  it("no PT_LOAD with a size: no-segments", () => {
    const image = patched(readerElf(), (dv) => {
      for (const i of [0, 1, 2]) dv.setUint32(phdr(i) + P.type, 0, true)
    })
    refused(image, "no-segments", ["3 program header"])
    const empty = patched(readerElf(), (dv) => {
      for (const i of [0, 1, 2]) {
        dv.setUint32(phdr(i) + P.filesz, 0, true)
        dv.setUint32(phdr(i) + P.memsz, 0, true)
      }
    })
    refused(empty, "no-segments")
  })

  it("a segment outside guest RAM, or a huge p_memsz: segment-outside-ram", () => {
    refused(
      patched(readerElf(), (dv) => dv.setUint32(phdr(2) + P.paddr, 0x7f000000, true)),
      "segment-outside-ram",
      ["program header 2", "[0x7f000000, 0x7f004004)", "[0x0, 0x800000)"]
    )
    refused(
      patched(readerElf(), (dv) => dv.setUint32(phdr(2) + P.memsz, 0x80000000, true)),
      "segment-outside-ram",
      ["0x80000000 bytes"]
    )
  })

  it("overlapping segments: overlap, naming both", () => {
    refused(
      patched(readerElf(), (dv) => dv.setUint32(phdr(2) + P.paddr, 0x100100, true)),
      "overlap",
      ["program header 1", "program header 2"]
    )
  })

  it("a segment over the boot information at 0x9000: overlaps-boot-info", () => {
    refused(
      patched(readerElf(), (dv) => dv.setUint32(phdr(0) + P.paddr, 0x9400, true)),
      "overlaps-boot-info",
      ["[0x9400, 0x9494)", "[0x9000, 0x9"]
    )
    // just below it is fine
    const below = patched(readerElf(), (dv) => dv.setUint32(phdr(0) + P.paddr, 0x9000 - 0x94, true))
    expect(Result.isSuccess(planMultibootLoad(below, { ramBytes: RAM }))).toBe(true)
  })

  it("an entry point outside the loaded bytes (or in the bss): entry-outside-image", () => {
    refused(
      patched(readerElf(), (dv) => dv.setUint32(24, 0x500000, true)),
      "entry-outside-image",
      ["0x500000"]
    )
    refused(
      patched(readerElf(), (dv) => dv.setUint32(24, 0x101010, true)),
      "entry-outside-image",
      ["0x101010"]
    )
  })
})

describe("the a.out kludge path (flags bit 16, spec 3.1.3)", () => {
  const field = { headerAddr: 12, loadAddr: 16, loadEndAddr: 20, bssEndAddr: 24, entryAddr: 28 } as const
  const kludge = (name: keyof typeof field, value: number) =>
    patched(readerFlat(), (dv) => dv.setUint32(field[name], value, true))

  it("contradictory address fields: bad-header-addresses", () => {
    refused(kludge("headerAddr", 0xfff00), "bad-header-addresses", ["header_addr 0xfff00 is below load_addr 0x100000"])
    refused(kludge("loadAddr", 0xff000), "bad-header-addresses", ["before the file"])
    refused(kludge("loadEndAddr", 0xff000), "bad-header-addresses", ["load_end_addr 0xff000"])
    refused(kludge("bssEndAddr", 0x100004), "bad-header-addresses", ["bss_end_addr 0x100004"])
    const top = patched(readerFlat(), (dv) => {
      dv.setUint32(field.headerAddr, 0xffffff00, true)
      dv.setUint32(field.loadAddr, 0xffffff00, true)
      dv.setUint32(field.loadEndAddr, 0, true)
    })
    refused(top, "bad-header-addresses", ["32-bit address space"])
  })

  it("load_end_addr past the end of the file: truncated", () => {
    refused(kludge("loadEndAddr", 0x180000), "truncated", ["load_addr..load_end_addr"])
  })

  it("an empty image: no-segments", () => {
    const empty = patched(readerFlat(), (dv) => {
      dv.setUint32(field.loadEndAddr, 0x100000, true)
      dv.setUint32(field.bssEndAddr, 0, true)
    })
    refused(empty, "no-segments")
  })

  it("entry_addr outside the loaded text, or in the bss: entry-outside-image", () => {
    refused(kludge("entryAddr", 0x200000), "entry-outside-image", ["0x200000"])
    refused(kludge("entryAddr", 0xfff00), "entry-outside-image")
  })

  it("load_addr outside RAM: segment-outside-ram", () => {
    const high = patched(readerFlat(), (dv) => {
      dv.setUint32(field.headerAddr, 0x7ff000, true)
      dv.setUint32(field.loadAddr, 0x7ff000, true)
      dv.setUint32(field.loadEndAddr, 0, true)
      dv.setUint32(field.bssEndAddr, 0, true)
      dv.setUint32(field.entryAddr, 0x7ff020, true)
    })
    // the whole file (0x169 bytes) fits below 8 MiB, but not the bss it asks for next
    expect(Result.isSuccess(planMultibootLoad(high, { ramBytes: RAM }))).toBe(true)
    refused(
      patched(high, (dv) => dv.setUint32(field.bssEndAddr, 0x801000, true)),
      "segment-outside-ram",
      ["a.out kludge image", "0x801000"]
    )
  })
})

describe("options and the boot information", () => {
  it("bad RAM sizes and NULs in strings: bad-options", () => {
    refused(readerElf(), "bad-options", ["ramBytes 1048576"], { ramBytes: 1 << 20 })
    refused(readerElf(), "bad-options", [], { ramBytes: (8 << 20) + 1 })
    refused(readerElf(), "bad-options", [], { ramBytes: 4 * 2 ** 30 })
    refused(readerElf(), "bad-options", ["kernel command line"], { ramBytes: RAM, cmdline: "a\0b" })
    refused(readerElf(), "bad-options", ["module 1"], {
      ramBytes: RAM,
      modules: [
        { bytes: new Uint8Array(1), cmdline: "ok" },
        { bytes: new Uint8Array(1), cmdline: "bad\0" }
      ]
    })
  })

  it("command lines that do not fit below the EBDA: boot-info-too-large", () => {
    refused(readerElf(), "boot-info-too-large", ["0x9fc00"], { ramBytes: RAM, cmdline: "x".repeat(700 * 1024) })
  })

  it("modules that do not fit in RAM: modules-outside-ram", () => {
    refused(readerElf(), "modules-outside-ram", ["module 1", "0x800000"], {
      ramBytes: RAM,
      modules: [
        { bytes: new Uint8Array(4 << 20), cmdline: "a" },
        { bytes: new Uint8Array(3 << 20), cmdline: "b" }
      ]
    })
  })
})
