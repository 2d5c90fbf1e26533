/**
 * Each sensitive instruction the `bt` translator hands to the monitor,
 * executed: a small flat 32-bit ring-0 program (its own GDT and IDT, every
 * fault ending the VM with a record of it) runs in an in-process VM in mode
 * `bt` and in mode `hw`; the final virtual CPU state (general registers,
 * EFLAGS, EIP, segment registers with their caches, CR0/2/3/4, GDTR, IDTR,
 * LDTR, TR, the SYSENTER MSRs), the guest memory the program wrote (scratch
 * area, stack, fault record, GDT) and the console must be the same, and the
 * values are checked against what the architecture says where that is
 * simple (Intel SDM Vol. 2; Robin & Irvine 2000 for why each instruction is
 * sensitive at a deprivileged CPL):
 *
 *   - the guest sees its own virtual CPU: IF in PUSHF's image, its own GDTR
 *     and IDTR from SGDT/SIDT (never the monitor's FFC00000), RPL 0 in
 *     its CS and SS selectors, its own CR0 from SMSW and MOV from CR0;
 *   - control transfers through the monitor (RET, indirect and far CALL/
 *     JMP/RET, IRET, INT n) push and pop guest EIPs, never TC addresses;
 *   - guest faults are reported at the guest EIP of the faulting
 *     instruction, through the guest's IDT;
 *   - interrupts (the PIT through the PIC) arrive at precise guest
 *     instruction boundaries, also in the middle of translated blocks, and
 *     wake HLT;
 *   - guest user code (CPL 3, run directly at ring 3) sees its own flags
 *     and selectors, and its faults and INTs reach the guest kernel;
 *   - the monitor region (the top 4 MiB of the linear space) is not the
 *     guest's to read or write, whatever segment it uses; a code segment
 *     with a base is run with EIPs relative to it.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import type { CpuState } from "../../../hw/cpu/state.ts"
import type { VmEnd } from "../../../vmm/exits/types.ts"
import { flat32Registers } from "../../../vmm/loader/raw-payload.ts"
import { assemble } from "../../hw/cpu/harness.ts"
import {
  CODE,
  dword,
  FAULT_RECORD,
  GDT_ADDRESS,
  type GuestRun,
  hex,
  IDT_ADDRESS,
  type ProgramOptions,
  program,
  type RunOptions,
  runBytes,
  SCRATCH,
  STACK_TOP,
  setGate,
  systemState,
  word16
} from "./harness.ts"

const DUMPS: ReadonlyArray<readonly [number, number]> = [
  [SCRATCH, 0x100],
  [STACK_TOP - 0x100, 0x100],
  [FAULT_RECORD, 24],
  [GDT_ADDRESS, 13 * 8]
]

const hexBytes = (bytes: Uint8Array): string => Buffer.from(bytes).toString("hex")

interface Compared {
  readonly bt: GuestRun
  readonly hw: GuestRun
  /** Guest labels' addresses. */
  readonly at: (label: string) => number
  /** Dword at SCRATCH + offset (as both modes wrote it). */
  readonly scratch: (offset: number) => number
  /** The fault record: vector, then the 4 dwords at ESP, then CR2. */
  readonly fault: () => ReadonlyArray<number>
  readonly regs: CpuState
}

interface CompareOptions extends ProgramOptions, RunOptions {
  /** How the hw run must end (default: debug-exit 0); "running" = it has not ended (HLT). */
  readonly end?: VmEnd | "running"
}

/**
 * Run `body` (in `program`) in bt and in hw; everything compared must be the
 * same, and hw must end as `options.end` says (so a program that goes wrong
 * in both modes alike does not pass unnoticed).
 */
const compare = (body: string, options: CompareOptions = {}): Effect.Effect<Compared> =>
  Effect.gen(function* () {
    const source = `bits 32\norg 0x${CODE.toString(16)}\n${program(body, options)}`
    const assembled = assemble(source)
    const dump = [...DUMPS, ...(options.dump ?? [])]
    const runOptions = { dump, ...(options.ns === undefined ? {} : { ns: options.ns }) }
    const [bt, hw] = yield* Effect.all([
      runBytes("bt", assembled.bytes, runOptions),
      runBytes("hw", assembled.bytes, runOptions)
    ])
    const end = options.end ?? DEBUG_EXIT_OK
    if (end === "running") expect(hw.ended).toBeUndefined()
    else expect(hw.ended, "how the hw run ended").toEqual(end)
    expect(bt.ended, "how the VM ended").toEqual(hw.ended)
    expect(systemState(bt.regs), "final virtual CPU state").toEqual(systemState(hw.regs))
    dump.forEach(([address], i) => {
      expect(hexBytes(bt.memory[i]!), `guest memory at ${hex(address)}`).toBe(hexBytes(hw.memory[i]!))
    })
    expect(bt.console, "console").toBe(hw.console)
    const at = (label: string): number => {
      const value = assembled.symbols.get(label)
      if (value === undefined) throw new Error(`no label ${label}`)
      return value
    }
    return {
      bt,
      hw,
      at,
      scratch: (offset) => dword(hw.memory[0]!, offset),
      fault: () => [0, 4, 8, 12, 16, 20].map((o) => dword(hw.memory[2]!, o)),
      regs: hw.regs
    }
  })

/** The callouts `bt` counted for `mnemonic` (the instruction did go through the monitor). */
const callouts = (run: GuestRun, mnemonic: string): number => run.stats[`callout_${mnemonic}`] ?? 0

const DEBUG_EXIT_OK: VmEnd = { _tag: "DebugExit", code: 0 }
const faultEnd = (vector: number): VmEnd => ({ _tag: "DebugExit", code: 0x80 | vector })

const IF = 1 << 9

const popcount = (v: number): number => {
  let n = 0
  for (let x = v >>> 0; x !== 0; x >>>= 1) n += x & 1
  return n
}

