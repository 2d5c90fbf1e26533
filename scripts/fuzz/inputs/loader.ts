/**
 * Malformed kernel images for the Multiboot loader (fuzz suite `inputs`, and
 * test/vmm/loader/robustness.property.test.ts, which runs the same
 * generators on its nasm-built reader images). The loader never throws,
 * whatever the bytes (DESIGN.md "Errors": a guest image cannot crash the
 * hypervisor):
 *
 *   - `mutationPlan` / `applyMutations`: random byte and 32-bit word edits
 *     (boundary values), aimed at the ELF header, the program headers and the
 *     Multiboot header, the checksum sometimes repaired so the edit reaches
 *     the loader's later rules, and truncations, of a real image;
 *   - `soupFields` / `soupImage`: random byte soup around a valid Multiboot
 *     header with random flags and a.out kludge fields (address arithmetic);
 *   - `elfLayout` / `layoutImage`: a well-formed ELF32 with 1..4 PT_LOAD
 *     segments and at most one deliberate fault (two segments overlapping,
 *     p_paddr outside RAM, a p_memsz that wraps past 4 GiB or is larger than
 *     RAM, p_filesz > p_memsz, the entry outside the loaded bytes, the file
 *     cut short); the fault determines the reason exactly, and a layout
 *     without one must load;
 *
 * with random RAM sizes, command lines and modules (`loaderOptions`).
 * `loaderOutcome` checks that each run either fails with a LoaderError whose
 * reason is one of the documented ones and whose message starts with it, or
 * returns a plan that keeps every promise (`checkPlan`): all writes and zero
 * ranges inside RAM and pairwise disjoint, the entry inside bytes loaded
 * from the image, the registers of spec 3.2, and applyLoad writing exactly
 * the planned ranges. Checks throw a plain Error naming what broke.
 *
 * The suite's real images are committed guests (images/hello, images/hostile)
 * and hello as an a.out-kludge image (`aoutFromElf`), so no assembler is
 * needed to fuzz.
 */
import { readFileSync } from "node:fs"
import { Result } from "effect"
import fc from "fast-check"
import { LoaderError, LoaderErrorReason } from "../../../vmm/loader/errors.ts"
import {
  applyLoad,
  type MultibootLoad,
  type MultibootOptions,
  planMultibootLoad
} from "../../../vmm/loader/multiboot.ts"

export const MAGIC = 0x1badb002
const FOUR_GIB = 2 ** 32
const reasons = new Set<string>(LoaderErrorReason.literals)

const must = (condition: boolean, message: string): void => {
  if (!condition) throw new Error(message)
}
const hex = (n: number) => `0x${n.toString(16)}`
const checksumFor = (flags: number) => (FOUR_GIB - ((MAGIC + flags) % FOUR_GIB)) % FOUR_GIB

export const boundary = fc.constantFrom(
  0,
  1,
  4,
  0x1000,
  0x9000,
  0x9500,
  0xa0000,
  0x100000,
  0x101000,
  0x7ff000,
  0x7fffffff,
  0x80000000,
  0xfffff000,
  0xffffffff,
  MAGIC
)
export const u32 = fc.oneof(boundary, fc.integer({ min: 0, max: 0xffffffff }))

export type LoaderOptions = MultibootOptions & {
  readonly ramBytes: number
  readonly cmdline: string
  readonly modules: ReadonlyArray<{ readonly bytes: Uint8Array; readonly cmdline: string }>
}

export const loaderOptions: fc.Arbitrary<LoaderOptions> = fc.record({
  ramBytes: fc.constantFrom(2 << 20, 4 << 20, 8 << 20, 64 << 20),
  cmdline: fc.string({ maxLength: 40 }),
  modules: fc.array(fc.record({ bytes: fc.uint8Array({ maxLength: 64 }), cmdline: fc.string({ maxLength: 8 }) }), {
    maxLength: 3
  })
})

// ---------------------------------------------------------------------------
// the checks

