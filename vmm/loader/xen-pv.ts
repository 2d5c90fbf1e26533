/**
 * The domain builder of `pv` mode: loads a paravirtualized ELF32 kernel the
 * way Xen's builder (libxc xc_dom_*, libelf) does for an x86-32 guest, with
 * the start-of-day layout of xen/include/public/xen.h ("start of day
 * memory layout") for an auto-translated guest. docs/pv.md is the guest's
 * view of it:
 *
 *   the image's PT_LOAD segments at p_vaddr - VIRT_BASE (VIRT_BASE = 0)
 *   the hypercall page filled (x86-32: `mov eax, nr; int 0x82; ret` per
 *     32-byte slot; slot 23, iret: `push eax; mov eax, 23; int 0x82`)
 *   after the image, page-aligned: mfn_list (the identity P2M), start_info,
 *     shared_info, the console ring page, the xenstore ring page, the grant
 *     table's frame, the page directory and one page
 *     table per 4 MiB of RAM (all RAM mapped virtual = pseudo-physical,
 *     supervisor-only, page-table frames read-only), one page of stack
 *   registers: EIP = entry, ESI = start_info, ESP = the stack's top, the
 *     flat ring-1 selectors, CR0.PG = 1, CR3 = the page directory
 *
 * An image is PV when it has ELF notes named "Xen" (elfnote.h, read from
 * PT_NOTE segments); `readXenNotes` says so for the boot planner, which
 * refuses a PV image outside `pv` mode and any other image in it.
 */
import { Result } from "effect"
import type { CpuState, SegmentState } from "../../hw/cpu/state.ts"
import { resetGuestRegisters } from "../../hw/cpu/vmx/vmcs.ts"
import {
  FLAT_RING1_CS,
  FLAT_RING1_DS,
  HYPERCALL_STUB,
  HYPERCALL_VECTOR,
  Hypercall,
  StartInfo,
  XenElfNote
} from "../engines/pv/abi.ts"
import { flatSegment } from "../engines/pv/segments.ts"
import { loadSegments, PT, parseElf32 } from "./elf32.ts"
import { hex, type LoaderError, loaderError, range } from "./errors.ts"

const PAGE = 4096
const MIB = 1024 * 1024
const PTE_P = 1
const PTE_RW = 2
const PTE_US = 4

/** The Xen ELF notes of an image, as far as fibervisor reads them. */
export interface XenNotes {
  readonly entry?: number
  readonly hypercallPage?: number
  readonly virtBase?: number
  readonly paddrOffset?: number
  readonly xenVersion?: string
  readonly guestOs?: string
  readonly paeMode?: string
  readonly features?: string
}

/** What the hypervisor needs to know of a built PV domain (pseudo-physical addresses). */
export interface PvBootInfo {
  readonly nrPages: number
  readonly startInfo: number
  readonly sharedInfo: number
  readonly consolePage: number
  readonly consoleEvtchn: number
  /** The xenstore ring page (io/xs_wire.h xenstore_domain_interface) and its event channel. */
  readonly storePage: number
  readonly storeEvtchn: number
  /** The grant table's frames (grant_table.h v1 entries), given to the guest by GNTTABOP_setup_table. */
  readonly grantFrames: ReadonlyArray<number>
  readonly hypercallPage: number
  readonly guestOs: string
}

export interface XenPvLoad {
  readonly writes: ReadonlyArray<{ readonly address: number; readonly bytes: Uint8Array }>
  readonly registers: CpuState
  readonly pv: PvBootInfo
}

/** The console ring's and xenstore's event channels, allocated by the builder (as the toolstack does). */
export const CONSOLE_EVTCHN = 1
export const STORE_EVTCHN = 2
/** Frames of grant table per domain (512 v1 entries each). */
export const GRANT_FRAMES = 1

const fail = (message: string): Result.Result<never, LoaderError> => Result.fail(loaderError("bad-xen-pv", message))

const u32 = (b: Uint8Array, at: number): number =>
  (b[at]! | (b[at + 1]! << 8) | (b[at + 2]! << 16) | (b[at + 3]! << 24)) >>> 0

