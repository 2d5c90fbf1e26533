/**
 * The ELF32 parser against binutils: for executables linked by ld, every
 * field parseElf32 reads equals what `readelf -hlW` prints (TIS ELF 1.2 Book
 * I 1-2, 2-2); and each strictness rule on its own, on hand-made headers.
 */
import { execFileSync } from "node:child_process"
import { mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { describe, expect, it } from "@effect/vitest"
import { Result } from "effect"
import { type Elf32Executable, loadSegments, PT, parseElf32 } from "../../../vmm/loader/elf32.ts"
import { elfImage, readerElfSource } from "./images.ts"

const mustParse = (bytes: Uint8Array): Elf32Executable => {
  const r = parseElf32(bytes)
  if (Result.isFailure(r)) throw new Error(r.failure.message)
  return r.success
}

const failure = (bytes: Uint8Array) => {
  const r = parseElf32(bytes)
  if (Result.isSuccess(r)) throw new Error("expected the parser to refuse")
  return r.failure
}

/** `readelf -hlW` of `bytes`: the header numbers and the program-header rows. */
function readelf(bytes: Uint8Array) {
  const dir = mkdtempSync(join(tmpdir(), "fibervisor-readelf-"))
  try {
    writeFileSync(join(dir, "k.elf"), bytes)
    const out = execFileSync("readelf", ["-hlW", join(dir, "k.elf")], { encoding: "utf8" })
    const field = (name: string) => {
      const m = new RegExp(`${name}:\\s+(\\S+)`).exec(out)
      if (!m) throw new Error(`readelf printed no ${name}`)
      return Number(m[1])
    }
    const rows = [
      ...out.matchAll(
        /^\s+(LOAD|NOTE|NULL|PHDR)\s+(0x\S+)\s+(0x\S+)\s+(0x\S+)\s+(0x\S+)\s+(0x\S+)\s+([RWE ]+?)\s+(0x\S+)$/gm
      )
    ]
    return {
      entry: field("Entry point address"),
      phoff: field("Start of program headers"),
      shoff: field("Start of section headers"),
      phnum: field("Number of program headers"),
      shnum: field("Number of section headers"),
      shstrndx: field("Section header string table index"),
      segments: rows.map((m) => ({
        offset: Number(m[2]),
        vaddr: Number(m[3]),
        paddr: Number(m[4]),
        filesz: Number(m[5]),
        memsz: Number(m[6]),
        flags: (m[7]!.includes("R") ? 4 : 0) | (m[7]!.includes("W") ? 2 : 0) | (m[7]!.includes("E") ? 1 : 0),
        align: Number(m[8])
      }))
    }
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

describe("parseElf32 agrees with readelf", () => {
  const images = {
    "the reader kernel at 1 MiB": elfImage(readerElfSource(), { text: 0x100000 }).bytes,
    "a kernel with a linker script and AT()": elfImage(
      "bits 32\nsection .text\nglobal _start\n_start: hlt\nsection .data\ndd 1\nsection .bss\nresb 100\n",
      {
        script:
          "ENTRY(_start)\nSECTIONS {\n . = 0xC0100000;\n .text : AT(0x100000) { *(.text) }\n .data ALIGN(4096) : AT(ADDR(.data) - 0xC0000000) { *(.data) *(.bss) }\n}\n"
      }
    ).bytes
  }
  for (const [name, bytes] of Object.entries(images)) {
    it(name, () => {
      const elf = mustParse(bytes)
      const ref = readelf(bytes)
      expect(elf.header).toMatchObject({
        type: 2,
        machine: 3,
        version: 1,
        entry: ref.entry,
        phoff: ref.phoff,
        shoff: ref.shoff,
        ehsize: 52,
        phentsize: 32,
        phnum: ref.phnum,
        shentsize: 40,
        shnum: ref.shnum,
        shstrndx: ref.shstrndx
      })
      const loads = elf.programHeaders.filter((p) => p.type === PT.LOAD)
      expect(loads.map(({ index: _, type: __, ...rest }) => rest)).toEqual(ref.segments)
      expect(loadSegments(elf).length).toBe(ref.segments.filter((s) => s.memsz > 0).length)
    })
  }
})

describe("parseElf32 strictness, one rule at a time", () => {
  /** A minimal valid ELF32 i386 executable: header, one PT_LOAD of 4 bytes at 0x100000. */
  const minimal = () => {
    const b = new Uint8Array(52 + 32 + 4)
    const dv = new DataView(b.buffer)
    b.set([0x7f, 0x45, 0x4c, 0x46, 1, 1, 1])
    dv.setUint16(16, 2, true) // ET_EXEC
    dv.setUint16(18, 3, true) // EM_386
    dv.setUint32(20, 1, true)
    dv.setUint32(24, 0x100000, true)
    dv.setUint32(28, 52, true)
    dv.setUint16(40, 52, true)
    dv.setUint16(42, 32, true)
    dv.setUint16(44, 1, true)
    dv.setUint16(46, 40, true)
    const ph = 52
    dv.setUint32(ph, PT.LOAD, true)
    dv.setUint32(ph + 4, 84, true)
    dv.setUint32(ph + 8, 0x100000, true)
    dv.setUint32(ph + 12, 0x100000, true)
    dv.setUint32(ph + 16, 4, true)
    dv.setUint32(ph + 20, 4, true)
    dv.setUint32(ph + 24, 5, true)
    dv.setUint32(ph + 28, 4, true)
    b.set([0xf4, 0xf4, 0xf4, 0xf4], 84)
    return { b, dv }
  }

  it("accepts the minimal executable", () => {
    const elf = mustParse(minimal().b)
    expect(elf.programHeaders).toEqual([
      { index: 0, type: 1, offset: 84, vaddr: 0x100000, paddr: 0x100000, filesz: 4, memsz: 4, flags: 5, align: 4 }
    ])
  })

  const cases: ReadonlyArray<[string, (b: Uint8Array, dv: DataView) => void, string, string]> = [
    ["not ELF", (b) => b.set([0x7e], 0), "not-elf32", "ELF magic"],
    ["EI_VERSION", (b) => b.set([2], 6), "bad-elf", "EI_VERSION"],
    ["e_version", (_, dv) => dv.setUint32(20, 0, true), "bad-elf", "e_version = 0"],
    ["e_ehsize", (_, dv) => dv.setUint16(40, 64, true), "bad-elf", "e_ehsize = 64"],
    ["PN_XNUM", (_, dv) => dv.setUint16(44, 0xffff, true), "bad-elf", "PN_XNUM"],
    ["e_phoff inside the header", (_, dv) => dv.setUint32(28, 8, true), "bad-elf", "e_phoff = 0x8"],
    ["program headers past the end", (_, dv) => dv.setUint16(44, 3, true), "truncated", "3 entries"],
    ["e_phoff near 4 GiB", (_, dv) => dv.setUint32(28, 0xffffffff, true), "truncated", "0xffffffff"],
    ["p_align not a power of two", (_, dv) => dv.setUint32(52 + 28, 3, true), "bad-elf", "power of two"],
    ["p_offset + p_filesz past the end", (_, dv) => dv.setUint32(52 + 4, 0xfffffffe, true), "truncated", "0xfffffffe"],
    ["section table claimed but absent", (_, dv) => dv.setUint16(48, 4, true), "bad-elf", "e_shoff = 0x0"],
    [
      "section table past the end",
      (_, dv) => {
        dv.setUint16(48, 4, true)
        dv.setUint32(32, 60, true)
      },
      "truncated",
      "section-header table"
    ],
    [
      "e_shentsize",
      (_, dv) => {
        dv.setUint16(48, 1, true)
        dv.setUint16(46, 64, true)
      },
      "bad-elf",
      "e_shentsize = 64"
    ]
  ]
  for (const [name, edit, reason, mention] of cases) {
    it(`${name}: ${reason}`, () => {
      const { b, dv } = minimal()
      edit(b, dv)
      const e = failure(b)
      expect(e.reason).toBe(reason)
      expect(e.message).toContain(mention)
    })
  }

  it("a file shorter than the header: truncated; shorter than the magic: truncated too", () => {
    expect(failure(minimal().b.subarray(0, 51)).reason).toBe("truncated")
    expect(failure(new Uint8Array([0x7f, 0x45])).reason).toBe("truncated")
    expect(failure(new Uint8Array(0)).reason).toBe("truncated")
  })
})
