/**
 * Shared helpers for the `bt` tests (test/vmm/bt/): a flat 32-bit ring-0
 * guest run in an in-process VM (as test/vmm/vm.test.ts builds them) in a
 * given execution mode, with its final virtual CPU state and the guest
 * memory it wrote read back before the VM's scope closes; NASM snippets for
 * the guest-side tables such programs need; and the pieces the translator's
 * unit tests use to run `translateBlock` without a VM (a monitor region over
 * plain memory, a CodeReader over a byte array).
 *
 * Guest layout (flat32Payload: CS 0x08, data 0x10, base 0, 4 GiB, paging
 * off, CPL 0): code at CODE (1 MiB), the stack below STACK_TOP, a scratch
 * area at SCRATCH, the program's GDT at GDT_ADDRESS (selectors listed at
 * GDT_DESCRIPTORS, the boot ones included), its IDT at IDT_ADDRESS whose
 * gates 0..0x47 lead to `fault_common`: it records the vector, the first
 * four dwords of the frame the CPU pushed and CR2 at FAULT_RECORD and ends
 * the VM with debug-exit code 0x80 | vector, so a fault is data the test
 * compares, not a hang.
 */
import { Effect } from "effect"
import type { CpuState } from "../../../hw/cpu/state.ts"
import { cloneGuestRegisters } from "../../../hw/cpu/vmx/vmcs.ts"
import { decodeMachineConfig, defaultMachineConfig } from "../../../hw/machine/config.ts"
import { Machine } from "../../../hw/machine/machine.ts"
import { Kernel } from "../../../kernel/boot.ts"
import { Worlds } from "../../../kernel/sched/runtime.ts"
import { defaultVmConfig, type VmConfig } from "../../../vmm/config.ts"
import { MonitorRegion } from "../../../vmm/engines/bt/monitor-region.ts"
import { TranslationCache } from "../../../vmm/engines/bt/translation-cache.ts"
import type { CodeReader } from "../../../vmm/engines/bt/translator.ts"
import type { VmEnd } from "../../../vmm/exits/types.ts"
import { FLAT_CODE, flat32Payload } from "../../../vmm/loader/raw-payload.ts"
import { createVm, type VirtualMachine } from "../../../vmm/vm.ts"
import { assemble } from "../../hw/cpu/harness.ts"

export const CODE = FLAT_CODE
export const STACK_TOP = 0x80000
export const SCRATCH = 0x200000
export const GDT_ADDRESS = 0x300000
export const IDT_ADDRESS = 0x301000
export const TSS_ADDRESS = 0x302000
export const LDT_ADDRESS = 0x303000
/** Where the IDT's handlers record a fault (FAULT_STUBS). */
export const FAULT_RECORD = 0x304000

// ---------------------------------------------------------------------------
// in-process VMs

export type Mode = "bt" | "hw" | "trap"

const machine = () =>
  new Machine(Effect.runSync(decodeMachineConfig("test", JSON.stringify({ ...defaultMachineConfig, ramMiB: 64 }))))

const configFor = (name: string, mode: Mode): VmConfig => ({ ...defaultVmConfig(name, "inline"), mode })

/** Port 0xF4: a write ends the VM with that debug-exit code. */
export const debugExit = (vm: VirtualMachine) =>
  [
    [
      0xf4,
      4,
      {
        name: "debug-exit",
        read: () => 0xffffffff,
        write: (_o: number, _s: number, v: number) => vm.end({ _tag: "DebugExit", code: v })
      }
    ]
  ] as const

export interface GuestRun {
  readonly mode: Mode
  readonly ended: VmEnd | undefined
  /** The vCPU's final virtual state (vmcs.guest.regs, cloned). */
  readonly regs: CpuState
  /** The guest memory ranges asked for, read before the VM was released. */
  readonly memory: ReadonlyArray<Uint8Array>
  readonly console: string
  readonly stats: Readonly<Record<string, number>>
  readonly instructions: number
}

export interface RunOptions {
  /** Guest RAM ranges [address, length] to read back at the end. */
  readonly dump?: ReadonlyArray<readonly [number, number]>
  /** Virtual time to run for (ns, default 20 ms). */
  readonly ns?: number
}