describe("bt vs hw: flags", () => {
  it.effect("CLI; PUSHF; POP EAX: IF is clear in the image; STI; PUSHF: set", () =>
    Effect.gen(function* () {
      const { bt, regs } = yield* compare(`
  sti
  cli
  pushf
  pop edx
  sti
  pushf
  pop ebx
  cli
  xor ecx, ecx
  mov al, 0
`)
      expect(regs.edx & IF).toBe(0)
      expect(regs.ebx & IF).toBe(IF)
      expect(regs.eflags & IF).toBe(0)
      // (the instruction after an STI runs in the monitor too: it is in the STI's interrupt shadow)
      expect(callouts(bt, "pushf")).toBeGreaterThanOrEqual(1)
      expect(callouts(bt, "cli")).toBeGreaterThanOrEqual(1)
      expect(callouts(bt, "sti")).toBeGreaterThanOrEqual(1)
    })
  )

  it.effect("POPF loads the arithmetic flags, IF, DF, IOPL, NT, AC, ID at CPL 0; PUSHF reads them back", () =>
    Effect.gen(function* () {
      const { bt, regs } = yield* compare(`
  push dword 0x247ed5
  popf
  pushf
  pop ebx
  push dword 0x2
  popf
  pushf
  pop ecx
  push dword 0x8d5          ; CF PF AF ZF SF OF
  popf
  setc [SCRATCH]
  setz [SCRATCH + 1]
  seto [SCRATCH + 2]
  sets [SCRATCH + 3]
  o16 pushf
  pop dx
  push word 0x0203
  o16 popf
  pushf
  pop esi
  cli
  mov al, 0
`)
      // the virtual flags: IOPL 3, IF, NT are the guest's even though the pCPU runs with its own
      expect(regs.ebx & 0x7ed7).toBe(0x7ed7)
      expect(regs.ecx).toBe(2)
      expect(regs.edx & 0xffff).toBe(0x8d7)
      expect(regs.esi & 0xfff).toBe(0x203)
      expect(dword(bt.memory[0]!, 0)).toBe(0x01010101)
      expect(callouts(bt, "popf")).toBe(4)
    })
  )
})

describe("bt vs hw: descriptor tables", () => {
  it.effect("SGDT/SIDT at boot store the guest's own GDTR/IDTR (the boot values), never the monitor's", () =>
    Effect.gen(function* () {
      const { bt, scratch } = yield* compare(
        `
  sgdt [SCRATCH]
  sidt [SCRATCH + 8]
  mov al, 0
`,
        { gdt: false }
      )
      const boot = flat32Registers()
      expect(word16(bt.memory[0]!, 0)).toBe(boot.gdtr.limit)
      expect(dword(bt.memory[0]!, 2)).toBe(boot.gdtr.base)
      expect(word16(bt.memory[0]!, 8)).toBe(boot.idtr.limit)
      expect(dword(bt.memory[0]!, 10)).toBe(boot.idtr.base)
      expect(scratch(2)).not.toBe(0xffc00000)
      expect(scratch(10)).not.toBe(0xffc01000)
    })
  )

  it.effect("LGDT/LIDT, then SGDT/SIDT (memory forms, with a SIB address) store what was loaded", () =>
    Effect.gen(function* () {
      const { bt, regs, scratch } = yield* compare(`
  mov ebx, SCRATCH
  mov ecx, 4
  sgdt [ebx + ecx * 4 + 0x10]
  sidt [ebx + 0x30]
  mov al, 0
`)
      expect(word16(bt.memory[0]!, 0x20)).toBe(13 * 8 - 1)
      expect(scratch(0x22)).toBe(GDT_ADDRESS)
      expect(word16(bt.memory[0]!, 0x30)).toBe(0x48 * 8 - 1)
      expect(scratch(0x32)).toBe(IDT_ADDRESS)
      expect(regs.gdtr).toEqual({ base: GDT_ADDRESS, limit: 13 * 8 - 1 })
      expect(callouts(bt, "sgdt")).toBe(1)
      expect(callouts(bt, "lgdt")).toBe(1)
      expect(callouts(bt, "lidt")).toBe(1)
    })
  )

  it.effect("LLDT/SLDT, LTR/STR (register and memory forms); LTR marks the TSS busy in the guest's GDT", () =>
    Effect.gen(function* () {
      const { bt, regs } = yield* compare(`
  mov dword [SCRATCH], 0xaaaaaaaa
  mov dword [SCRATCH + 4], 0xbbbbbbbb
  sldt ebx
  mov ax, 0x28
  lldt ax
  sldt esi
  sldt [SCRATCH]
  mov word [SCRATCH + 8], 0x30
  ltr [SCRATCH + 8]
  str edi
  str [SCRATCH + 4]
  mov al, 0
`)
      expect(regs.ebx & 0xffff).toBe(0)
      expect(regs.esi & 0xffff).toBe(0x28)
      expect(regs.edi & 0xffff).toBe(0x30)
      expect(dword(bt.memory[0]!, 0)).toBe(0xaaaa0028)
      expect(dword(bt.memory[0]!, 4)).toBe(0xbbbb0030)
      expect(regs.ldtr.selector).toBe(0x28)
      expect(regs.tr.selector).toBe(0x30)
      expect(bt.memory[3]![0x30 + 5]).toBe(0x8b) // busy 32-bit TSS
      expect(callouts(bt, "ltr") + callouts(bt, "lldt") + callouts(bt, "sldt") + callouts(bt, "str")).toBe(7)
    })
  )

  it.effect("LAR, LSL, VERR, VERW against the guest's own GDT", () =>
    Effect.gen(function* () {
      const { bt, regs } = yield* compare(`
  mov ecx, 0x10
  lar eax, ecx
  setz [SCRATCH]
  mov ecx, 0x40
  lsl ebx, ecx
  setz [SCRATCH + 1]
  mov word [SCRATCH + 0x20], 0x08
  lsl edx, [SCRATCH + 0x20]
  mov cx, 0x08
  verr cx
  setz [SCRATCH + 2]
  verw cx
  setz [SCRATCH + 3]
  mov cx, 0x10
  verw cx
  setz [SCRATCH + 4]
  mov cx, 0x1230            ; beyond the GDT's limit
  lar esi, ecx
  setz [SCRATCH + 5]
  mov word [SCRATCH + 0x20], 0x38
  verw [SCRATCH + 0x20]
  setz [SCRATCH + 6]
  lar edi, [SCRATCH + 0x20]
  mov al, 0
`)
      expect(regs.eax & 0x00f0ff00).toBe(0x00c09300)
      expect(regs.ebx).toBe(0xffff)
      expect(regs.edx).toBe(0xffffffff)
      expect(regs.edi & 0x00f0ff00).toBe(0x00c0f300)
      expect([...bt.memory[0]!.subarray(0, 7)]).toEqual([1, 1, 1, 0, 1, 0, 1])
      for (const m of ["lar", "lsl", "verr", "verw"]) expect(callouts(bt, m)).toBeGreaterThan(0)
    })
  )

  it.effect("SMSW (register and memory forms) gives the guest's CR0", () =>
    Effect.gen(function* () {
      const { bt, regs } = yield* compare(`
  mov dword [SCRATCH], 0xaaaaaaaa
  smsw ecx
  smsw [SCRATCH]
  smsw bx
  mov al, 0
`)
      expect(regs.ecx).toBe(0x11)
      expect(regs.ebx & 0xffff).toBe(0x11)
      expect(dword(bt.memory[0]!, 0)).toBe(0xaaaa0011)
      expect(callouts(bt, "smsw")).toBe(3)
    })
  )
})