/** Everything a successful plan promises (see the header). */
export function checkPlan(load: MultibootLoad, ramBytes: number): void {
  const ranges = [
    ...load.writes.map((w) => [w.address, w.address + w.bytes.length] as const),
    ...load.zero.map((z) => [z.address, z.address + z.length] as const)
  ].sort((a, b) => a[0] - b[0])
  for (const [start, end] of ranges)
    must(
      start >= 0 && end <= ramBytes,
      `planned range [${hex(start)}, ${hex(end)}) is outside RAM [0, ${hex(ramBytes)})`
    )
  for (let i = 1; i < ranges.length; i++)
    must(
      ranges[i]![0] >= ranges[i - 1]![1],
      `planned ranges [${hex(ranges[i - 1]![0])}, ${hex(ranges[i - 1]![1])}) and [${hex(ranges[i]![0])}, ${hex(ranges[i]![1])}) overlap`
    )
  must(
    load.kernel.segments.some((s) => load.entry >= s.address && load.entry < s.address + s.fileBytes),
    `entry ${hex(load.entry)} is not inside bytes loaded from the image`
  )
  must(load.registers.eip === load.entry, `EIP ${hex(load.registers.eip)} is not the entry ${hex(load.entry)}`)
  must(load.registers.eax === 0x2badb002, `EAX ${hex(load.registers.eax)} is not the Multiboot magic 0x2badb002`)
  must(
    load.registers.ebx === load.info.address,
    `EBX ${hex(load.registers.ebx)} is not the information structure ${hex(load.info.address)}`
  )
  for (const m of load.modules) must(m.start % 4096 === 0, `module at ${hex(m.start)} is not page-aligned`)
  let written = 0
  applyLoad(load, (address, bytes) => {
    must(
      address + bytes.length <= ramBytes,
      `applyLoad wrote [${hex(address)}, ${hex(address + bytes.length)}) past RAM`
    )
    written += bytes.length
  })
  const planned = ranges.reduce((n, [start, end]) => n + end - start, 0)
  must(written === planned, `applyLoad wrote ${written} bytes, the plan has ${planned}`)
}

/**
 * Plan `image`; "ok" (the plan checked by checkPlan) or the reason of the
 * LoaderError. Throws when the loader throws, fails with anything but a
 * LoaderError of a documented reason, or the message does not start with it.
 */
export function loaderOutcome(image: Uint8Array, options: MultibootOptions): "ok" | LoaderErrorReason {
  let result: ReturnType<typeof planMultibootLoad>
  try {
    result = planMultibootLoad(image, options)
  } catch (e) {
    throw new Error(`planMultibootLoad threw: ${e instanceof Error ? `${e.name}: ${e.message}` : String(e)}`)
  }
  if (Result.isSuccess(result)) {
    checkPlan(result.success, options.ramBytes)
    return "ok"
  }
  const e: unknown = result.failure
  must(e instanceof LoaderError, `the loader failed with something other than a LoaderError: ${String(e)}`)
  const error = e as LoaderError
  must(reasons.has(error.reason), `undocumented loader reason ${JSON.stringify(error.reason)}`)
  must(
    error.message.startsWith(`${error.reason}: `),
    `the message does not start with its reason "${error.reason}: ": ${JSON.stringify(error.message)}`
  )
  return error.reason
}

// ---------------------------------------------------------------------------
// mutations of a real image

export interface Mutation {
  readonly kind: "byte" | "word"
  readonly at: number
  readonly value: number
}

export interface MutationPlan {
  readonly edits: ReadonlyArray<Mutation>
  readonly fixChecksum: boolean
  readonly cut: number | null
}

/** Offsets worth hitting: the ELF header and program headers, the Multiboot header, or anywhere. */
const offsetIn = (size: number, hot: ReadonlyArray<readonly [number, number]>) =>
  fc.oneof(
    { weight: 3, arbitrary: fc.constantFrom(...hot).chain(([lo, hi]) => fc.integer({ min: lo, max: hi - 1 })) },
    { weight: 1, arbitrary: fc.integer({ min: 0, max: size - 1 }) }
  )

const mutation = (size: number, hot: ReadonlyArray<readonly [number, number]>): fc.Arbitrary<Mutation> =>
  fc.oneof(
    fc.record({ kind: fc.constant("byte" as const), at: offsetIn(size, hot), value: fc.integer({ min: 0, max: 255 }) }),
    fc.record({ kind: fc.constant("word" as const), at: offsetIn(size - 4, hot).map((o) => o & ~3), value: u32 })
  )

