/**
 * The Multiboot v1 loader: what QEMU's `-kernel` does for a Multiboot image
 * (hw/i386/multiboot.c plus its option ROM pc-bios/optionrom/multiboot.S),
 * as a pure function from image bytes to a load plan (GNU "Multiboot
 * Specification version 0.6.96": 3.1 OS image format, 3.2 machine state,
 * 3.3 boot information format).
 *
 *   planMultibootLoad(image, { ramBytes, cmdline, modules })
 *     1. options           RAM size and strings are sane           bad-options
 *     2. header            multiboot-header.ts (3.1.1, 3.1.2)        not-multiboot, bad-checksum, ...
 *     3. kernel            kernel-image.ts: a.out kludge (3.1.3)     bad-header-addresses, not-elf32, ...
 *                          when flags bit 16, else ELF PT_LOAD
 *     4. boot information  boot-info.ts (3.3), at 0x9000..          boot-info-too-large
 *     5. placement         every segment inside RAM, no two          segment-outside-ram, overlap,
 *                          overlapping, none on the boot info,       overlaps-boot-info,
 *                          the entry inside loaded file bytes        entry-outside-image
 *     6. modules           page-aligned after the kernel (3.3)       modules-outside-ram
 *     7. machine state     machine-state.ts (3.2)
 *   applyLoad(load, write)  performs the plan through the VMM's own
 *                           guest-physical writer
 *
 * The plan is data: guest-physical writes (bytes copied out of the image, so
 * the plan owns them), ranges to zero (bss), the entry point, the registers
 * and a description of the boot information. The loader never assumes how
 * guest memory is backed, never throws on bad input, and checks everything
 * before the first byte is written, so a refused image changes nothing.
 *
 * QEMU compatibility: modules are always page-aligned (QEMU does so whatever
 * flags bit 0 says) and start at the first page boundary after the kernel's
 * highest byte; QEMU puts its module list and command lines between the
 * kernel and the modules, here they live in the low boot-info area, so
 * modules start one or more pages lower than under QEMU. QEMU's kernel
 * command line is "<kernel file name> <-append>"; pass that whole string as
 * `cmdline` to reproduce it. QEMU checks neither RAM bounds, overlaps nor the
 * entry point (a bad image boots into garbage); these are refusals here.
 */
import { Result } from "effect"
import type { CpuState } from "../../hw/cpu/state.ts"
import {
  BOOT_DEVICE,
  BOOT_INFO_BASE,
  BOOT_INFO_LIMIT,
  BOOT_LOADER_NAME,
  cString,
  encodeBootInfo,
  GDT_ADDRESS,
  GDT_ENTRIES,
  INFO_FLAGS,
  layoutBootInfo,
  MBI_ADDRESS,
  MEM_LOWER_KIB,
  type MemoryMapEntry,
  MMAP_ADDRESS,
  MMAP_ENTRY_SIZE,
  MODULE_LIST_ADDRESS,
  memoryMap
} from "./boot-info.ts"
import { hex, type LoaderError, loaderError, range } from "./errors.ts"
import { type KernelImage, type KernelSegment, kernelFromAoutKludge, kernelFromElf } from "./kernel-image.ts"
import { multibootMachineState } from "./machine-state.ts"
import { findMultibootHeader, HeaderFlag } from "./multiboot-header.ts"

export const PAGE_SIZE = 4096
/** The reserved top KiB of conventional memory, and where RAM resumes after the PC's hole (boot-info.ts map). */
const EBDA_START = 0x9fc00
const HIGH_MEMORY = 0x100000
/** Smallest guest RAM: the boot information below 1 MiB and at least 1 MiB above it. */
export const MIN_RAM_BYTES = 2 << 20
/** Largest guest RAM: below the 32-bit PCI/APIC hole, as QEMU's pc machine's low memory (3.5 GiB). */
export const MAX_RAM_BYTES = 0xe0000000

export interface MultibootModule {
  readonly bytes: Uint8Array
  /** The module's string (3.3); QEMU passes "<file name> <arguments>". */
  readonly cmdline: string
}

export interface MultibootOptions {
  /** Guest RAM size: [0, ramBytes) is RAM. A multiple of 4 KiB, 2 MiB to 3.5 GiB. */
  readonly ramBytes: number
  /** The kernel command line (default ""). */
  readonly cmdline?: string
  readonly modules?: ReadonlyArray<MultibootModule>
}

export interface GuestWrite {
  readonly address: number
  readonly bytes: Uint8Array
}

export interface GuestZero {
  readonly address: number
  readonly length: number
}

export interface MultibootInfo {
  /** Guest-physical address of the information structure: EBX at entry. */
  readonly address: number
  readonly flags: number
  readonly memLower: number
  readonly memUpper: number
  readonly bootDevice: number
  readonly cmdline: { readonly address: number; readonly value: string }
  readonly bootLoaderName: { readonly address: number; readonly value: string }
  readonly mmap: { readonly address: number; readonly length: number; readonly entries: ReadonlyArray<MemoryMapEntry> }
  readonly mods: { readonly address: number; readonly count: number }
  readonly gdt: { readonly base: number; readonly limit: number }
  /** The whole low area the loader writes: [start, end). */
  readonly area: { readonly start: number; readonly end: number }
}