describe("bt vs hw: segment registers", () => {
  it.effect("PUSH CS, PUSH SS, MOV r/m from a segment register: the guest's selectors, RPL 0", () =>
    Effect.gen(function* () {
      const { bt, regs, scratch } = yield* compare(`
  mov dword [SCRATCH], 0xaaaaaaaa
  push cs
  pop ebp
  push ss
  pop ebx
  mov ecx, cs
  mov edx, ss
  mov [SCRATCH], cs
  mov esi, ds
  mov di, es
  push fs
  push gs
  push ds
  push es
  pop dword [SCRATCH + 4]
  pop dword [SCRATCH + 8]
  pop dword [SCRATCH + 12]
  pop dword [SCRATCH + 16]
  mov al, 0
`)
      expect(regs.ebp & 0xffff).toBe(0x08)
      expect(regs.ebx & 0xffff).toBe(0x10)
      expect(regs.ecx).toBe(0x08)
      expect(regs.edx).toBe(0x10)
      expect(regs.esi).toBe(0x10)
      expect(regs.edi & 0xffff).toBe(0x10)
      expect(scratch(0)).toBe(0xaaaa0008)
      expect([4, 8, 12, 16].map((o) => scratch(o) & 0xffff)).toEqual([0x10, 0x10, 0x10, 0x10])
      expect(callouts(bt, "push")).toBe(2)
    })
  )

  it.effect("MOV to and POP into every segment register load the guest's descriptors; MOV SS's shadow", () =>
    Effect.gen(function* () {
      const { regs, scratch } = yield* compare(`
  mov ax, 0x20
  mov ds, ax
  mov es, ax
  mov fs, ax
  mov gs, [SCRATCH + 0x40]     ; 0: the null selector
  mov ss, ax
  mov esp, 0x70000
  mov dword [SCRATCH], 0x12345678
  push dword 0x10
  pop ds
  push dword 0x40
  pop es
  push dword 0x10
  pop fs
  push dword 0x10
  pop gs
  push dword 0x10
  pop ss
  mov ebx, [SCRATCH]
  mov ecx, ss
  mov edx, es
  mov esi, esp
  mov al, 0
`)
      expect(regs.ebx).toBe(0x12345678)
      expect(regs.ecx).toBe(0x10)
      expect(regs.edx).toBe(0x40)
      expect(regs.esi).toBe(0x70000)
      expect(regs.es.limit).toBe(0xffff)
      expect(scratch(0)).toBe(0x12345678)
    })
  )

  it.effect("a bad selector in MOV DS is the guest's #GP (error code = selector), at the MOV's EIP", () =>
    Effect.gen(function* () {
      const { bt, hw, at, fault } = yield* compare(
        `
  mov ax, 0x1230
load:
  mov ds, ax
  mov al, 0
`,
        { end: faultEnd(13) }
      )
      expect(hw.ended).toEqual(faultEnd(13))
      expect(fault().slice(0, 4)).toEqual([13, 0x1230, at("load"), 0x08])
      expect(bt.stats.reflected_exceptions).toBeGreaterThan(0)
    })
  )

  it.effect("an access beyond a 16-bit segment's limit is the guest's #GP, at the guest EIP of IDENT code", () =>
    Effect.gen(function* () {
      const { at, fault } = yield* compare(
        `
  mov ax, 0x40
  mov fs, ax
  mov ebx, [fs:0xfffc]
  nop
access:
  mov ecx, [fs:0x10000]
  mov al, 0
`,
        { end: faultEnd(13) }
      )
      expect(fault().slice(0, 4)).toEqual([13, 0, at("access"), 0x08])
    })
  )
})

