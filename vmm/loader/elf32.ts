/**
 * A strict parser for ELF32 little-endian i386 executables: the ELF header
 * and the program-header table, which is all a boot loader needs (TIS "ELF
 * Specification" v1.2, Book I: 1-2 "ELF Header" figure 1-3 and 1-6
 * "e_ident"; 2-2 "Program Header" figure 2-1; System V ABI i386 supplement:
 * EM_386, ELFCLASS32, ELFDATA2LSB).
 *
 *   offset  ELF header (52 bytes)         offset  program header (32 bytes)
 *   0x00    e_ident[16]                   0x00    p_type
 *   0x10    e_type      e_machine         0x04    p_offset
 *   0x14    e_version                     0x08    p_vaddr
 *   0x18    e_entry                       0x0c    p_paddr
 *   0x1c    e_phoff                       0x10    p_filesz
 *   0x20    e_shoff                       0x14    p_memsz
 *   0x24    e_flags                       0x18    p_flags
 *   0x28    e_ehsize    e_phentsize       0x1c    p_align
 *   0x2c    e_phnum     e_shentsize
 *   0x30    e_shnum     e_shstrndx
 *
 * Invariants of a successful parse: the file is ELFCLASS32, ELFDATA2LSB,
 * EV_CURRENT, ET_EXEC, EM_386; both header tables lie inside the file; every
 * PT_LOAD has p_offset + p_filesz <= file size, p_filesz <= p_memsz, neither
 * p_vaddr + p_memsz nor p_paddr + p_memsz passes 4 GiB, and p_vaddr is
 * congruent to p_offset modulo a power-of-two p_align.
 *
 * Arithmetic is overflow-safe by construction: fields are read as unsigned
 * 32-bit numbers and JS numbers are exact to 2^53, so a sum of two fields
 * (< 2^33) or a 16-bit count times a 16-bit size (< 2^32) is exact and is
 * compared against the file size or 2^32, never wrapped.
 *
 * Never throws: returns a Result whose failure is a LoaderError.
 */
import { Result } from "effect"
import { hex, type LoaderError, loaderError } from "./errors.ts"

export const ELF_HEADER_SIZE = 52
export const PROGRAM_HEADER_SIZE = 32
export const SECTION_HEADER_SIZE = 40

/** e_ident indexes and values (Book I figure 1-4). */
const EI_CLASS = 4
const EI_DATA = 5
const EI_VERSION = 6
const ELFCLASS32 = 1
const ELFCLASS64 = 2
const ELFDATA2LSB = 1
const EV_CURRENT = 1
export const ET_EXEC = 2
export const EM_386 = 3
const EM_X86_64 = 62
/** e_phnum value meaning "the real count is elsewhere" (extended numbering): not for boot images. */
const PN_XNUM = 0xffff

/** Segment types (Book I figure 2-2). */
export const PT = { NULL: 0, LOAD: 1, DYNAMIC: 2, INTERP: 3, NOTE: 4, SHLIB: 5, PHDR: 6 } as const
/** Segment permission bits (Book I figure 2-3 / A-2). */
export const PF = { X: 1, W: 2, R: 4 } as const

const FOUR_GIB = 2 ** 32

export interface Elf32Header {
  readonly type: number
  readonly machine: number
  readonly version: number
  readonly entry: number
  readonly phoff: number
  readonly shoff: number
  readonly flags: number
  readonly ehsize: number
  readonly phentsize: number
  readonly phnum: number
  readonly shentsize: number
  readonly shnum: number
  readonly shstrndx: number
}

export interface Elf32ProgramHeader {
  /** Position in the program-header table (messages name segments by it). */
  readonly index: number
  readonly type: number
  readonly offset: number
  readonly vaddr: number
  readonly paddr: number
  readonly filesz: number
  readonly memsz: number
  readonly flags: number
  readonly align: number
}

export interface Elf32Executable {
  readonly header: Elf32Header
  readonly programHeaders: ReadonlyArray<Elf32ProgramHeader>
}

const fail = (reason: Parameters<typeof loaderError>[0], message: string): Result.Result<never, LoaderError> =>
  Result.fail(loaderError(reason, message))