/** Run raw code bytes (flat 32-bit, ring 0, at CODE) in a fresh VM in `mode`. */
export const runBytes = (mode: Mode, bytes: Uint8Array, options: RunOptions = {}): Effect.Effect<GuestRun> =>
  Effect.gen(function* () {
    let out = ""
    const vm = yield* createVm(configFor(`g-${mode}`, mode), flat32Payload(bytes, CODE, STACK_TOP), {
      console: (b) => (out += String.fromCharCode(b)),
      ports: debugExit
    })
    yield* (yield* Worlds).runFor(options.ns ?? 20_000_000)
    const memory = (options.dump ?? []).map(([address, length]) => vm.guest.read(address, length) ?? new Uint8Array())
    return {
      mode,
      ended: vm.ended,
      regs: cloneGuestRegisters(vm.vcpus[0]!.vmcs.guest.regs),
      memory,
      console: out,
      stats: vm.engineStats(),
      instructions: vm.instructions
    } satisfies GuestRun
  }).pipe(Effect.provide(Kernel.boot(machine())), Effect.scoped, Effect.orDie)

/** Assemble `source` (bits 32, org CODE) and run it in `mode`. */
export const runFlat32 = (mode: Mode, source: string, options: RunOptions = {}): Effect.Effect<GuestRun> =>
  runBytes(mode, assemble(`bits 32\norg 0x${CODE.toString(16)}\n${source}`).bytes, options)

/** The architectural state two modes must agree on. */
export const architectural = (r: CpuState) => ({
  eax: hex(r.eax),
  ecx: hex(r.ecx),
  edx: hex(r.edx),
  ebx: hex(r.ebx),
  esp: hex(r.esp),
  ebp: hex(r.ebp),
  esi: hex(r.esi),
  edi: hex(r.edi),
  eip: hex(r.eip),
  eflags: hex(r.eflags),
  cs: hex(r.cs.selector),
  ss: hex(r.ss.selector),
  ds: hex(r.ds.selector),
  es: hex(r.es.selector),
  fs: hex(r.fs.selector),
  gs: hex(r.gs.selector),
  cr0: hex(r.cr0),
  cr3: hex(r.cr3),
  cr4: hex(r.cr4)
})

export const hex = (v: number): string => `0x${(v >>> 0).toString(16)}`

/** Little-endian dword at `offset` of `bytes`. */
export const dword = (bytes: Uint8Array, offset: number): number =>
  (bytes[offset]! | (bytes[offset + 1]! << 8) | (bytes[offset + 2]! << 16) | (bytes[offset + 3]! << 24)) >>> 0

export const word16 = (bytes: Uint8Array, offset: number): number => bytes[offset]! | (bytes[offset + 1]! << 8)

// ---------------------------------------------------------------------------
// guest-side tables

/**
 * NASM for the program's GDT (copied to GDT_ADDRESS by SETUP_GDT):
 *   0x08 code, flat (the boot CS)     0x10 data, flat (the boot data segments)
 *   0x18 code, flat                   0x20 data, flat
 *   0x28 LDT (LDT_ADDRESS, 2 slots)   0x30 32-bit TSS, available (TSS_ADDRESS)
 *   0x38 data, flat, DPL 3            0x40 data, 16-bit, limit 0xffff
 *   0x48 data, expand-down, limit 0 (offsets 1..0xffffffff)
 *   0x50 data, base 0xffc00fe5 (inside the top 4 MiB, where `bt` keeps its monitor), limit 0xff
 *   0x58 code, base 0x1000, limit 4 GiB (EIP = linear - 0x1000)
 *   0x60 code, flat, DPL 3 (selector 0x63 at CPL 3; data and stack 0x3b)
 */
export const GDT_DESCRIPTORS = `
gdt_table:
  dq 0
  dq 0x00cf9b000000ffff
  dq 0x00cf93000000ffff
  dq 0x00cf9b000000ffff
  dq 0x00cf93000000ffff
  dw 0x000f, LDT_ADDRESS & 0xffff
  db (LDT_ADDRESS >> 16) & 0xff, 0x82, 0x00, LDT_ADDRESS >> 24
  dw 0x0067, TSS_ADDRESS & 0xffff
  db (TSS_ADDRESS >> 16) & 0xff, 0x89, 0x00, TSS_ADDRESS >> 24
  dq 0x00cff3000000ffff
  dq 0x000093000000ffff
  dq 0x0040960000000000
  dq 0xff4093c00fe500ff
  dq 0x00cf9b001000ffff
  dq 0x00cffb000000ffff
gdt_end:
`