describe("bt vs hw: control transfers through the monitor", () => {
  it.effect("RET, RET imm16, CALL/JMP r/m32: return addresses are guest EIPs", () =>
    Effect.gen(function* () {
      const { at, scratch, regs } = yield* compare(
        `
  call f1
r1:
  mov eax, f2
  call eax
r2:
  push dword 0x11
  push dword 0x22
  call f3
r3:
  mov dword [SCRATCH + 0x40], f4
  call [SCRATCH + 0x40]
r4:
  mov ebx, j1
  jmp ebx
  ud2
j1:
  mov ecx, 1
  mov dword [SCRATCH + 0x44], j2
  mov esi, 0x11
  jmp [SCRATCH + esi * 4]      ; SCRATCH + 0x44
  ud2
j2:
  mov al, 0
`,
        {
          tail: `
f1:
  mov eax, [esp]
  mov [SCRATCH], eax
  ret
f2:
  mov ecx, [esp]
  mov [SCRATCH + 4], ecx
  ret
f3:
  mov edx, [esp]
  mov [SCRATCH + 8], edx
  ret 8
f4:
  mov esi, [esp]
  mov [SCRATCH + 12], esi
  ret
`
        }
      )
      expect([0, 4, 8, 12].map(scratch)).toEqual(["r1", "r2", "r3", "r4"].map(at))
      expect(regs.esp).toBe(STACK_TOP)
      expect(regs.eip).toBe(at("j2") + 4) // mov al, 0; out 0xf4, al
    })
  )

  it.effect("far CALL/JMP/RET (direct and memory forms, RETF imm16) switch CS and push guest CS:EIP", () =>
    Effect.gen(function* () {
      const { at, scratch, regs } = yield* compare(
        `
  call 0x18:far1
back1:
  jmp 0x18:far2
far2_back:
  push dword 0x77
  mov dword [SCRATCH + 0x40], far3
  mov word [SCRATCH + 0x44], 0x18
  call far [SCRATCH + 0x40]
back3:
  mov dword [SCRATCH + 0x48], far4
  mov word [SCRATCH + 0x4c], 0x08
  jmp far [SCRATCH + 0x48]
  ud2
done:
  mov al, 0
`,
        {
          tail: `
far1:
  mov eax, cs
  mov [SCRATCH], eax
  mov eax, [esp]
  mov [SCRATCH + 4], eax
  mov eax, [esp + 4]
  mov [SCRATCH + 8], eax
  retf
far2:
  mov ebx, cs
  jmp 0x08:far2_back
far3:
  mov ecx, cs
  mov eax, [esp]
  mov [SCRATCH + 12], eax
  retf 4
far4:
  mov edx, cs
  jmp done
`
        }
      )
      expect(scratch(0)).toBe(0x18)
      expect(scratch(4)).toBe(at("back1"))
      expect(scratch(8) & 0xffff).toBe(0x08)
      expect(scratch(12)).toBe(at("back3"))
      expect([regs.ebx, regs.ecx, regs.edx]).toEqual([0x18, 0x18, 0x08])
      expect(regs.cs.selector).toBe(0x08)
      expect(regs.esp).toBe(STACK_TOP)
    })
  )

  it.effect("IRET (same privilege) to another code segment, IF set from the popped image", () =>
    Effect.gen(function* () {
      const { at, regs } = yield* compare(
        `
  cli
  pushfd
  or dword [esp], 0x200
  push dword 0x18
  push dword after_iret
  iretd
  ud2
after_iret:
  mov ebx, cs
  pushf
  pop ecx
  pushf
  push dword 0x08
  push dword back
  iret
back:
  cli
  mov al, 0
`
      )
      expect(regs.ebx).toBe(0x18)
      expect(regs.ecx & IF).toBe(IF)
      expect(regs.cs.selector).toBe(0x08)
      expect(regs.eip).toBe(at("back") + 5)
    })
  )

  it.effect(
    "INT n, INT3, INTO through the guest's IDT: the frame holds the guest's CS:EIP of the next instruction",
    () =>
      Effect.gen(function* () {
        const { at, scratch, regs } = yield* compare(
          `
${setGate(0x40, "handler")}
${setGate(3, "handler")}
${setGate(4, "handler")}
  mov ebp, SCRATCH
  int 0x40
after40:
  int3
after3:
  mov al, 0x7f
  add al, 1
  into
afterinto:
  xor eax, eax
  into
  mov al, 0
`,
          {
            tail: `
handler:
  mov eax, [esp]
  mov [ebp], eax
  mov eax, [esp + 4]
  mov [ebp + 4], eax
  mov eax, [esp + 8]
  mov [ebp + 8], eax
  pushf
  pop dword [ebp + 12]
  add ebp, 16
  iretd
`
          }
        )
        expect([0, 16, 32].map(scratch)).toEqual(["after40", "after3", "afterinto"].map(at))
        expect([4, 20, 36].map((o) => scratch(o) & 0xffff)).toEqual([8, 8, 8])
        expect(scratch(40) & (1 << 11)).toBe(1 << 11) // OF in the interrupted flags
        expect(scratch(12) & IF).toBe(0) // an interrupt gate clears IF
        expect(regs.ebp).toBe(SCRATCH + 48)
      })
  )

  it.effect("SYSENTER at CPL 0 with the guest's SYSENTER MSRs", () =>
    Effect.gen(function* () {
      const { at, regs } = yield* compare(
        `
  mov ecx, 0x174
  mov eax, 0x08
  xor edx, edx
  wrmsr
  mov ecx, 0x175
  mov eax, 0x7f000
  wrmsr
  mov ecx, 0x176
  mov eax, entry
  wrmsr
  sysenter
  ud2
`,
        {
          tail: `
entry:
  mov ebx, esp
  mov ecx, cs
  mov edx, ss
  mov al, 0
  out 0xf4, al
  hlt
`
        }
      )
      expect([regs.ebx, regs.ecx, regs.edx]).toEqual([0x7f000, 0x08, 0x10])
      expect(regs.eip).toBe(at("entry") + 10)
    })
  )
})