/** The four magic bytes 0x7f 'E' 'L' 'F' (whatever follows). */
export const hasElfMagic = (image: Uint8Array): boolean =>
  image.length >= 4 && image[0] === 0x7f && image[1] === 0x45 && image[2] === 0x4c && image[3] === 0x46

const typeName = (type: number): string =>
  (["ET_NONE", "ET_REL", "ET_EXEC", "ET_DYN", "ET_CORE"] as const)[type] ?? `type ${type}`

/** Parse and validate an ELF32 LE i386 executable; see the header for what "valid" means. */
export function parseElf32(image: Uint8Array): Result.Result<Elf32Executable, LoaderError> {
  const size = image.length
  if (!hasElfMagic(image)) {
    if (size < 4 && image.every((b, i) => b === [0x7f, 0x45, 0x4c, 0x46][i]))
      return fail("truncated", `the file is ${size} bytes, shorter than the ELF magic`)
    return fail("not-elf32", "the file does not start with the ELF magic 7f 45 4c 46")
  }
  if (size < ELF_HEADER_SIZE)
    return fail("truncated", `the file is ${size} bytes, shorter than the ${ELF_HEADER_SIZE}-byte ELF32 header`)
  const dv = new DataView(image.buffer, image.byteOffset, image.byteLength)
  const u16 = (at: number) => dv.getUint16(at, true)
  const u32 = (at: number) => dv.getUint32(at, true)

  const elfClass = image[EI_CLASS]!
  if (elfClass === ELFCLASS64) {
    const x64 = u16(18) === EM_X86_64 ? " (x86-64)" : ""
    return fail("not-elf32", `e_ident[EI_CLASS] = 2 (ELFCLASS64): a 64-bit image${x64}; give a 32-bit one`)
  }
  if (elfClass !== ELFCLASS32) return fail("not-elf32", `e_ident[EI_CLASS] = ${elfClass}, not 1 (ELFCLASS32)`)
  if (image[EI_DATA] !== ELFDATA2LSB)
    return fail("not-elf32", `e_ident[EI_DATA] = ${image[EI_DATA]}, not 1 (ELFDATA2LSB, little-endian)`)
  if (image[EI_VERSION] !== EV_CURRENT)
    return fail("bad-elf", `e_ident[EI_VERSION] = ${image[EI_VERSION]}, not 1 (EV_CURRENT)`)

  const header: Elf32Header = {
    type: u16(16),
    machine: u16(18),
    version: u32(20),
    entry: u32(24),
    phoff: u32(28),
    shoff: u32(32),
    flags: u32(36),
    ehsize: u16(40),
    phentsize: u16(42),
    phnum: u16(44),
    shentsize: u16(46),
    shnum: u16(48),
    shstrndx: u16(50)
  }
  if (header.type !== ET_EXEC)
    return fail(
      "not-elf32",
      `e_type = ${header.type} (${typeName(header.type)}), not 2 (ET_EXEC): a Multiboot kernel is a linked, static executable`
    )
  if (header.machine !== EM_386) return fail("not-elf32", `e_machine = ${header.machine}, not 3 (EM_386)`)
  if (header.version !== EV_CURRENT) return fail("bad-elf", `e_version = ${header.version}, not 1 (EV_CURRENT)`)
  if (header.ehsize !== ELF_HEADER_SIZE) return fail("bad-elf", `e_ehsize = ${header.ehsize}, not ${ELF_HEADER_SIZE}`)

  // the program-header table
  if (header.phnum === PN_XNUM)
    return fail("bad-elf", "e_phnum = 0xffff (PN_XNUM, extended numbering) is not supported")
  if (header.phnum > 0) {
    if (header.phentsize !== PROGRAM_HEADER_SIZE)
      return fail("bad-elf", `e_phentsize = ${header.phentsize}, not ${PROGRAM_HEADER_SIZE}`)
    if (header.phoff < ELF_HEADER_SIZE) return fail("bad-elf", `e_phoff = ${hex(header.phoff)} overlaps the ELF header`)
    const end = header.phoff + header.phnum * PROGRAM_HEADER_SIZE
    if (end > size)
      return fail(
        "truncated",
        `the program-header table (e_phoff ${hex(header.phoff)}, ${header.phnum} entries) ends at ${hex(end)}, past the end of the ${hex(size)}-byte file`
      )
  }

  const programHeaders: Array<Elf32ProgramHeader> = []
  for (let index = 0; index < header.phnum; index++) {
    const at = header.phoff + index * PROGRAM_HEADER_SIZE
    const ph: Elf32ProgramHeader = {
      index,
      type: u32(at),
      offset: u32(at + 4),
      vaddr: u32(at + 8),
      paddr: u32(at + 12),
      filesz: u32(at + 16),
      memsz: u32(at + 20),
      flags: u32(at + 24),
      align: u32(at + 28)
    }
    if (ph.type === PT.LOAD) {
      const problem = checkLoadSegment(ph, size)
      if (problem !== undefined) return Result.fail(problem)
    }
    programHeaders.push(ph)
  }

  // the section-header table: not needed to load, but a strict parser refuses a file that claims one it lacks
  if (header.shnum > 0) {
    if (header.shentsize !== SECTION_HEADER_SIZE)
      return fail("bad-elf", `e_shentsize = ${header.shentsize}, not ${SECTION_HEADER_SIZE}`)
    if (header.shoff < ELF_HEADER_SIZE)
      return fail(
        "bad-elf",
        `e_shoff = ${hex(header.shoff)} with e_shnum = ${header.shnum}: the table would overlap the ELF header`
      )
    const end = header.shoff + header.shnum * SECTION_HEADER_SIZE
    if (end > size)
      return fail(
        "truncated",
        `the section-header table (e_shoff ${hex(header.shoff)}, ${header.shnum} entries) ends at ${hex(end)}, outside the ${hex(size)}-byte file`
      )
    if (header.shstrndx >= header.shnum && header.shstrndx !== 0xffff)
      return fail("bad-elf", `e_shstrndx = ${header.shstrndx}, but there are only ${header.shnum} sections`)
  }
  return Result.succeed({ header, programHeaders })
}

