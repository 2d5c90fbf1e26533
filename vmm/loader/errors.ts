/**
 * The loader's error vocabulary: one Schema.TaggedError, `LoaderError`, whose
 * `reason` says which rule the image (or the load options) broke and whose
 * `message` names the offending field and values, e.g.
 *
 *   segment-outside-ram: ELF program header 2 (PT_LOAD) loads [0x7f000000, 0x7f001004)
 *   but guest RAM is [0, 0x800000)
 *
 * The loader never throws on bad input: every function in vmm/loader returns
 * an Effect `Result` whose failure is a LoaderError, so a guest image from
 * anywhere (a datastore, a fuzzer) cannot crash the hypervisor (DESIGN.md
 * "Errors": guest-caused conditions are typed errors).
 */
import { Schema } from "effect"

export const LoaderErrorReason = Schema.Literals([
  /** the load options themselves are invalid (RAM size, a NUL inside a command line) */
  "bad-options",
  /** no Multiboot header magic in the first 8192 bytes (spec 3.1.1) */
  "not-multiboot",
  /** a header magic was found but magic + flags + checksum is not 0 mod 2^32 (spec 3.1.2) */
  "bad-checksum",
  /** a valid header exists, but not entirely within the first 8192 bytes (spec 3.1.1) */
  "header-too-far",
  /** the header requires a feature this loader does not provide (flags bits 2..15, spec 3.1.2) */
  "unsupported-flags",
  /** the file ends before a field, table or segment it declares */
  "truncated",
  /** no a.out kludge and the file is not an ELF32 little-endian i386 executable */
  "not-elf32",
  /** an ELF32 file whose header or program headers are inconsistent */
  "bad-elf",
  /** the a.out kludge address fields contradict each other or the file (spec 3.1.3) */
  "bad-header-addresses",
  /** nothing to load: no PT_LOAD segment with a size, or a zero-size a.out image */
  "no-segments",
  /** a segment does not lie inside guest RAM */
  "segment-outside-ram",
  /** two segments claim the same guest-physical bytes */
  "overlap",
  /** a segment covers the low area where the loader puts the boot information */
  "overlaps-boot-info",
  /** the entry point is not inside bytes loaded from the image */
  "entry-outside-image",
  /** the modules do not fit in guest RAM after the kernel */
  "modules-outside-ram",
  /** the command lines, module list and strings do not fit in the boot-information area */
  "boot-info-too-large",
  /** `pv` mode: the image has no Xen ELF notes (not built for paravirtualization) */
  "not-xen-pv",
  /** `pv` mode: a Xen PV image asking for what fibervisor does not offer (docs/pv.md) */
  "bad-xen-pv",
  /** another mode: the image is a Xen PV kernel, which only runs in `pv` mode */
  "xen-pv-image"
])
export type LoaderErrorReason = typeof LoaderErrorReason.Type

/** The image (or the options) cannot be loaded; `message` names the field and the values. */
export class LoaderError extends Schema.TaggedError<LoaderError>()("LoaderError", {
  reason: LoaderErrorReason,
  message: Schema.String
}) {}

/** A guest-physical address or file offset as the messages print it. */
export const hex = (n: number): string => `0x${n.toString(16)}`

/** A half-open range [start, end) as the messages print it. */
export const range = (start: number, end: number): string => `[${hex(start)}, ${hex(end)})`

export const loaderError = (reason: LoaderErrorReason, message: string): LoaderError =>
  new LoaderError({ reason, message: `${reason}: ${message}` })