describe("bt vs hw: control registers, MSRs, CPUID, debug registers", () => {
  it.effect("MOV to/from CR0, CR3, CR4, CR2; CLTS; LMSW", () =>
    Effect.gen(function* () {
      const { bt, regs, scratch } = yield* compare(`
  mov eax, cr0
  mov [SCRATCH], eax
  or eax, 0x8
  mov cr0, eax
  mov ebx, cr0
  clts
  mov ecx, cr0
  mov ax, 0x3
  lmsw ax
  mov eax, cr0
  mov [SCRATCH + 4], eax
  mov eax, 0x11
  mov cr0, eax
  mov eax, cr4
  or eax, 0x10
  mov cr4, eax
  mov edx, cr4
  mov eax, 0x123000
  mov cr3, eax
  mov esi, cr3
  mov edi, cr2
  mov al, 0
`)
      expect(scratch(0)).toBe(0x11)
      expect(regs.ebx).toBe(0x19)
      expect(regs.ecx).toBe(0x11)
      expect(scratch(4)).toBe(0x13)
      expect(regs.edx).toBe(0x10)
      expect(regs.esi).toBe(0x123000)
      expect([regs.cr0, regs.cr3, regs.cr4]).toEqual([0x11, 0x123000, 0x10])
      expect(bt.stats.callout_mov).toBeGreaterThanOrEqual(10)
    })
  )

  it.effect("turning paging on (PSE and 4 KiB pages), INVLPG after remapping, a #PF reflected with CR2", () =>
    Effect.gen(function* () {
      const { at, fault, regs } = yield* compare(
        `
PD equ 0x310000
PT equ 0x311000
  mov edi, PD
  xor eax, eax
  mov ecx, 1024
  rep stosd
  mov dword [PD], 0x83            ; 0-4 MiB: one large page
  mov dword [PD + 4], PT | 3      ; 4-8 MiB: 4 KiB pages
  mov edi, PT
  mov eax, 0x400003
  mov ecx, 1024
fill:
  stosd
  add eax, 0x1000
  loop fill
  mov dword [PT + 0x10 * 4], 0    ; 0x410000 not present
  mov eax, cr4
  or eax, 0x10
  mov cr4, eax
  mov eax, PD
  mov cr3, eax
  mov eax, cr0
  or eax, 0x80000000
  mov cr0, eax
  mov esi, cr0
  mov dword [0x400000], 0x1234
  mov dword [0x500000], 0x5678
  mov dword [PT], 0x500003        ; 0x400000 -> 0x500000
  invlpg [0x400000]
  mov ecx, [0x400000]
  mov dword [SCRATCH], ecx
  xor edx, edx
write:
  mov dword [0x410004], 1
  mov al, 0
`,
        { end: faultEnd(14) }
      )
      expect(regs.esi).toBe(0x80000011)
      expect(regs.ecx).toBe(0x5678)
      // #PF, error code 2 (write, not present), at the faulting MOV, CR2 = its address
      expect(fault()).toEqual([14, 2, at("write"), 0x08, expect.any(Number), 0x410004])
      expect(regs.cr2).toBe(0x410004)
    })
  )

  it.effect("CR0.WP = 0: a ring-0 write to a read-only page succeeds; CR0.WP = 1: the guest's #PF", () =>
    Effect.gen(function* () {
      const { at, fault, scratch } = yield* compare(
        `
PD equ 0x310000
PT equ 0x311000
RO equ 0x405000
  mov edi, PD
  xor eax, eax
  mov ecx, 1024
  rep stosd
  mov dword [PD], 0x83
  mov dword [PD + 4], PT | 3
  mov edi, PT
  mov eax, 0x400003
  mov ecx, 1024
fill:
  stosd
  add eax, 0x1000
  loop fill
  mov dword [PT + 5 * 4], RO | 1      ; read-only
  mov eax, cr4
  or eax, 0x10
  mov cr4, eax
  mov eax, PD
  mov cr3, eax
  mov eax, cr0
  or eax, 0x80000000
  and eax, ~0x10000                   ; WP = 0
  mov cr0, eax
  mov dword [RO], 0x1234
  mov esi, [RO]
  mov [SCRATCH], esi
  mov eax, cr0
  or eax, 0x10000                     ; WP = 1
  mov cr0, eax
write:
  mov dword [RO + 4], 0x5678
`,
        { end: faultEnd(14) }
      )
      expect(scratch(0)).toBe(0x1234)
      // #PF, error code 3 (write, protection), at the MOV, CR2 = its address
      expect(fault()).toEqual([14, 3, at("write"), 0x08, expect.any(Number), 0x405004])
    })
  )

  it.effect("WRMSR/RDMSR (SYSENTER_CS/ESP, APIC base); an unknown MSR is the guest's #GP", () =>
    Effect.gen(function* () {
      const { at, fault, scratch } = yield* compare(
        `
  mov ecx, 0x174
  mov eax, 0x1234
  xor edx, edx
  wrmsr
  xor eax, eax
  rdmsr
  mov [SCRATCH], eax
  mov ecx, 0x175
  mov eax, 0x89abcdef
  wrmsr
  rdmsr
  mov [SCRATCH + 4], eax
  mov ecx, 0x1b
  rdmsr
  mov [SCRATCH + 8], eax
  mov [SCRATCH + 12], edx
  mov ecx, 0x12345
bad:
  rdmsr
  mov al, 0
`,
        { end: faultEnd(13) }
      )
      expect(scratch(0)).toBe(0x1234)
      expect(scratch(4)).toBe(0x89abcdef)
      expect((scratch(8) & 0xfffff000) >>> 0).toBe(0xfee00000)
      expect(fault().slice(0, 3)).toEqual([13, 0, at("bad")])
    })
  )

  it.effect("CPUID leaves 0, 1, 0x80000000 give the same answers", () =>
    Effect.gen(function* () {
      const { bt, scratch } = yield* compare(`
  mov edi, SCRATCH
  xor eax, eax
  cpuid
  stosd
  mov eax, ebx
  stosd
  mov eax, ecx
  stosd
  mov eax, edx
  stosd
  mov eax, 1
  cpuid
  stosd
  mov eax, ebx
  stosd
  mov eax, ecx
  stosd
  mov eax, edx
  stosd
  mov eax, 0x80000000
  cpuid
  mov al, 0
`)
      expect(scratch(0)).toBeGreaterThanOrEqual(1)
      expect(callouts(bt, "cpuid")).toBe(3)
    })
  )

  it.effect("MOV to/from DR0-DR3, DR6, DR7 (no breakpoint enabled)", () =>
    Effect.gen(function* () {
      const { bt, regs } = yield* compare(`
  mov eax, 0x12345678
  mov dr0, eax
  mov eax, 0x9abcdef0
  mov dr3, eax
  mov ebx, dr0
  mov ecx, dr3
  mov edx, dr6
  mov esi, dr7
  mov al, 0
`)
      expect(regs.ebx).toBe(0x12345678)
      expect(regs.ecx).toBe(0x9abcdef0)
      expect(bt.regs.dr.slice(0, 4)).toEqual(regs.dr.slice(0, 4))
    })
  )
})

