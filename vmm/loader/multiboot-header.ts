/**
 * Finding and checking the Multiboot header of an OS image (GNU "Multiboot
 * Specification version 0.6.96", 3.1 "OS image format"):
 *
 *   offset  field            present when
 *   0       magic 0x1BADB002 always          (3.1.2)
 *   4       flags            always
 *   8       checksum         always          magic + flags + checksum = 0 (mod 2^32)
 *   12      header_addr      flags bit 16    (3.1.3, the "a.out kludge")
 *   16      load_addr        flags bit 16
 *   20      load_end_addr    flags bit 16    0: load to the end of the file
 *   24      bss_end_addr     flags bit 16    0: no bss
 *   28      entry_addr       flags bit 16
 *   32..47  mode_type width height depth     flags bit 2 (3.1.4, video)
 *
 * 3.1.1: the header must lie completely within the first 8192 bytes of the
 * image, 32-bit aligned. 3.1.2: flags bits 0-15 are requirements ("if the
 * boot loader does not understand or cannot meet one, it must fail"), bits
 * 16-31 optional features. This loader meets bit 0 (modules page-aligned:
 * they always are) and bit 1 (memory information: always given), and honours
 * bit 16. It refuses bit 2 (a video mode: there is no display) and bits 3-15
 * (undefined in 0.6.96).
 *
 * QEMU (hw/i386/multiboot.c) differs in two ways, both documented choices:
 * it scans only offsets below 8192 - 48 (a 12-byte header at 8144..8180 is
 * valid by the spec and accepted here), and for bit 2 it only prints
 * "multiboot knows VBE. we don't" and boots anyway; it ignores bits 3-15.
 * Like QEMU, a magic with a wrong checksum is skipped and the scan goes on.
 */
import { Result } from "effect"
import { hex, type LoaderError, loaderError } from "./errors.ts"

export const MULTIBOOT_HEADER_MAGIC = 0x1badb002
/** How far into the image the header may lie (3.1.1). */
export const MULTIBOOT_SEARCH_BYTES = 8192

/** Header flags (3.1.2). */
export const HeaderFlag = {
  /** modules must be loaded on 4 KiB page boundaries */
  PageAlignModules: 1 << 0,
  /** mem_* (and mmap_*, if available) must be in the information structure */
  MemoryInfo: 1 << 1,
  /** the video mode table must be available (header fields 32..47) */
  VideoMode: 1 << 2,
  /** the address fields at offsets 12..28 are valid: load by them, not by the ELF headers */
  AoutKludge: 1 << 16
} as const

const REQUIRED_MASK = 0xffff
const SUPPORTED_REQUIRED = HeaderFlag.PageAlignModules | HeaderFlag.MemoryInfo

/** The a.out kludge fields (3.1.3): physical addresses. */
export interface AoutKludgeAddresses {
  readonly headerAddr: number
  readonly loadAddr: number
  readonly loadEndAddr: number
  readonly bssEndAddr: number
  readonly entryAddr: number
}

export interface MultibootHeader {
  /** File offset of the magic. */
  readonly offset: number
  readonly flags: number
  readonly checksum: number
  /** Present exactly when flags bit 16 is set. */
  readonly aout: AoutKludgeAddresses | undefined
}

const requiredBitName = (bit: number): string =>
  bit === 2 ? "bit 2 (video mode table: no display to set a mode on)" : `bit ${bit} (undefined in spec 0.6.96)`

