/**
 * Small paravirtualized guests for the `pv` tests, built in-process: the
 * test's assembly (nasm, flat binary at 1 MiB after a zeroed hypercall
 * page) wrapped in an ELF32 executable with one PT_LOAD and a PT_NOTE of
 * Xen notes (xen/include/public/elfnote.h), so the real domain builder
 * (vmm/loader/xen-pv.ts) loads it. `PV_ABI` gives the sources Xen's
 * numbers by name.
 */
import { Effect, Result } from "effect"
import { Kernel } from "../../../kernel/boot.ts"
import { Worlds } from "../../../kernel/sched/runtime.ts"
import { defaultVmConfig, type VmConfig } from "../../../vmm/config.ts"
import { planXenPvLoad } from "../../../vmm/loader/xen-pv.ts"
import { createVm, type VirtualMachine } from "../../../vmm/vm.ts"
import { assemble } from "../../hw/cpu/harness.ts"
import { testMachine } from "../in-process.ts"

export const IMAGE_BASE = 0x100000
export const ENTRY = IMAGE_BASE + 0x1000

/** Constants and macros every test guest may use (docs/pv.md). */
export const PV_ABI = `
%define HYPERCALL(n) (hypercall_page + (n) * 32)
FLAT_RING1_CS equ 0xe019
FLAT_RING1_DS equ 0xe021
FLAT_RING3_CS equ 0xe02b
FLAT_RING3_DS equ 0xe033
DOMID_SELF equ 0x7ff0
SI_SHARED_INFO equ 36
SI_CONSOLE_MFN equ 52
SI_CONSOLE_EVTCHN equ 56
SI_PT_BASE equ 60
SI_NR_PT_FRAMES equ 64
%macro hypercall 1
  call HYPERCALL(%1)
%endmacro
%macro shutdown 1               ; SCHEDOP_shutdown_code(%1), SCHEDOP_shutdown(poweroff)
  mov dword [scratch], %1
  mov ebx, 5
  mov ecx, scratch
  hypercall 29
  mov dword [scratch], 0
  mov ebx, 2
  mov ecx, scratch
  hypercall 29
%endmacro
%macro print 1                  ; console_io(CONSOLEIO_write) of a string literal
  jmp %%after
%%text: db %1
%%after:
  mov ebx, 0
  mov ecx, %%after - %%text
  mov edx, %%text
  hypercall 18
%endmacro
`

export interface NoteOverrides {
  readonly xenVersion?: string
  readonly features?: string
  readonly paeMode?: string
  readonly virtBase?: number
  /** Leave out every note (an image that is not PV). */
  readonly none?: boolean
}

const note = (type: number, desc: Uint8Array): Uint8Array => {
  const name = new TextEncoder().encode("Xen\0")
  const pad = (n: number) => Math.ceil(n / 4) * 4
  const out = new Uint8Array(12 + pad(name.length) + pad(desc.length))
  const dv = new DataView(out.buffer)
  dv.setUint32(0, name.length, true)
  dv.setUint32(4, desc.length, true)
  dv.setUint32(8, type, true)
  out.set(name, 12)
  out.set(desc, 12 + pad(name.length))
  return out
}
const str = (s: string) => new TextEncoder().encode(`${s}\0`)
const u32 = (n: number) => new Uint8Array(new Uint32Array([n]).buffer)

/** An ELF32 PV image of `source` (entry at `start`, after the hypercall page; a `scratch` dword exists). */
export function pvImage(source: string, overrides: NoteOverrides = {}): Uint8Array {
  const code = assemble(
    `bits 32\norg 0x${IMAGE_BASE.toString(16)}\n${PV_ABI}\nhypercall_page: times 4096 db 0\nstart:\n${source}\nalign 4\nscratch: dd 0, 0, 0, 0\n`
  ).bytes
  const notes = overrides.none
    ? new Uint8Array(0)
    : Uint8Array.from([
        ...note(5, str(overrides.xenVersion ?? "xen-3.0")),
        ...note(6, str("pv-test")),
        ...note(3, u32(overrides.virtBase ?? 0)),
        ...note(2, u32(IMAGE_BASE)),
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
  dv.setUint32(24, ENTRY, true)
  dv.setUint32(28, 52, true) // e_phoff
  dv.setUint16(40, 52, true) // e_ehsize
  dv.setUint16(42, 32, true) // e_phentsize
  dv.setUint16(44, phnum, true)
  dv.setUint16(46, 40, true)
  const ph = (i: number, type: number, offset: number, address: number, size: number, flags: number, align: number) => {
    const at = 52 + i * 32
    for (const [k, v] of [type, offset, address, address, size, size, flags, align].entries())
      dv.setUint32(at + k * 4, v, true)
  }
  ph(0, 1, codeOffset, IMAGE_BASE, code.length, 7, 0x1000)
  if (notes.length > 0) ph(1, 4, notesOffset, 0, notes.length, 4, 4)
  file.set(code, codeOffset)
  file.set(notes, notesOffset)
  return file
}

export const pvConfig = (name: string, memoryMiB = 16): VmConfig => ({
  ...defaultVmConfig(name, "inline"),
  mode: "pv",
  memoryMiB
})

/** Build `source` as a PV domain and run it for up to `ns` of virtual time on a fresh host. */
export const runPv = (source: string, options: { readonly ns?: number; readonly memoryMiB?: number } = {}) => {
  let out = ""
  const memoryMiB = options.memoryMiB ?? 16
  const planned = planXenPvLoad(pvImage(source), { ramBytes: memoryMiB * 1024 * 1024, cmdline: "" })
  if (Result.isFailure(planned)) throw new Error(planned.failure.message)
  return Effect.gen(function* () {
    const vm: VirtualMachine = yield* createVm(pvConfig("pv-test", memoryMiB), planned.success, {
      console: (b) => (out += String.fromCharCode(b))
    })
    yield* (yield* Worlds).runFor(options.ns ?? 50_000_000)
    return { vm, out, stats: vm.engineStats() }
  }).pipe(Effect.provide(Kernel.boot(testMachine())), Effect.scoped)
}