const text = (b: Uint8Array): string => {
  const end = b.indexOf(0)
  return new TextDecoder().decode(end < 0 ? b : b.subarray(0, end))
}

/** The notes fibervisor reads: a number (4-byte desc) or a NUL-terminated string, by type. */
const NUMBER_NOTES: ReadonlyMap<number, keyof XenNotes> = new Map([
  [XenElfNote.entry, "entry"],
  [XenElfNote.hypercall_page, "hypercallPage"],
  [XenElfNote.virt_base, "virtBase"],
  [XenElfNote.paddr_offset, "paddrOffset"]
])
const TEXT_NOTES: ReadonlyMap<number, keyof XenNotes> = new Map([
  [XenElfNote.xen_version, "xenVersion"],
  [XenElfNote.guest_os, "guestOs"],
  [XenElfNote.pae_mode, "paeMode"],
  [XenElfNote.features, "features"]
])

/**
 * The Xen notes of `image` (elfnote.h): undefined when it is not an ELF32
 * i386 executable or has no note named "Xen". Malformed notes end the scan
 * of their segment (what was read before them counts).
 */
export function readXenNotes(image: Uint8Array): XenNotes | undefined {
  const elf = parseElf32(image)
  if (Result.isFailure(elf)) return undefined
  const notes: Record<string, number | string> = {}
  let found = false
  for (const ph of elf.success.programHeaders) {
    if (ph.type !== PT.NOTE) continue
    const end = Math.min(image.length, ph.offset + ph.filesz)
    let at = ph.offset
    while (at + 12 <= end) {
      const namesz = u32(image, at)
      const descsz = u32(image, at + 4)
      const type = u32(image, at + 8)
      const nameAt = at + 12
      const descAt = nameAt + Math.ceil(namesz / 4) * 4
      const next = descAt + Math.ceil(descsz / 4) * 4
      if (namesz > end || descsz > end || next > end) break
      if (text(image.subarray(nameAt, nameAt + namesz)) === "Xen") {
        found = true
        const desc = image.subarray(descAt, descAt + descsz)
        const number = descsz >= 4 ? u32(desc, 0) : undefined
        const numeric = NUMBER_NOTES.get(type)
        const textual = TEXT_NOTES.get(type)
        if (numeric !== undefined && number !== undefined) notes[numeric] = number
        else if (textual !== undefined) notes[textual] = text(desc)
      }
      at = next
    }
  }
  return found ? (notes as XenNotes) : undefined
}

/** The hypercall page's bytes (Xen's x86-32 hypercall_page_initialise_ring1_kernel). */
export function hypercallPage(): Uint8Array {
  const page = new Uint8Array(PAGE)
  for (let nr = 0; nr < PAGE / HYPERCALL_STUB; nr++) {
    let at = nr * HYPERCALL_STUB
    if (nr === Hypercall.iret) page[at++] = 0x50 // push eax
    page.set([0xb8, nr, 0, 0, 0, 0xcd, HYPERCALL_VECTOR], at) // mov eax, nr; int 0x82
    if (nr !== Hypercall.iret) page[at + 7] = 0xc3 // ret
  }
  return page
}

/** The start-of-day registers (docs/pv.md "Start of day"). */
function startOfDay(entry: number, startInfo: number, stackTop: number, pageDirectory: number): CpuState {
  const s = resetGuestRegisters()
  const data = (): SegmentState => flatSegment(FLAT_RING1_DS)!
  s.eip = entry >>> 0
  s.esi = startInfo >>> 0
  s.esp = stackTop >>> 0
  s.eflags = 0x202
  s.cs = flatSegment(FLAT_RING1_CS)!
  s.ss = data()
  s.ds = data()
  s.es = data()
  s.fs = data()
  s.gs = data()
  s.cr0 = 0x80010033 // PG | WP | NE | ET | MP | PE
  s.cr3 = pageDirectory >>> 0
  s.a20 = true
  s.halted = false
  return s
}