export interface MultibootLoad {
  readonly format: KernelImage["format"]
  /** Where the header was and what it asked for. */
  readonly header: { readonly offset: number; readonly flags: number }
  /** Guest-physical writes: kernel segments, modules, the boot information block. Disjoint. */
  readonly writes: ReadonlyArray<GuestWrite>
  /** Guest-physical ranges to zero (bss): disjoint from each other and from `writes`. */
  readonly zero: ReadonlyArray<GuestZero>
  readonly entry: number
  readonly registers: CpuState
  readonly kernel: {
    /** Lowest and one-past-highest guest-physical byte of the kernel. */
    readonly start: number
    readonly end: number
    readonly segments: ReadonlyArray<{
      readonly source: string
      readonly address: number
      readonly fileBytes: number
      readonly memBytes: number
    }>
  }
  readonly modules: ReadonlyArray<{ readonly start: number; readonly end: number; readonly cmdline: string }>
  readonly info: MultibootInfo
}

const pageAlign = (n: number): number => Math.ceil(n / PAGE_SIZE) * PAGE_SIZE

/** A plain copy (not `slice()`: on a Node Buffer that returns a view). */
const copy = (bytes: Uint8Array): Uint8Array => new Uint8Array(bytes)

/** Plan the load of a Multiboot image into a VM with `options.ramBytes` of RAM. See the header. */
export function planMultibootLoad(
  image: Uint8Array,
  options: MultibootOptions
): Result.Result<MultibootLoad, LoaderError> {
  // 1. options
  const { ramBytes } = options
  const cmdline = options.cmdline ?? ""
  const modules = options.modules ?? []
  if (!Number.isInteger(ramBytes) || ramBytes % PAGE_SIZE !== 0 || ramBytes < MIN_RAM_BYTES || ramBytes > MAX_RAM_BYTES)
    return fail("bad-options", `ramBytes ${ramBytes} is not a multiple of 4 KiB from 2 MiB to 3.5 GiB`)
  const strings = [{ name: "the kernel command line", value: cmdline }].concat(
    modules.map((m, i) => ({ name: `module ${i}'s command line`, value: m.cmdline }))
  )
  for (const { name, value } of strings)
    if (value.includes("\0")) return fail("bad-options", `${name} contains a NUL character; strings are C strings`)

  // 2. header, 3. kernel
  const header = findMultibootHeader(image)
  if (Result.isFailure(header)) return Result.fail(header.failure)
  const kernel =
    (header.success.flags & HeaderFlag.AoutKludge) !== 0
      ? kernelFromAoutKludge(image, header.success)
      : kernelFromElf(image, header.success)
  if (Result.isFailure(kernel)) return Result.fail(kernel.failure)
  const { segments, entry } = kernel.success

  // 4. the boot information's layout (its bytes come in 7., once the modules have addresses)
  const cmdlineBytes = cString(cmdline)
  const moduleCmdlines = modules.map((m) => cString(m.cmdline))
  const layout = layoutBootInfo(cmdlineBytes, moduleCmdlines)
  if (layout.end > BOOT_INFO_LIMIT)
    return fail(
      "boot-info-too-large",
      `the boot information (module list, command lines, boot loader name) needs ${range(BOOT_INFO_BASE, layout.end)}, past ${hex(BOOT_INFO_LIMIT)}; shorten the command lines or pass fewer modules`
    )

  // 5. placement
  const placement = checkPlacement(segments, entry, ramBytes, layout.end)
  if (placement !== undefined) return Result.fail(placement)
  const kernelStart = segments.reduce((low, s) => Math.min(low, s.address), 2 ** 32)
  const kernelEnd = segments.reduce((high, s) => Math.max(high, s.address + s.memsz), 0)

  // 6. modules, page-aligned after the kernel; a kernel below 1 MiB has them step over the boot information
  //    and the EBDA / VGA / BIOS range, which the memory map does not offer as RAM
  const avoid = [
    [BOOT_INFO_BASE, layout.end],
    [EBDA_START, HIGH_MEMORY]
  ] as const
  const placed: Array<{ start: number; end: number; cmdline: Uint8Array }> = []
  let cursor = kernelEnd
  for (const [i, m] of modules.entries()) {
    let start = pageAlign(cursor)
    for (const [low, high] of avoid)
      if (start < high && start + Math.max(m.bytes.length, 1) > low) start = pageAlign(high)
    const end = start + m.bytes.length
    if (end > ramBytes)
      return fail(
        "modules-outside-ram",
        `module ${i} (${hex(m.bytes.length)} bytes) would load at ${range(start, end)}, past the end of guest RAM ${hex(ramBytes)}`
      )
    placed.push({ start, end, cmdline: moduleCmdlines[i]! })
    cursor = end
  }

  // 7. the writes, the zeroing and the machine state
  const writes: Array<GuestWrite> = []
  const zero: Array<GuestZero> = []
  for (const s of segments) {
    if (s.bytes.length > 0) writes.push({ address: s.address, bytes: copy(s.bytes) })
    if (s.memsz > s.bytes.length) zero.push({ address: s.address + s.bytes.length, length: s.memsz - s.bytes.length })
  }
  modules.forEach((m, i) => {
    if (m.bytes.length > 0) writes.push({ address: placed[i]!.start, bytes: copy(m.bytes) })
  })
  writes.push({ address: BOOT_INFO_BASE, bytes: encodeBootInfo(layout, ramBytes, cmdlineBytes, placed) })

  const map = memoryMap(ramBytes)
  return Result.succeed({
    format: kernel.success.format,
    header: { offset: header.success.offset, flags: header.success.flags },
    writes,
    zero,
    entry,
    registers: multibootMachineState(entry, MBI_ADDRESS),
    kernel: {
      start: kernelStart,
      end: kernelEnd,
      segments: segments.map((s) => ({
        source: s.source,
        address: s.address,
        fileBytes: s.bytes.length,
        memBytes: s.memsz
      }))
    },
    modules: placed.map((p, i) => ({ start: p.start, end: p.end, cmdline: modules[i]!.cmdline })),
    info: {
      address: MBI_ADDRESS,
      flags: INFO_FLAGS,
      memLower: MEM_LOWER_KIB,
      memUpper: Math.floor((ramBytes - 0x100000) / 1024),
      bootDevice: BOOT_DEVICE,
      cmdline: { address: layout.cmdline, value: cmdline },
      bootLoaderName: { address: layout.bootLoaderName, value: BOOT_LOADER_NAME },
      mmap: { address: MMAP_ADDRESS, length: map.length * MMAP_ENTRY_SIZE, entries: map },
      mods: { address: MODULE_LIST_ADDRESS, count: modules.length },
      gdt: { base: GDT_ADDRESS, limit: GDT_ENTRIES * 8 - 1 },
      area: { start: BOOT_INFO_BASE, end: layout.end }
    }
  })
}