/** 1..6 edits of an image of `size` bytes (mostly inside the `hot` ranges), a checksum repair, maybe a cut. */
export const mutationPlan = (size: number, hot: ReadonlyArray<readonly [number, number]>): fc.Arbitrary<MutationPlan> =>
  fc.record({
    edits: fc.array(mutation(size, hot), { minLength: 1, maxLength: 6 }),
    fixChecksum: fc.boolean(),
    cut: fc.oneof(
      { weight: 3, arbitrary: fc.constant(null) },
      { weight: 1, arbitrary: fc.integer({ min: 0, max: size }) }
    )
  })

/** `base` with `plan` applied (a copy); `headerAt` is where the Multiboot header whose checksum may be repaired is. */
export function applyMutations(base: Uint8Array, headerAt: number, plan: MutationPlan): Uint8Array {
  const image = base.slice()
  const dv = new DataView(image.buffer, image.byteOffset, image.byteLength)
  for (const e of plan.edits) {
    if (e.kind === "byte") image[e.at] = e.value
    else dv.setUint32(e.at, e.value, true)
  }
  if (plan.fixChecksum && dv.getUint32(headerAt, true) === MAGIC)
    dv.setUint32(headerAt + 8, checksumFor(dv.getUint32(headerAt + 4, true)), true)
  return plan.cut === null ? image : image.subarray(0, plan.cut)
}

/** Mutated and truncated copies of `base`. */
export const mutatedImage = (base: Uint8Array, headerAt: number, hot: ReadonlyArray<readonly [number, number]>) =>
  mutationPlan(base.length, hot).map((plan) => applyMutations(base, headerAt, plan))

/** The first 4-aligned Multiboot magic in the first 8 KiB (-1: none). */
export const multibootHeaderOffset = (image: Uint8Array): number => {
  const dv = new DataView(image.buffer, image.byteOffset, image.byteLength)
  for (let at = 0; at + 4 <= Math.min(image.length, 8192); at += 4) if (dv.getUint32(at, true) === MAGIC) return at
  return -1
}

/** The ranges a mutation should aim at in an ELF: its header, its program headers, its Multiboot header. */
export const elfHotRanges = (elf: Uint8Array): Array<readonly [number, number]> => {
  const dv = new DataView(elf.buffer, elf.byteOffset, elf.byteLength)
  const phoff = dv.getUint32(28, true)
  const phnum = dv.getUint16(44, true)
  const header = multibootHeaderOffset(elf)
  return [
    [0, 52],
    [phoff, phoff + phnum * 32],
    [header, header + 32]
  ]
}

// ---------------------------------------------------------------------------
// byte soup around a valid header

export interface SoupFields {
  /** Bytes before the header (a multiple of 4, up to 8400: past the 8 KiB search window too). */
  readonly before: number
  readonly flags: number
  readonly headerAddr: number
  readonly loadAddr: number
  readonly loadEnd: number
  /** bss_end - load_end (mod 2^32); -1: bss_end_addr 0 (no bss). */
  readonly bssSpan: number
  readonly entry: number
  readonly noise: Uint8Array
  readonly tail: number
  readonly size: number
}

export const soupFields: fc.Arbitrary<SoupFields> = fc
  .record({
    before: fc.integer({ min: 0, max: 2100 }).map((n) => n * 4),
    flags: fc.oneof({ weight: 4, arbitrary: fc.constantFrom(0x10000, 0x10001, 0x10002, 0x10003) }, u32),
    loadAddr: u32,
    noise: fc.uint8Array({ maxLength: 512 }),
    tail: fc.integer({ min: 0, max: 64 })
  })
  .chain((r) => {
    const near = (base: number, span: number) => fc.integer({ min: 0, max: span }).map((k) => (base + k) % FOUR_GIB)
    const size = r.before + 32 + r.tail
    // mostly consistent address fields (the header where the text says), sometimes anything
    const headerAddr = fc.oneof({ weight: 3, arbitrary: fc.constant((r.loadAddr + r.before) % FOUR_GIB) }, u32)
    const loadEnd = fc.oneof(fc.constant(0), near(r.loadAddr, size + 16), u32)
    return fc
      .record({
        headerAddr,
        loadEnd,
        bssSpan: fc.oneof(fc.constant(-1), fc.nat(0x20000), u32),
        entry: fc.oneof(near(r.loadAddr, size), u32)
      })
      .map((f) => ({ ...r, ...f, size }))
  })

