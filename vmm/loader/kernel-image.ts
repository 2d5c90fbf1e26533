/**
 * What of the OS image goes where in guest-physical memory: the kernel's
 * segments and entry point, read either from the Multiboot header's address
 * fields (the "a.out kludge", spec 0.6.96 3.1.3, used whenever flags bit 16
 * is set, ELF or not) or from the ELF32 program headers (3.1.2: "the boot
 * loader must be able to load kernels in the ELF format").
 *
 * a.out kludge, following QEMU's checks (hw/i386/multiboot.c):
 *
 *   file:   [ ... text_offset ........ header at `offset` ........ text_offset + load_size )
 *   guest:    load_addr ............... header_addr ................ load_end_addr ... bss_end_addr
 *
 *   text_offset = offset - (header_addr - load_addr)   (needs load_addr <= header_addr, and the
 *                                                       difference no larger than `offset`)
 *   load_size   = load_end_addr - load_addr, or (load_end_addr = 0) the rest of the file
 *   bss         = [load_addr + load_size, bss_end_addr), none if bss_end_addr = 0
 *
 * ELF: each PT_LOAD with p_memsz > 0 is copied to its *physical* address
 * p_paddr (as QEMU's load_elf does), p_filesz bytes from the file and the rest
 * of p_memsz zeroed. The entry point is e_entry, a virtual address; when a
 * PF_X segment with p_vaddr != p_paddr holds it within its file bytes, it is
 * translated to p_paddr + (e_entry - p_vaddr), exactly QEMU's rule
 * (include/hw/elf_ops.h), so a higher-half kernel linked with AT() starts at
 * its physical entry with paging off.
 *
 * Placement rules (RAM, overlaps, entry inside the image) are the caller's:
 * see multiboot.ts. Segment bytes here are views into the image, not copies.
 */
import { Result } from "effect"
import { hasElfMagic, loadSegments, PF, parseElf32 } from "./elf32.ts"
import { hex, type LoaderError, loaderError, range } from "./errors.ts"
import type { MultibootHeader } from "./multiboot-header.ts"

export interface KernelSegment {
  /** Where it came from, for messages: "ELF program header 2 (PT_LOAD)" or "the a.out kludge image". */
  readonly source: string
  /** Guest-physical load address. */
  readonly address: number
  /** The bytes copied from the file (a view into the image). */
  readonly bytes: Uint8Array
  /** Bytes occupied in memory, >= bytes.length; the rest is zeroed. */
  readonly memsz: number
}

export interface KernelImage {
  readonly format: "elf32" | "aout-kludge"
  readonly segments: ReadonlyArray<KernelSegment>
  /** Guest-physical entry point (before any check that it is inside the image). */
  readonly entry: number
}

const FOUR_GIB = 2 ** 32

/** The kernel as the a.out kludge fields describe it (3.1.3). */
export function kernelFromAoutKludge(
  image: Uint8Array,
  header: MultibootHeader
): Result.Result<KernelImage, LoaderError> {
  const bad = (message: string) => Result.fail(loaderError("bad-header-addresses", message))
  const a = header.aout
  if (a === undefined) return bad("flags bit 16 is clear: the header has no address fields")
  if (a.headerAddr < a.loadAddr) return bad(`header_addr ${hex(a.headerAddr)} is below load_addr ${hex(a.loadAddr)}`)
  const headerIntoText = a.headerAddr - a.loadAddr
  if (headerIntoText > header.offset)
    return bad(
      `header_addr - load_addr = ${hex(headerIntoText)}, but the header is at file offset ${hex(header.offset)}: the text would start before the file does`
    )
  const textOffset = header.offset - headerIntoText

  let loadSize: number
  if (a.loadEndAddr !== 0) {
    if (a.loadEndAddr < a.loadAddr)
      return bad(`load_end_addr ${hex(a.loadEndAddr)} is below load_addr ${hex(a.loadAddr)}`)
    loadSize = a.loadEndAddr - a.loadAddr
  } else {
    loadSize = image.length - textOffset
  }
  if (textOffset + loadSize > image.length)
    return Result.fail(
      loaderError(
        "truncated",
        `load_addr..load_end_addr ${range(a.loadAddr, a.loadAddr + loadSize)} needs file bytes ${range(textOffset, textOffset + loadSize)}, but the file is ${hex(image.length)} bytes`
      )
    )
  if (a.loadAddr + loadSize > FOUR_GIB)
    return bad(`load_addr ${hex(a.loadAddr)} + ${hex(loadSize)} bytes does not fit in the 32-bit address space`)

  let memsz = loadSize
  if (a.bssEndAddr !== 0) {
    if (a.bssEndAddr < a.loadAddr + loadSize)
      return bad(`bss_end_addr ${hex(a.bssEndAddr)} is below the end of the loaded text ${hex(a.loadAddr + loadSize)}`)
    memsz = a.bssEndAddr - a.loadAddr
  }
  if (memsz === 0)
    return Result.fail(
      loaderError(
        "no-segments",
        `the a.out kludge image is empty: load_addr = load_end_addr = ${hex(a.loadAddr)}, no bss`
      )
    )
  return Result.succeed({
    format: "aout-kludge",
    segments: [
      {
        source: "the a.out kludge image",
        address: a.loadAddr,
        bytes: image.subarray(textOffset, textOffset + loadSize),
        memsz
      }
    ],
    entry: a.entryAddr
  })
}

/** The kernel as its ELF32 program headers describe it (3.1.2, QEMU's load_elf rules). */
export function kernelFromElf(image: Uint8Array, header: MultibootHeader): Result.Result<KernelImage, LoaderError> {
  const parsed = parseElf32(image)
  if (Result.isFailure(parsed)) {
    const e = parsed.failure
    if (e.reason !== "not-elf32" || hasElfMagic(image)) return Result.fail(e)
    return Result.fail(
      loaderError(
        "not-elf32",
        `the Multiboot header (offset ${hex(header.offset)}, flags ${hex(header.flags)}) has no address fields (flags bit 16), so the image must be an ELF32 i386 executable, but it does not start with the ELF magic 7f 45 4c 46`
      )
    )
  }
  const elf = parsed.success
  const loads = loadSegments(elf)
  if (loads.length === 0)
    return Result.fail(
      loaderError(
        "no-segments",
        `the ELF file has ${elf.header.phnum} program header(s) but no PT_LOAD segment with p_memsz > 0`
      )
    )
  const virtualEntry = elf.header.entry
  let entry = virtualEntry
  for (const ph of loads) {
    const holdsEntry = virtualEntry >= ph.vaddr && virtualEntry < ph.vaddr + ph.filesz
    if (ph.vaddr !== ph.paddr && (ph.flags & PF.X) !== 0 && holdsEntry) entry = virtualEntry - ph.vaddr + ph.paddr
  }
  return Result.succeed({
    format: "elf32",
    segments: loads.map((ph) => ({
      source: `ELF program header ${ph.index} (PT_LOAD)`,
      address: ph.paddr,
      bytes: image.subarray(ph.offset, ph.offset + ph.filesz),
      memsz: ph.memsz
    })),
    entry
  })
}