/** Step 5 of the header: RAM bounds, overlaps, the boot-info area, the entry point. */
function checkPlacement(
  segments: ReadonlyArray<KernelSegment>,
  entry: number,
  ramBytes: number,
  bootInfoEnd: number
): LoaderError | undefined {
  const span = (s: KernelSegment) => range(s.address, s.address + s.memsz)
  for (const s of segments) {
    if (s.address + s.memsz > ramBytes)
      return loaderError(
        "segment-outside-ram",
        `${s.source} loads ${span(s)} (${hex(s.memsz)} bytes), but guest RAM is ${range(0, ramBytes)}`
      )
  }
  const sorted = [...segments].sort((a, b) => a.address - b.address)
  for (let i = 1; i < sorted.length; i++) {
    const [a, b] = [sorted[i - 1]!, sorted[i]!]
    if (b.address < a.address + a.memsz)
      return loaderError("overlap", `${a.source} ${span(a)} overlaps ${b.source} ${span(b)}`)
  }
  for (const s of segments) {
    if (s.address < bootInfoEnd && s.address + s.memsz > BOOT_INFO_BASE)
      return loaderError(
        "overlaps-boot-info",
        `${s.source} loads ${span(s)}, over the boot information the loader puts at ${range(BOOT_INFO_BASE, bootInfoEnd)}`
      )
  }
  if (!segments.some((s) => entry >= s.address && entry < s.address + s.bytes.length)) {
    const shown = segments.slice(0, 8).map((s) => range(s.address, s.address + s.bytes.length))
    const loaded = shown.join(", ") + (segments.length > shown.length ? `, ... ${segments.length} in all` : "")
    return loaderError(
      "entry-outside-image",
      `the entry point ${hex(entry)} is not inside the bytes loaded from the image (${loaded})`
    )
  }
  return undefined
}

const fail = (reason: Parameters<typeof loaderError>[0], message: string): Result.Result<never, LoaderError> =>
  Result.fail(loaderError(reason, message))

/** A reused block of zeros for `applyLoad` (bss may be megabytes: write it in chunks). */
const ZERO_CHUNK = new Uint8Array(64 * 1024)

/**
 * Carry out a plan through `write(address, bytes)`, the VMM's guest-physical
 * writer (it must copy `bytes` and not modify them: the zero chunk is reused). Zeroing comes
 * first, then the writes; the two never overlap, so the order is only a
 * courtesy to a writer that logs.
 */
export function applyLoad(load: MultibootLoad, write: (address: number, bytes: Uint8Array) => void): void {
  for (const z of load.zero) {
    for (let done = 0; done < z.length; done += ZERO_CHUNK.length)
      write(z.address + done, ZERO_CHUNK.subarray(0, Math.min(ZERO_CHUNK.length, z.length - done)))
  }
  for (const w of load.writes) write(w.address, w.bytes)
}