export function soupImage(f: SoupFields): Uint8Array {
  const image = new Uint8Array(f.size)
  for (let i = 0; i < image.length; i++) image[i] = f.noise.length > 0 ? f.noise[i % f.noise.length]! : 0
  const dv = new DataView(image.buffer)
  const bssEnd =
    f.bssSpan < 0 ? 0 : ((f.loadEnd === 0 ? f.loadAddr + f.size - f.before : f.loadEnd) + f.bssSpan) % FOUR_GIB
  const words = [MAGIC, f.flags, checksumFor(f.flags), f.headerAddr, f.loadAddr, f.loadEnd, bssEnd, f.entry]
  words.forEach((w, i) => {
    dv.setUint32(f.before + i * 4, w >>> 0, true)
  })
  return image
}

// ---------------------------------------------------------------------------
// structured ELF layouts with one deliberate fault

export interface LayoutSegment {
  readonly paddr: number
  readonly vaddr: number
  readonly filesz: number
  readonly memsz: number
  readonly offset: number
  readonly flags: number
}

export type LayoutFault =
  | "none"
  | "overlap"
  | "outside-ram"
  | "huge"
  | "wraps-4g"
  | "filesz-over-memsz"
  | "entry-outside"
  | "truncated"

export interface ElfLayout {
  readonly headerFlags: number
  readonly entry: number
  readonly segments: ReadonlyArray<LayoutSegment>
  readonly fault: LayoutFault
  /** Cut the file to this many bytes (fault "truncated"). */
  readonly cut: number | null
  readonly options: LoaderOptions
}

/** The reason a layout's fault must produce ("ok": none). */
export const expectedOutcome: Record<LayoutFault, "ok" | LoaderErrorReason> = {
  none: "ok",
  overlap: "overlap",
  "outside-ram": "segment-outside-ram",
  huge: "segment-outside-ram",
  "wraps-4g": "bad-elf",
  "filesz-over-memsz": "bad-elf",
  "entry-outside": "entry-outside-image",
  truncated: "truncated"
}

const MB_HEADER_OFFSET = 0xc0 // after the ELF header and up to 4 program headers (52 + 128 = 0xb4)
const PF_X = 1
const PF_W = 2
const PF_R = 4

/** 1..4 clean segments, page-separated from 1 MiB up, within 512 KiB (fits the smallest RAM with modules). */
const cleanSegments = fc
  .array(
    fc.record({
      gap: fc.nat(2),
      filesz: fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 0x2000 })),
      bss: fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 0x8000 })),
      within: fc.nat(0xfff)
    }),
    { minLength: 1, maxLength: 4 }
  )
  .map((specs) => {
    const segments: Array<LayoutSegment> = []
    let cursor = 0x100000
    let fileCursor = 0x1000
    specs.forEach((s, i) => {
      // segment 0 holds the entry: at least one file byte
      const filesz = i === 0 ? Math.max(s.filesz, 16) : s.filesz
      const paddr = cursor + s.gap * 0x1000 + (i === 0 ? 0 : s.within & ~3)
      const offset = fileCursor + (paddr & 0xfff)
      segments.push({
        paddr,
        vaddr: paddr,
        filesz,
        memsz: filesz + s.bss || 1,
        offset,
        flags: i === 0 ? PF_R | PF_X : PF_R | PF_W
      })
      cursor = Math.ceil((paddr + filesz + s.bss + 1) / 0x1000) * 0x1000
      fileCursor = Math.ceil((offset + filesz + 1) / 0x1000) * 0x1000
    })
    return segments
  })

const faultArb = fc.constantFrom<LayoutFault>(
  "none",
  "overlap",
  "outside-ram",
  "huge",
  "wraps-4g",
  "filesz-over-memsz",
  "entry-outside",
  "truncated"
)

