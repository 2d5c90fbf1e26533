/**
 * A Xen PV kernel image around raw 32-bit code, for fuzzing and tests of
 * `pv` mode: an ELF32 executable (TIS ELF 1.2) with one PT_LOAD at 1 MiB --
 * a zeroed hypercall page, then the code, entered at 1 MiB + 4 KiB -- and a
 * PT_NOTE of Xen notes (xen/include/public/elfnote.h) that the domain
 * builder (vmm/loader/xen-pv.ts) accepts unless told otherwise.
 */

export const PV_IMAGE_BASE = 0x100000
export const PV_ENTRY = PV_IMAGE_BASE + 0x1000

export interface PvNoteOverrides {
  readonly xenVersion?: string
  readonly features?: string
  readonly paeMode?: string
  readonly virtBase?: number
  /** Leave out every note (an image that is not PV). */
  readonly none?: boolean
}

const note = (type: number, desc: Uint8Array): Array<number> => {
  const name = new TextEncoder().encode("Xen\0")
  const pad = (n: number) => Math.ceil(n / 4) * 4
  const out = new Uint8Array(12 + pad(name.length) + pad(desc.length))
  const dv = new DataView(out.buffer)
  dv.setUint32(0, name.length, true)
  dv.setUint32(4, desc.length, true)
  dv.setUint32(8, type, true)
  out.set(name, 12)
  out.set(desc, 12 + pad(name.length))
  return [...out]
}
const str = (s: string) => new TextEncoder().encode(`${s}\0`)
const u32 = (n: number) => new Uint8Array(new Uint32Array([n]).buffer)

/** `code` (assembled for org PV_IMAGE_BASE, its first 4 KiB the hypercall page) as a PV ELF. */
export function pvElf(code: Uint8Array, overrides: PvNoteOverrides = {}): Uint8Array {
  const notes = overrides.none
    ? new Uint8Array(0)
    : Uint8Array.from([
        ...note(5, str(overrides.xenVersion ?? "xen-3.0")),
        ...note(6, str("pv-test")),
        ...note(3, u32(overrides.virtBase ?? 0)),
        ...note(2, u32(PV_IMAGE_BASE)),
        ...note(10, str(overrides.features ?? "auto_translated_physmap")),
        ...note(9, str(overrides.paeMode ?? "no"))
      ])
  const phnum = notes.length > 0 ? 2 : 1
  const codeOffset = 0x1000
  const notesOffset = codeOffset + code.length
  const file = new Uint8Array(notesOffset + notes.length)
  const dv = new DataView(file.buffer)
  file.set([0x7f, 0x45, 0x4c, 0x46, 1, 1, 1], 0)
  dv.setUint16(16, 2, true) // ET_EXEC
  dv.setUint16(18, 3, true) // EM_386
  dv.setUint32(20, 1, true)
  dv.setUint32(24, PV_ENTRY, true)
  dv.setUint32(28, 52, true) // e_phoff
  dv.setUint16(40, 52, true) // e_ehsize
  dv.setUint16(42, 32, true) // e_phentsize
  dv.setUint16(44, phnum, true)
  dv.setUint16(46, 40, true)
  const ph = (i: number, fields: ReadonlyArray<number>) => {
    for (const [k, v] of fields.entries()) dv.setUint32(52 + i * 32 + k * 4, v, true)
  }
  // p_type, p_offset, p_vaddr, p_paddr, p_filesz, p_memsz, p_flags, p_align
  ph(0, [1, codeOffset, PV_IMAGE_BASE, PV_IMAGE_BASE, code.length, code.length, 7, 0x1000])
  if (notes.length > 0) ph(1, [4, notesOffset, 0, 0, notes.length, notes.length, 4, 4])
  file.set(code, codeOffset)
  file.set(notes, notesOffset)
  return file
}