/** Locate the header (3.1.1), check its checksum and flags (3.1.2) and read the address fields (3.1.3). */
export function findMultibootHeader(image: Uint8Array): Result.Result<MultibootHeader, LoaderError> {
  const dv = new DataView(image.buffer, image.byteOffset, image.byteLength)
  const u32 = (at: number) => dv.getUint32(at, true)
  const size = image.length
  const valid = (at: number) => at + 12 <= size && (u32(at) + u32(at + 4) + u32(at + 8)) % 2 ** 32 === 0

  let found = -1
  let badChecksum = -1
  let cutShort = -1
  for (let at = 0; at + 4 <= Math.min(size, MULTIBOOT_SEARCH_BYTES); at += 4) {
    if (u32(at) !== MULTIBOOT_HEADER_MAGIC) continue
    if (at + 12 > MULTIBOOT_SEARCH_BYTES) break // straddles the 8 KiB boundary: reported as too far below
    if (at + 12 > size) {
      cutShort = at
      break
    }
    if (valid(at)) {
      found = at
      break
    }
    if (badChecksum < 0) badChecksum = at
  }

  if (found < 0) {
    // say *why* there is no usable header, most specific first
    for (let at = MULTIBOOT_SEARCH_BYTES - 8; at + 12 <= size; at += 4) {
      if (u32(at) === MULTIBOOT_HEADER_MAGIC && valid(at))
        return Result.fail(
          loaderError(
            "header-too-far",
            `the Multiboot header at file offset ${hex(at)} does not lie within the first ${MULTIBOOT_SEARCH_BYTES} bytes of the image (spec 3.1.1)`
          )
        )
    }
    if (badChecksum >= 0) {
      const [flags, checksum] = [u32(badChecksum + 4), u32(badChecksum + 8)]
      const expected = (2 ** 32 - ((MULTIBOOT_HEADER_MAGIC + flags) % 2 ** 32)) % 2 ** 32
      return Result.fail(
        loaderError(
          "bad-checksum",
          `the Multiboot header at file offset ${hex(badChecksum)} has flags ${hex(flags)} and checksum ${hex(checksum)}, but magic + flags + checksum must be 0 mod 2^32 (checksum ${hex(expected)}) (spec 3.1.2)`
        )
      )
    }
    if (cutShort >= 0)
      return Result.fail(
        loaderError(
          "truncated",
          `the file ends at ${hex(size)}, inside the Multiboot header whose magic is at offset ${hex(cutShort)}`
        )
      )
    return Result.fail(
      loaderError(
        "not-multiboot",
        `no Multiboot header (magic ${hex(MULTIBOOT_HEADER_MAGIC)}, 32-bit aligned) in the first ${Math.min(size, MULTIBOOT_SEARCH_BYTES)} bytes of the ${hex(size)}-byte image`
      )
    )
  }

  const flags = u32(found + 4)
  const unmet = flags & REQUIRED_MASK & ~SUPPORTED_REQUIRED
  if (unmet !== 0) {
    const bits = Array.from({ length: 16 }, (_, bit) => bit).filter((bit) => (unmet & (1 << bit)) !== 0)
    return Result.fail(
      loaderError(
        "unsupported-flags",
        `the Multiboot header (offset ${hex(found)}) has flags ${hex(flags)}, requiring ${bits.map(requiredBitName).join(", ")}; this loader meets only bits 0 and 1 (spec 3.1.2: it must refuse)`
      )
    )
  }

  let aout: AoutKludgeAddresses | undefined
  if ((flags & HeaderFlag.AoutKludge) !== 0) {
    const end = found + 32
    if (end > MULTIBOOT_SEARCH_BYTES)
      return Result.fail(
        loaderError(
          "header-too-far",
          `the Multiboot header at file offset ${hex(found)} has address fields (flags bit 16) that end at ${hex(end)}, past the first ${MULTIBOOT_SEARCH_BYTES} bytes (spec 3.1.1)`
        )
      )
    if (end > size)
      return Result.fail(
        loaderError(
          "truncated",
          `the file ends at ${hex(size)}, inside the Multiboot header's address fields (flags bit 16, offsets ${hex(found + 12)}..${hex(end)})`
        )
      )
    aout = {
      headerAddr: u32(found + 12),
      loadAddr: u32(found + 16),
      loadEndAddr: u32(found + 20),
      bssEndAddr: u32(found + 24),
      entryAddr: u32(found + 28)
    }
  }
  return Result.succeed({ offset: found, flags, checksum: u32(found + 8), aout })
}
