/**
 * Small paravirtualized guests for the `pv` tests, built in-process: the
 * test's assembly (nasm, flat binary at 1 MiB after a zeroed hypercall
 * page) wrapped by scripts/fuzz/pv/image.ts in an ELF32 executable with a
 * PT_NOTE of Xen notes, so the real domain builder (vmm/loader/xen-pv.ts)
 * loads it. `PV_ABI` gives the sources Xen's
 * numbers by name.
 */
import { Effect, Result } from "effect"
import { Kernel } from "../../../kernel/boot.ts"
import { Worlds } from "../../../kernel/sched/runtime.ts"
import { PV_IMAGE_BASE, type PvNoteOverrides, pvElf } from "../../../scripts/fuzz/pv/image.ts"
import { defaultVmConfig, type VmConfig } from "../../../vmm/config.ts"
import { planXenPvLoad } from "../../../vmm/loader/xen-pv.ts"
import { createVm, type VirtualMachine } from "../../../vmm/vm.ts"
import { assemble } from "../../hw/cpu/harness.ts"
import { testMachine } from "../in-process.ts"

export const IMAGE_BASE = PV_IMAGE_BASE

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

/** An ELF32 PV image of `source` (entry at `start`, after the hypercall page; a `scratch` dword exists). */
export function pvImage(source: string, overrides: PvNoteOverrides = {}): Uint8Array {
  return pvElf(
    assemble(
      `bits 32\norg 0x${IMAGE_BASE.toString(16)}\n${PV_ABI}\nhypercall_page: times 4096 db 0\nstart:\n${source}\nalign 4\nscratch: dd 0, 0, 0, 0\n`
    ).bytes,
    overrides
  )
}

export const pvConfig = (name: string, memoryMiB = 16): VmConfig => ({
  ...defaultVmConfig(name, "inline"),
  mode: "pv",
  memoryMiB
})

/**
 * Build `source` as a PV domain and run it for up to `ns` of virtual time on a fresh host; `attach` may
 * give the domain devices (back ends) before it starts, `after` look at it while the host still exists.
 * With `midway`, the run is `ns`, then `midway` (given the console so far), then `ns` more.
 */
export const runPv = (
  source: string,
  options: {
    readonly ns?: number
    readonly memoryMiB?: number
    readonly attach?: (vm: VirtualMachine) => void
    readonly midway?: (vm: VirtualMachine, out: string) => void
    readonly after?: (vm: VirtualMachine) => void
  } = {}
) => {
  let out = ""
  const memoryMiB = options.memoryMiB ?? 16
  const planned = planXenPvLoad(pvImage(source), { ramBytes: memoryMiB * 1024 * 1024, cmdline: "" })
  if (Result.isFailure(planned)) throw new Error(planned.failure.message)
  return Effect.gen(function* () {
    const vm: VirtualMachine = yield* createVm(pvConfig("pv-test", memoryMiB), planned.success, {
      console: (b) => (out += String.fromCharCode(b))
    })
    options.attach?.(vm)
    const worlds = yield* Worlds
    yield* worlds.runFor(options.ns ?? 50_000_000)
    if (options.midway !== undefined) {
      options.midway(vm, out)
      yield* worlds.runFor(options.ns ?? 50_000_000)
    }
    options.after?.(vm)
    return { vm, out, stats: vm.engineStats() }
  }).pipe(Effect.provide(Kernel.boot(testMachine())), Effect.scoped)
}