/** The rules of Book I 2-2 for one PT_LOAD entry, against a file of `size` bytes. */
function checkLoadSegment(ph: Elf32ProgramHeader, size: number): LoaderError | undefined {
  const name = `program header ${ph.index} (PT_LOAD)`
  if (ph.offset + ph.filesz > size)
    return loaderError(
      "truncated",
      `${name}: p_offset ${hex(ph.offset)} + p_filesz ${hex(ph.filesz)} = ${hex(ph.offset + ph.filesz)} is past the end of the ${hex(size)}-byte file`
    )
  if (ph.filesz > ph.memsz)
    return loaderError("bad-elf", `${name}: p_filesz ${hex(ph.filesz)} is larger than p_memsz ${hex(ph.memsz)}`)
  if (ph.paddr + ph.memsz > FOUR_GIB)
    return loaderError(
      "bad-elf",
      `${name}: p_paddr ${hex(ph.paddr)} + p_memsz ${hex(ph.memsz)} wraps past 4 GiB (${hex(ph.paddr + ph.memsz)})`
    )
  if (ph.vaddr + ph.memsz > FOUR_GIB)
    return loaderError(
      "bad-elf",
      `${name}: p_vaddr ${hex(ph.vaddr)} + p_memsz ${hex(ph.memsz)} wraps past 4 GiB (${hex(ph.vaddr + ph.memsz)})`
    )
  if (ph.align > 1) {
    if ((ph.align & (ph.align - 1)) !== 0)
      return loaderError("bad-elf", `${name}: p_align ${hex(ph.align)} is not a power of two`)
    if (ph.vaddr % ph.align !== ph.offset % ph.align)
      return loaderError(
        "bad-elf",
        `${name}: p_vaddr ${hex(ph.vaddr)} and p_offset ${hex(ph.offset)} differ modulo p_align ${hex(ph.align)}`
      )
  }
  return undefined
}

/** The segments a loader copies: PT_LOAD entries with a non-zero p_memsz (empty ones are skipped, as QEMU does). */
export const loadSegments = (elf: Elf32Executable): ReadonlyArray<Elf32ProgramHeader> =>
  elf.programHeaders.filter((ph) => ph.type === PT.LOAD && ph.memsz > 0)