/** Equates the GDT/IDT snippets use. */
export const LAYOUT_EQUATES = `
GDT_ADDRESS equ 0x${GDT_ADDRESS.toString(16)}
IDT_ADDRESS equ 0x${IDT_ADDRESS.toString(16)}
TSS_ADDRESS equ 0x${TSS_ADDRESS.toString(16)}
LDT_ADDRESS equ 0x${LDT_ADDRESS.toString(16)}
FAULT_RECORD equ 0x${FAULT_RECORD.toString(16)}
SCRATCH equ 0x${SCRATCH.toString(16)}
`

/**
 * Copy the GDT to GDT_ADDRESS and load it (the boot selectors then index
 * it); the GDT pseudo-descriptor is stored at GDT_ADDRESS + 0x800.
 * Clobbers ESI, EDI, ECX (and sets them to known values afterwards: 0).
 */
export const SETUP_GDT = `
  mov esi, gdt_table
  mov edi, GDT_ADDRESS
  mov ecx, gdt_end - gdt_table
  rep movsb
  mov word [GDT_ADDRESS + 0x800], gdt_end - gdt_table - 1
  mov dword [GDT_ADDRESS + 0x802], GDT_ADDRESS
  lgdt [GDT_ADDRESS + 0x800]
  xor ecx, ecx
  xor esi, esi
  xor edi, edi
`

/**
 * Build an IDT at IDT_ADDRESS of 0x48 interrupt gates (selector 0x08) to
 * the `fault_stubs` (FAULT_STUBS), load it. Clobbers EAX, ECX, EDX, EDI
 * (zeroed afterwards).
 */
export const SETUP_IDT = `
  mov edi, IDT_ADDRESS
  xor ecx, ecx
.idt_fill:
  lea eax, [fault_stubs + ecx * 8]
  mov edx, eax
  and eax, 0xffff
  or eax, 0x00080000
  mov [edi], eax
  and edx, 0xffff0000
  or edx, 0x8e00
  mov [edi + 4], edx
  add edi, 8
  inc ecx
  cmp ecx, 0x48
  jb .idt_fill
  mov word [IDT_ADDRESS + 0x800], 0x48 * 8 - 1
  mov dword [IDT_ADDRESS + 0x802], IDT_ADDRESS
  lidt [IDT_ADDRESS + 0x800]
  xor eax, eax
  xor ecx, ecx
  xor edx, edx
  xor edi, edi
`

/** Point IDT gate `vector` (an interrupt gate, selector 0x08) at `label`. Clobbers EAX. */
export const setGate = (vector: number, label: string): string => `
  mov eax, ${label}
  mov [IDT_ADDRESS + ${vector} * 8], ax
  shr eax, 16
  mov [IDT_ADDRESS + ${vector} * 8 + 6], ax
`

/**
 * The handlers SETUP_IDT points at (after the program's end): FAULT_RECORD
 * gets the vector, the 4 dwords at ESP (EIP CS EFLAGS or, with an error
 * code, ERR EIP CS EFLAGS) and CR2; the VM ends with debug-exit 0x80 | vector.
 */
export const FAULT_STUBS = `
align 8
fault_stubs:
%assign v 0
%rep 0x48
  push byte v
  jmp near fault_common
  align 8
%assign v v + 1
%endrep
fault_common:
  pop eax
  mov [FAULT_RECORD], eax
  mov ebx, [esp]
  mov [FAULT_RECORD + 4], ebx
  mov ebx, [esp + 4]
  mov [FAULT_RECORD + 8], ebx
  mov ebx, [esp + 8]
  mov [FAULT_RECORD + 12], ebx
  mov ebx, [esp + 12]
  mov [FAULT_RECORD + 16], ebx
  mov ebx, cr2
  mov [FAULT_RECORD + 20], ebx
  or al, 0x80
  out 0xf4, al
  hlt
`