describe("bt vs hw: I/O, HLT", () => {
  it.effect("IN/OUT, imm8 and DX forms, 8/16/32 bits", () =>
    Effect.gen(function* () {
      const { bt, hw, regs } = yield* compare(`
  mov dx, 0x3f8
  mov al, 'o'
  out dx, al
  mov al, 'k'
  out dx, al
  mov dx, 0x3fd
  in al, dx
  mov bl, al
  in al, 0x21
  mov bh, al
  mov dx, 0x2e0
  in ax, dx
  mov cx, ax
  in eax, dx
  mov esi, eax
  in eax, 0xe0
  mov edi, eax
  out 0xe0, eax
  mov dx, 0x2e0
  out dx, ax
  mov al, 0
`)
      expect(hw.console).toBe("ok")
      expect(regs.esi).toBe(0xffffffff)
      expect(regs.ecx & 0xffff).toBe(0xffff)
      expect(callouts(bt, "in")).toBe(5)
      expect(callouts(bt, "out")).toBe(5) // with the final debug-exit
    })
  )

  it.effect("INS/OUTS with REP, both directions", () =>
    Effect.gen(function* () {
      const { hw, regs, at } = yield* compare(
        `
  cld
  mov esi, msg
  mov ecx, msg_end - msg
  mov dx, 0x3f8
  rep outsb
  mov edi, SCRATCH
  mov ecx, 4
  mov dx, 0x3fd
  rep insb
  mov dx, 0x2e0
  insd
  insw
  std
  mov esi, msg_end - 1
  mov ecx, 3
  mov dx, 0x3f8
  rep outsb
  cld
  mov esi, msg
  mov dx, 0x2e0
  outsd
  mov al, 0
`,
        { tail: `msg: db "hello, bt"\nmsg_end:` }
      )
      expect(hw.console).toBe("hello, bttb ")
      expect(regs.edi).toBe(SCRATCH + 10)
      expect(regs.esi).toBe(at("msg") + 4)
      expect(regs.ecx).toBe(0)
    })
  )

  it.effect("HLT with IF = 0 stops the vCPU after the HLT", () =>
    Effect.gen(function* () {
      const { bt, hw, at, regs } = yield* compare(
        `
  mov eax, 0x1234
  cli
  hlt
after:
`,
        { hltOnly: true, ns: 5_000_000, end: "running" }
      )
      expect(bt.ended).toBeUndefined()
      expect(hw.ended).toBeUndefined()
      expect(regs.eip).toBe(at("after"))
      expect(callouts(bt, "hlt")).toBe(1)
    })
  )

  it.effect("HLT woken by the timer's interrupt: the frame's EIP is after the HLT", () =>
    Effect.gen(function* () {
      const { at, scratch } = yield* compare(
        `
${setGate(0x20, "irq0")}
  mov al, 0x11
  out 0x20, al
  mov al, 0x20
  out 0x21, al
  mov al, 0x04
  out 0x21, al
  mov al, 0x01
  out 0x21, al
  mov al, 0xfe
  out 0x21, al
  mov al, 0x34
  out 0x43, al
  mov al, 0x00
  out 0x40, al
  mov al, 0x10
  out 0x40, al
  sti
  hlt
after_hlt:
  jmp after_hlt
`,
        {
          tail: `
irq0:
  mov eax, [esp]
  mov [SCRATCH], eax
  mov eax, [esp + 4]
  mov [SCRATCH + 4], eax
  mov eax, [esp + 8]
  mov [SCRATCH + 8], eax
  mov al, 0
  out 0xf4, al
  hlt
`,
          ns: 50_000_000
        }
      )
      expect(scratch(0)).toBe(at("after_hlt"))
      expect(scratch(4) & 0xffff).toBe(0x08)
      expect(scratch(8) & IF).toBe(IF)
    })
  )

  it.effect("timer interrupts in a callout-heavy loop: precise guest EIPs, and no callout lost at a slice's end", () =>
    // the handler checks the interrupted EIP is one of the loop's instruction boundaries and that EBX = 3 * ECX
    // holds as it should there; it counts good and bad interrupts and which boundaries it saw. The loop checks
    // its stack after every CALL/RET (a RET the monitor never carried out leaves ESP 4 lower: exit code 0x55).
    // Slices end at the PIT's deadlines, often right on the `int 0xF1` of the RET's callout
    Effect.gen(function* () {
      const source = program(
        `
${setGate(0x20, "irq0")}
  mov al, 0x11
  out 0x20, al
  mov al, 0x20
  out 0x21, al
  mov al, 0x04
  out 0x21, al
  mov al, 0x01
  out 0x21, al
  mov al, 0xfe
  out 0x21, al
  mov al, 0x34
  out 0x43, al
  mov al, 0x00
  out 0x40, al
  mov al, 0x02
  out 0x40, al
  xor ecx, ecx
  xor ebx, ebx
  sti
spin:
  inc ecx
l1:
  add ebx, 3
l2:
  jmp short l3
  ud2
l3:
  call fn
l4:
  cmp esp, 0x${STACK_TOP.toString(16)}
l5:
  jne stack_bad
l6:
  cmp dword [SCRATCH], 40
l7:
  jb spin
  cli
  mov al, [SCRATCH + 4]
`,
        {
          tail: `
stack_bad:
  mov al, 0x55
  out 0xf4, al
  hlt
fn:
  lea edx, [ecx + ecx * 2]
fn1:
  ret
irq0:
  push eax
  push edx
  mov eax, [esp + 8]
  lea edx, [ecx + ecx * 2]
  cmp eax, l1
  jne .not_l1
  sub edx, 3
.not_l1:
  cmp edx, ebx
  jne .bad
  mov edx, boundaries
.scan:
  cmp dword [edx], 0
  je .bad
  cmp [edx], eax
  je .good
  add edx, 4
  jmp .scan
.good:
  inc dword [SCRATCH]
  sub edx, boundaries
  shr edx, 2
  bts [SCRATCH + 12], edx
  jmp .eoi
.bad:
  inc dword [SCRATCH + 4]
  mov [SCRATCH + 8], eax
.eoi:
  mov al, 0x20
  out 0x20, al
  pop edx
  pop eax
  iretd
boundaries: dd spin, l1, l2, l3, l4, l5, l6, l7, fn, fn1, 0
`
        }
      )
      const bytes = assemble(`bits 32\norg 0x${CODE.toString(16)}\n${source}`).bytes
      for (const mode of ["hw", "bt"] as const) {
        const run = yield* runBytes(mode, bytes, { dump: [[SCRATCH, 16]], ns: 200_000_000 })
        const [good, bad, badEip, seen] = [0, 4, 8, 12].map((o) => dword(run.memory[0]!, o))
        expect({ mode, ended: run.ended, bad, badEip: hex(badEip!) }).toEqual({
          mode,
          ended: DEBUG_EXIT_OK,
          bad: 0,
          badEip: "0x0"
        })
        expect(good).toBeGreaterThanOrEqual(40)
        // interrupts arrived at several different boundaries (inside blocks, not only at their starts)
        expect(popcount(seen!), `${mode}: boundaries seen ${hex(seen!)}`).toBeGreaterThanOrEqual(3)
      }
    })
  )

  it.effect("INVLPG with paging off is a no-op", () =>
    Effect.gen(function* () {
      const { bt } = yield* compare(`
  mov eax, SCRATCH
  invlpg [eax]
  invlpg [0x12345678]
  mov al, 0
`)
      expect(callouts(bt, "invlpg")).toBe(2)
    })
  )
})