/** Build a PV domain of `ramBytes` from `image` (see the header); every refusal says what is wrong. */
export function planXenPvLoad(
  image: Uint8Array,
  options: { readonly ramBytes: number; readonly cmdline: string }
): Result.Result<XenPvLoad, LoaderError> {
  const { ramBytes, cmdline } = options
  if (!Number.isInteger(ramBytes) || ramBytes % (4 * MIB) !== 0 || ramBytes < 4 * MIB || ramBytes > 0xc0000000)
    return Result.fail(
      loaderError(
        "bad-options",
        `a PV domain's RAM must be a multiple of 4 MiB from 4 MiB to 3 GiB, not ${Number.isInteger(ramBytes / MIB) ? `${ramBytes / MIB} MiB` : `${ramBytes} bytes`}`
      )
    )
  if (cmdline.includes("\0"))
    return Result.fail(loaderError("bad-options", "the command line contains a NUL character"))
  const elf = parseElf32(image)
  if (Result.isFailure(elf)) return Result.fail(elf.failure)
  const notes = readXenNotes(image)
  if (notes === undefined)
    return Result.fail(
      loaderError(
        "not-xen-pv",
        "not a paravirtualized kernel: it has no Xen ELF notes (elfnote.h), so it was not built for `pv` mode; boot it with --mode hw, bt or emu"
      )
    )
  const problems: Array<string> = []
  if (notes.xenVersion !== "xen-3.0")
    problems.push(`XEN_ELFNOTE_XEN_VERSION is ${JSON.stringify(notes.xenVersion ?? null)}, fibervisor offers "xen-3.0"`)
  if ((notes.virtBase ?? 0) !== 0)
    problems.push(`XEN_ELFNOTE_VIRT_BASE is ${hex(notes.virtBase!)}: fibervisor builds domains with VIRT_BASE 0 only`)
  if ((notes.paddrOffset ?? 0) !== 0) problems.push(`XEN_ELFNOTE_PADDR_OFFSET is ${hex(notes.paddrOffset!)}, not 0`)
  if (notes.paeMode !== undefined && notes.paeMode !== "no")
    problems.push(`XEN_ELFNOTE_PAE_MODE is "${notes.paeMode}": fibervisor runs non-PAE (2-level) PV guests only`)
  const features = (notes.features ?? "").split("|")
  if (!features.includes("auto_translated_physmap"))
    problems.push(
      "XEN_ELFNOTE_FEATURES does not list auto_translated_physmap: fibervisor's PV guests keep pseudo-physical frame numbers in their page tables"
    )
  if (notes.hypercallPage === undefined) problems.push("no XEN_ELFNOTE_HYPERCALL_PAGE")
  else if (notes.hypercallPage % PAGE !== 0)
    problems.push(`the hypercall page ${hex(notes.hypercallPage)} is not page-aligned`)
  const segments = loadSegments(elf.success)
  if (segments.length === 0) problems.push("no PT_LOAD segment to load")
  for (const s of segments) {
    if (s.vaddr + s.memsz > ramBytes)
      problems.push(
        `segment ${s.index} at ${range(s.vaddr, s.vaddr + s.memsz)} is outside the ${ramBytes / MIB} MiB of RAM`
      )
    for (const o of segments)
      if (o.index < s.index && o.vaddr < s.vaddr + s.memsz && s.vaddr < o.vaddr + o.memsz)
        problems.push(`segments ${o.index} and ${s.index} overlap`)
  }
  const entry = notes.entry ?? elf.success.header.entry
  const inside = (address: number, length: number) =>
    segments.some((s) => address >= s.vaddr && address + length <= s.vaddr + s.filesz)
  if (!segments.some((s) => entry >= s.vaddr && entry < s.vaddr + s.memsz))
    problems.push(`the entry point ${hex(entry)} is not inside a loaded segment`)
  if (notes.hypercallPage !== undefined && notes.hypercallPage % PAGE === 0 && !inside(notes.hypercallPage, PAGE))
    problems.push(`the hypercall page ${hex(notes.hypercallPage)} is not 4 KiB of the image's loaded bytes`)
  if (problems.length > 0) return fail(`a Xen PV kernel fibervisor cannot run:\n  ${problems.join("\n  ")}`)

  // the image, with the hypercall page filled in
  const writes: Array<{ address: number; bytes: Uint8Array }> = []
  const page = hypercallPage()
  for (const s of segments) {
    const bytes = new Uint8Array(s.memsz)
    bytes.set(image.subarray(s.offset, s.offset + s.filesz))
    const hc = notes.hypercallPage!
    if (hc >= s.vaddr && hc < s.vaddr + s.memsz) bytes.set(page, hc - s.vaddr)
    writes.push({ address: s.vaddr, bytes })
  }

  // the bootstrap region after the image
  const nrPages = ramBytes / PAGE
  const imageEnd = segments.reduce((high, s) => Math.max(high, s.vaddr + s.memsz), 0)
  const base = Math.ceil(imageEnd / PAGE) * PAGE
  const mfnListPages = Math.ceil((nrPages * 4) / PAGE)
  const nrPts = ramBytes / (4 * MIB)
  const mfnList = base
  const startInfo = mfnList + mfnListPages * PAGE
  const sharedInfo = startInfo + PAGE
  const consolePage = sharedInfo + PAGE
  const storePage = consolePage + PAGE
  const grantTable = storePage + PAGE
  const pageDirectory = grantTable + GRANT_FRAMES * PAGE
  const firstPt = pageDirectory + PAGE
  const stack = firstPt + nrPts * PAGE
  const end = stack + PAGE
  if (end > ramBytes)
    return fail(
      `the image ends at ${hex(imageEnd)} and its start-of-day region (start_info, page tables, stack) needs ${range(base, end)}, past the ${ramBytes / MIB} MiB of RAM`
    )
  const region = new Uint8Array(end - base)
  const dv = new DataView(region.buffer)
  const put = (address: number, value: number) => dv.setUint32(address - base, value >>> 0, true)
  for (let pfn = 0; pfn < nrPages; pfn++) put(mfnList + pfn * 4, pfn)
  region.set(new TextEncoder().encode("xen-3.0-x86_32"), startInfo - base + StartInfo.magic)
  put(startInfo + StartInfo.nr_pages, nrPages)
  put(startInfo + StartInfo.shared_info, sharedInfo)
  put(startInfo + StartInfo.console_mfn, consolePage / PAGE)
  put(startInfo + StartInfo.console_evtchn, CONSOLE_EVTCHN)
  put(startInfo + StartInfo.store_mfn, storePage / PAGE)
  put(startInfo + StartInfo.store_evtchn, STORE_EVTCHN)
  put(startInfo + StartInfo.pt_base, pageDirectory)
  put(startInfo + StartInfo.nr_pt_frames, 1 + nrPts)
  put(startInfo + StartInfo.mfn_list, mfnList)
  const line = new TextEncoder().encode(cmdline).subarray(0, StartInfo.cmd_line_size - 1)
  region.set(line, startInfo - base + StartInfo.cmd_line)
  // events masked until the guest is ready for them
  region[sharedInfo - base + 1] = 1
  const ptFrames = new Set<number>([pageDirectory / PAGE])
  for (let i = 0; i < nrPts; i++) {
    ptFrames.add(firstPt / PAGE + i)
    put(pageDirectory + i * 4, (firstPt + i * PAGE) | PTE_P | PTE_RW | PTE_US)
  }
  for (let pfn = 0; pfn < nrPages; pfn++)
    put(firstPt + pfn * 4, (pfn * PAGE) | PTE_P | (ptFrames.has(pfn) ? 0 : PTE_RW))
  writes.push({ address: base, bytes: region })
  return Result.succeed({
    writes,
    registers: startOfDay(entry, startInfo, end, pageDirectory),
    pv: {
      nrPages,
      startInfo,
      sharedInfo,
      consolePage,
      consoleEvtchn: CONSOLE_EVTCHN,
      storePage,
      storeEvtchn: STORE_EVTCHN,
      grantFrames: Array.from({ length: GRANT_FRAMES }, (_, i) => grantTable / PAGE + i),
      hypercallPage: notes.hypercallPage!,
      guestOs: notes.guestOs ?? "a PV guest"
    }
  })
}