export interface ProgramOptions {
  /** Load the program's GDT (default true). */
  readonly gdt?: boolean
  /** Load the program's IDT (default true; needs the GDT). */
  readonly idt?: boolean
  /** Code and data placed after the program's end (functions, handlers, data). */
  readonly tail?: string
  /** End with `hlt` only (no debug-exit). */
  readonly hltOnly?: boolean
}

/** A complete program: equates, tables set up, `body`, debug-exit (code AL), then `tail` and the tables. */
export const program = (body: string, options: ProgramOptions = {}): string => `${LAYOUT_EQUATES}
start:
${options.gdt === false ? "" : SETUP_GDT}
${options.idt === false || options.gdt === false ? "" : SETUP_IDT}
${body}
${options.hltOnly === true ? "" : "  out 0xf4, al"}
  hlt
${options.tail ?? ""}
${FAULT_STUBS}
align 8
${GDT_DESCRIPTORS}
`

/** The state two modes must agree on beyond `architectural`: the descriptor-table registers and DR0-3. */
export const systemState = (r: CpuState) => ({
  ...architectural(r),
  cr2: hex(r.cr2),
  gdtr: `${hex(r.gdtr.base)}/${hex(r.gdtr.limit)}`,
  idtr: `${hex(r.idtr.base)}/${hex(r.idtr.limit)}`,
  ldtr: hex(r.ldtr.selector),
  tr: hex(r.tr.selector),
  cs: `${hex(r.cs.selector)} base ${hex(r.cs.base)} limit ${hex(r.cs.limit)} access ${hex(r.cs.access)}`,
  ss: `${hex(r.ss.selector)} base ${hex(r.ss.base)} limit ${hex(r.ss.limit)} access ${hex(r.ss.access)}`,
  ds: `${hex(r.ds.selector)} base ${hex(r.ds.base)} limit ${hex(r.ds.limit)}`,
  es: `${hex(r.es.selector)} base ${hex(r.es.base)} limit ${hex(r.es.limit)}`,
  fs: `${hex(r.fs.selector)} base ${hex(r.fs.base)} limit ${hex(r.fs.limit)}`,
  gs: `${hex(r.gs.selector)} base ${hex(r.gs.base)} limit ${hex(r.gs.limit)}`,
  sysenter: [r.msr.sysenterCs, r.msr.sysenterEsp, r.msr.sysenterEip].map(hex).join(" ")
})

// ---------------------------------------------------------------------------
// the translator without a VM

/** A MonitorRegion over a plain byte array (its frames allocated upward from frame 1). */
export const fakeRegion = (tcBytes = 64 * 1024): MonitorRegion => {
  const pages = 16 + Math.ceil(tcBytes / 4096)
  const ram = new Uint8Array((pages + 1) * 4096)
  let next = 1
  const region = MonitorRegion.create(
    {
      ram,
      allocateTable: () => {
        if (next > pages) throw new Error("fake frames exhausted")
        return next++
      }
    },
    1,
    tcBytes
  )
  if (!(region instanceof MonitorRegion)) throw new Error(`monitor region: ${region.message}`)
  return region
}

export const fakeCache = (tcBytes?: number): { readonly region: MonitorRegion; readonly tc: TranslationCache } => {
  const region = fakeRegion(tcBytes)
  return { region, tc: new TranslationCache(region) }
}

/**
 * Guest code for the translator: `bytes` placed at linear `at` (identity:
 * guest frame = linear page), pages listed in `unmapped` not present.
 */
export const codeReader = (
  at: number,
  bytes: ArrayLike<number>,
  unmapped: ReadonlyArray<number> = []
): CodeReader & { readonly fetched: Set<number> } => {
  const memory = new Map<number, number>()
  for (let i = 0; i < bytes.length; i++) memory.set(at + i, bytes[i]!)
  const fetched = new Set<number>()
  return {
    fetched,
    frameOf: (linear) => {
      const page = (linear >>> 12) << 12
      if (unmapped.includes(page >>> 0)) return undefined
      return linear >>> 12
    },
    byte: (gpa) => {
      fetched.add(gpa)
      return memory.get(gpa) ?? 0x90
    }
  }
}

/** TC bytes [from, to) of a region. */
export const tcBytes = (region: MonitorRegion, from: number, to: number): Array<number> => {
  const out: Array<number> = []
  for (let a = from; a < to; a++) out.push(region.read8(a))
  return out
}