/**
 * Enter user mode (CPL 3) at `user` through IRET with EFLAGS = `eflags`, after
 * setting the TSS's ring-0 stack and gate 0x41 (DPL 3) to `to_kernel`.
 */
const toUser = (eflags: number) => `
  mov dword [TSS_ADDRESS + 4], 0x7e000
  mov dword [TSS_ADDRESS + 8], 0x10
  mov ax, 0x30
  ltr ax
${setGate(0x41, "to_kernel")}
  mov byte [IDT_ADDRESS + 0x41 * 8 + 5], 0xee
  mov ax, 0x3b
  mov ds, ax
  mov es, ax
  push dword 0x3b
  push dword 0x70000
  push dword 0x${eflags.toString(16)}
  push dword 0x63
  push dword user
  iretd
`

/** The kernel side of INT 0x41 from user mode: the frame (EIP CS EFLAGS ESP SS) to SCRATCH + 0x80, then exit. */
const TO_KERNEL = `
to_kernel:
  mov edi, SCRATCH + 0x80
  mov ecx, 5
  mov esi, esp
  cld
  rep movsd
  mov al, 0
  out 0xf4, al
  hlt
`

describe("bt vs hw: user mode (CPL 3, run directly at ring 3)", () => {
  it.effect("IRET to CPL 3 and INT to a DPL-3 gate back: the user's CS:EIP and SS:ESP in the frame", () =>
    Effect.gen(function* () {
      const { at, regs, scratch } = yield* compare(
        `
${toUser(0x202)}
`,
        {
          tail: `
user:
  pushf
  pop ebx
  mov edx, cs
  shl edx, 16
  mov dx, ss
  mov ebp, esp
  int 0x41
after_int:
  ud2
${TO_KERNEL}
`
        }
      )
      expect(regs.ebx & 0x3200).toBe(IF)
      expect([regs.edx, regs.ebp]).toEqual([0x0063003b, 0x70000]) // TO_KERNEL keeps EBX, EDX, EBP
      expect([0x80, 0x84, 0x8c, 0x90].map(scratch)).toEqual([at("after_int"), 0x63, 0x70000, 0x3b])
      expect(scratch(0x88) & IF).toBe(IF)
    })
  )

  it.effect("SYSENTER from CPL 3 enters the guest kernel through the guest's SYSENTER MSRs", () =>
    Effect.gen(function* () {
      const { at, regs } = yield* compare(
        `
  mov ecx, 0x174
  mov eax, 0x08
  xor edx, edx
  wrmsr
  mov ecx, 0x175
  mov eax, 0x7d000
  wrmsr
  mov ecx, 0x176
  mov eax, entry
  wrmsr
${toUser(0x202)}
`,
        {
          tail: `
user:
  mov ebp, esp
  mov edx, user_after
  sysenter
user_after:
  ud2
${TO_KERNEL}
entry:
  mov ebx, esp
  mov esi, cs
  mov edi, ss
  mov al, 0
  out 0xf4, al
  hlt
`
        }
      )
      expect([regs.ebx, regs.esi, regs.edi, regs.ebp]).toEqual([0x7d000, 0x08, 0x10, 0x70000])
      expect(regs.eip).toBe(at("entry") + 10)
    })
  )

  it.effect("user mode reading the top 4 MiB (supervisor-only monitor pages in bt) gets what hw gives", () =>
    Effect.gen(function* () {
      const { regs } = yield* compare(`${toUser(0x202)}`, {
        tail: `
user:
  mov ebx, [0xffc00000]
  mov edx, [0xffc20000]
  mov ebp, [0xffc01000 + 0x41 * 8]
  int 0x41
${TO_KERNEL}
`
      })
      expect([regs.ebx, regs.edx, regs.ebp]).toEqual([0xffffffff, 0xffffffff, 0xffffffff])
    })
  )

  it.effect("CLI at CPL 3 with IOPL 0 is the guest's #GP, reported with the user's CS:EIP", () =>
    Effect.gen(function* () {
      const { at, fault } = yield* compare(`${toUser(0x202)}`, {
        tail: `
user:
  nop
user_cli:
  cli
  ud2
${TO_KERNEL}
`,
        end: faultEnd(13)
      })
      expect(fault().slice(0, 4)).toEqual([13, 0, at("user_cli"), 0x63])
    })
  )

  // bt runs user code on the pCPU with IOPL 0 and the virtual IF (engine.ts loadPcpu, OWNED flags): a user PUSHF
  // shows IOPL 0 instead of 3, and a user POPF (CPL <= IOPL in the guest) cannot clear IF (leavePcpu keeps the
  // virtual IF). CLI/STI/OUT trap to the monitor and are right.
  it.effect("user mode with IOPL 3: PUSHF shows IOPL 3, POPF can clear IF, CLI/STI and OUT work", () =>
    Effect.gen(function* () {
      const { regs, hw } = yield* compare(`${toUser(0x3202)}`, {
        tail: `
user:
  pushf
  pop ebx                 ; IOPL 3, IF 1
  push dword 0x3002
  popf
  pushf
  pop edx                 ; IF 0: CPL <= IOPL
  sti
  pushf
  pop esi                 ; IF 1
  shl esi, 16
  or ebx, esi             ; (the kernel's exit path below clobbers ESI): ESI's flags in EBX's high word
  cli
  mov ebp, edx
  mov dx, 0x3f8
  mov al, 'u'
  out dx, al
  sti
  int 0x41
${TO_KERNEL}
`
      })
      expect(hw.console).toBe("u")
      expect(regs.ebx & 0x3200).toBe(0x3200)
      expect(regs.ebp & 0x3200).toBe(0x3000)
      expect((regs.ebx >>> 16) & 0x3200).toBe(0x3200)
    })
  )
})