const fileEnd = (segments: ReadonlyArray<LayoutSegment>) =>
  segments.reduce((end, s) => Math.max(end, s.offset + s.filesz), MB_HEADER_OFFSET + 12)

export const elfLayout: fc.Arbitrary<ElfLayout> = fc
  .record({
    segments: cleanSegments,
    options: loaderOptions,
    headerFlags: fc.constantFrom(0, 1, 2, 3),
    entryAt: fc.nat(0xffff),
    fault: faultArb,
    pick: fc.nat(),
    amount: fc.nat(),
    big: fc.constantFrom(0x7ff0_0000, 0x8000_0000, 0xe000_0000, 0xf000_0000, 0xffff_f000)
  })
  .map(({ segments, options, headerFlags, entryAt, fault, pick, amount, big }): ElfLayout => {
    const s0 = segments[0]!
    const entry = s0.paddr + (entryAt % s0.filesz)
    const ram = options.ramBytes
    const edited = [...segments]
    const j = pick % segments.length
    const s = edited[j]!
    let chosen = fault
    let cut: number | null = null
    let layoutEntry = entry
    switch (fault) {
      case "overlap": {
        // a later segment's physical address inside its predecessor's [paddr, paddr + memsz)
        if (segments.length < 2) {
          chosen = "none"
          break
        }
        const k = Math.max(1, j)
        const prev = edited[k - 1]!
        edited[k] = { ...edited[k]!, paddr: prev.paddr + (amount % prev.memsz) }
        break
      }
      case "outside-ram": {
        // reaching past the end of RAM, wholly above it, or at the top of the 32-bit space
        const k = Math.floor(amount / 3)
        const paddr = [ram - (k % s.memsz), ram + (k % 0x1000000), FOUR_GIB - s.memsz][amount % 3]!
        edited[j] = { ...s, paddr }
        break
      }
      case "huge":
        // a bss larger than any RAM here, but still inside the 32-bit space
        edited[j] = { ...s, memsz: Math.min(big, FOUR_GIB - Math.max(s.paddr, s.vaddr)) }
        break
      case "wraps-4g":
        edited[j] = { ...s, memsz: FOUR_GIB - s.paddr + 1 + (amount % 0x1000) }
        break
      case "filesz-over-memsz":
        edited[j] = { ...s, filesz: s.memsz + 1 + (amount % 64) }
        break
      case "entry-outside": {
        // below every segment, in segment 0's bss, or past all of them
        const choices = [0, 0x1000, 0xffffffff]
        if (s0.memsz > s0.filesz) choices.push(s0.paddr + s0.filesz)
        layoutEntry = choices[amount % choices.length]!
        break
      }
      case "truncated": {
        const end = fileEnd(segments)
        const from = MB_HEADER_OFFSET + 12
        cut = end > from ? from + (amount % (end - from)) : null
        if (cut === null) chosen = "none"
        break
      }
    }
    // a faulty segment keeps its file bytes in the file (filesz-over-memsz grows them)
    return { headerFlags, entry: layoutEntry, segments: edited, fault: chosen, cut, options }
  })

/** The ELF32 file of a layout: header, program headers, Multiboot header at 0xc0, each segment's bytes at its offset. */
export function layoutImage(layout: ElfLayout): Uint8Array {
  const size = fileEnd(layout.segments)
  const image = new Uint8Array(size)
  const dv = new DataView(image.buffer)
  image.set([0x7f, 0x45, 0x4c, 0x46, 1, 1, 1], 0)
  dv.setUint16(16, 2, true) // ET_EXEC
  dv.setUint16(18, 3, true) // EM_386
  dv.setUint32(20, 1, true)
  dv.setUint32(24, layout.entry >>> 0, true)
  dv.setUint32(28, 52, true) // e_phoff
  dv.setUint16(40, 52, true)
  dv.setUint16(42, 32, true)
  dv.setUint16(44, layout.segments.length, true)
  layout.segments.forEach((s, i) => {
    const at = 52 + i * 32
    const fields = [1, s.offset, s.vaddr, s.paddr, s.filesz, s.memsz, s.flags, 0x1000]
    fields.forEach((v, k) => {
      dv.setUint32(at + k * 4, v >>> 0, true)
    })
    // recognisable, position-dependent contents: the checks compare the plan's bytes with these
    for (let b = 0; b < s.filesz && s.offset + b < size; b++) image[s.offset + b] = (i * 61 + b * 7 + 1) & 0xff
  })
  dv.setUint32(MB_HEADER_OFFSET, MAGIC, true)
  dv.setUint32(MB_HEADER_OFFSET + 4, layout.headerFlags, true)
  dv.setUint32(MB_HEADER_OFFSET + 8, checksumFor(layout.headerFlags), true)
  return layout.cut === null ? image : image.subarray(0, layout.cut)
}

/**
 * A layout's outcome is exactly the one its fault calls for; a load plan
 * copies every PT_LOAD to its p_paddr with the file's bytes and zeroes the
 * rest. Returns the outcome.
 */
export function checkLayout(layout: ElfLayout): "ok" | LoaderErrorReason {
  const image = layoutImage(layout)
  const outcome = loaderOutcome(image, layout.options)
  // a NUL in a command line is refused first, whatever the image
  const { cmdline, modules } = layout.options
  const nul = [cmdline, ...modules.map((m) => m.cmdline)].some((c) => c.includes("\0"))
  const expected = nul ? "bad-options" : expectedOutcome[layout.fault]
  must(outcome === expected, `fault "${layout.fault}": the loader answered ${outcome}, expected ${expected}`)
  if (outcome !== "ok") return outcome
  const plan = planMultibootLoad(image, layout.options)
  if (Result.isFailure(plan)) throw new Error("the second plan of the same image failed")
  const load = plan.success
  const kernel = load.kernel.segments.map((s) => [s.address, s.fileBytes, s.memBytes])
  const want = layout.segments.map((s) => [s.paddr, s.filesz, s.memsz])
  must(
    JSON.stringify(kernel) === JSON.stringify(want),
    `planned kernel segments ${JSON.stringify(kernel)}, the program headers say ${JSON.stringify(want)}`
  )
  for (const s of layout.segments) {
    if (s.filesz === 0) continue
    const w = load.writes.find((x) => x.address === s.paddr)
    const file = image.subarray(s.offset, s.offset + s.filesz)
    must(
      w !== undefined && w.bytes.length === file.length && w.bytes.every((b, i) => b === file[i]),
      `the write at ${hex(s.paddr)} is not the segment's ${s.filesz} file bytes`
    )
  }
  must(load.entry === layout.entry, `entry ${hex(load.entry)}, e_entry ${hex(layout.entry)}`)
  return outcome
}

// ---------------------------------------------------------------------------
// the suite's real images

const imagesDir = new URL("../../../images/", import.meta.url)

/** A committed guest image (images/NAME/NAME.elf). */
export const committedElf = (name: string): Uint8Array =>
  new Uint8Array(readFileSync(new URL(`${name}/${name}.elf`, imagesDir)))

/**
 * A single-PT_LOAD ELF kernel repackaged as an a.out-kludge image (flags bit
 * 16, spec 3.1.3): a 32-byte header with the address fields, directly
 * followed by the segment's file bytes, loaded 32 bytes below the segment so
 * the segment lands at its own p_paddr; bss and entry as the ELF says.
 */
export function aoutFromElf(elf: Uint8Array): Uint8Array {
  const dv = new DataView(elf.buffer, elf.byteOffset, elf.byteLength)
  const ph = dv.getUint32(28, true)
  const [offset, paddr, filesz, memsz] = [4, 12, 16, 20].map((k) => dv.getUint32(ph + k, true)) as [
    number,
    number,
    number,
    number
  ]
  const flags = 0x10003
  const image = new Uint8Array(32 + filesz)
  const out = new DataView(image.buffer)
  const words = [MAGIC, flags, checksumFor(flags), paddr - 32, paddr - 32, paddr + filesz, paddr + memsz]
  words.push(dv.getUint32(24, true))
  words.forEach((w, i) => {
    out.setUint32(i * 4, w, true)
  })
  image.set(elf.subarray(offset, offset + filesz), 32)
  return image
}