describe("bt vs hw: code and data segments", () => {
  it.effect("a CS-override load reads the guest's code bytes", () =>
    Effect.gen(function* () {
      const { regs } = yield* compare(
        `
  mov eax, [cs:data]
  mov esi, data
  cs lodsd
  mov ebx, eax
  mov ecx, [cs:esi]
  mov edx, [cs:start]
  mov al, 0
`,
        { tail: "data: dd 0xcafebabe, 0x8badf00d" }
      )
      expect(regs.ebx).toBe(0xcafebabe)
      expect(regs.ecx).toBe(0x8badf00d)
    })
  )

  it.effect("a guest fault in IDENT code (#DE) and UD2 are reported at their guest EIP", () =>
    Effect.gen(function* () {
      const de = yield* compare(
        `
  mov eax, 5
  xor ecx, ecx
  inc edx
divide:
  div ecx
  mov al, 0
`,
        { end: faultEnd(0) }
      )
      expect(de.fault().slice(0, 4)).toEqual([0, de.at("divide"), 0x08, expect.any(Number)])
      const ud = yield* compare(
        `
  nop
undefined:
  ud2
  mov al, 0
`,
        { end: faultEnd(6) }
      )
      expect(ud.fault().slice(0, 3)).toEqual([6, ud.at("undefined"), 0x08])
    })
  )

  it.effect("the top 4 MiB of the linear space (the monitor's, in bt) read through a flat segment: as in hw", () =>
    Effect.gen(function* () {
      const { regs } = yield* compare(`
  mov ebp, [0xffc00000]
  mov ebx, [0xffc01000 + 0xf1 * 8]
  mov ecx, [0xffc20000]
  mov dword [0xffc20000], 0xcccccccc
  mov edx, [0xffc20000]
  mov esi, [0xfffffffc]
  mov al, 0
`)
      expect([regs.ebp, regs.ebx, regs.ecx, regs.edx, regs.esi]).toEqual(new Array(5).fill(0xffffffff))
    })
  )

  // engine.ts truncate() leaves expand-down segments as they are: at ring 1 (supervisor for paging) the guest
  // kernel reads the monitor's GDT and IDT and writes into the translation cache through one
  it.effect("the monitor region through an expand-down data segment (offsets up to 4 GiB): as in hw", () =>
    Effect.gen(function* () {
      const { regs } = yield* compare(`
  mov ax, 0x48
  mov es, ax
  mov esi, [es:0xffc00000 + 508 * 8 + 4]     ; bt: the monitor's GDT slot of its TC code segment
  mov ebx, [es:0xffc01000 + 0xf1 * 8]        ; bt: the monitor's IDT gate for the callout vector
  mov byte [es:0xffc5f000], 0xcc             ; bt: inside the translation cache
  movzx ecx, byte [es:0xffc5f000]
  mov dx, 0x10
  mov es, dx
  mov al, 0
`)
      expect([regs.esi, regs.ebx, regs.ecx]).toEqual([0xffffffff, 0xffffffff, 0xff])
    })
  )

  // engine.ts truncate() gives a segment whose base is above GUEST_LINEAR_TOP a limit of 0, which still allows
  // offset 0: one byte of the monitor region at the segment's base
  it.effect("a data segment whose base is inside the monitor region: as in hw", () =>
    Effect.gen(function* () {
      const { regs } = yield* compare(`
  mov ax, 0x50
  mov fs, ax
  movzx esi, byte [fs:0]      ; linear 0xffc00fe5; bt: the access byte of the monitor's TC code descriptor
  mov ebx, [fs:0x10]
  mov dx, 0x10
  mov fs, dx
  mov al, 0
`)
      expect(regs.esi).toBe(0xff)
      expect(regs.ebx).toBe(0xffffffff)
    })
  )

  it.effect("a code segment with a non-zero base: EIPs are offsets in it, not linear addresses", () =>
    Effect.gen(function* () {
      const { at, regs, scratch } = yield* compare(
        `
  jmp 0x58:(based - 0x1000)
`,
        {
          tail: `
based:
  call based_f
based_r:
  mov [SCRATCH], eax
  jmp short based_j
  ud2
based_j:
  mov ecx, cs
  mov edx, [esp - 4]
  pushf
  pop esi
  jmp 0x08:flat_again
based_f:
  mov eax, [esp]
  mov edi, eax
  ret
flat_again:
  mov al, 0
  out 0xf4, al
  hlt
`
        }
      )
      expect(scratch(0)).toBe(at("based_r") - 0x1000)
      expect(regs.edi).toBe(at("based_r") - 0x1000)
      expect(regs.ecx).toBe(0x58)
      expect(regs.cs.selector).toBe(0x08)
      expect(regs.eip).toBe(at("flat_again") + 4)
    })
  )
})
