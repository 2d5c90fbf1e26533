/**
 * Protected mode and privilege on the IA-32 interpreter, one Intel SDM rule
 * per test: segment-load faults and their error codes (Vol. 3A 5.4-5.7,
 * Vol. 2 MOV), interrupt delivery through the IDT (Vol. 3A 6.12), the TSS
 * stack switch, IRET and RETF to an outer level, call gates (5.8), I/O
 * permission (Vol. 1 19.5), IOPL-sensitive and privileged instructions,
 * exception classes and double/triple faults (6.15), SYSENTER/SYSEXIT,
 * RDTSC and CPUID; plus real mode (INT through the IVT, the classic switch
 * to protected mode) and two CPUs interleaved.
 *
 * Programs are NASM source assembled by harness.ts; exceptions land in
 * recording stubs whose trap record the tests read.
 */
import { describe, expect, it } from "@effect/vitest"
import { RunExit } from "../../../hw/cpu/state.ts"
import {
  CR4,
  DATA,
  EFLAGS,
  type Frame,
  frameOf,
  type Guest,
  KCODE,
  KDATA,
  KSTACK,
  NP_CODE,
  NP_DATA,
  protectedGuest,
  realGuest,
  UCODE,
  UDATA,
  USTACK
} from "./harness.ts"

const DE = 0
const UD = 6
const DF = 8
const NP = 11
const GP = 13
const hasErrorCode = (v: number) => v === DF || (v >= 10 && v <= 14) || v === 17

/** Run to the recording stub and return the frame of the exception/interrupt it recorded. */
function expectTrap(g: Guest, vector: number): Frame {
  expect(g.run()).toBe(RunExit.Halt)
  const t = g.trap()
  expect(t, "no handler ran").toBeDefined()
  expect(t!.vector).toBe(vector)
  expect(t!.count).toBe(1)
  return frameOf(t!, hasErrorCode(vector))
}

/** Run to a HLT in the program itself (no exception handler ran). */
function expectHalt(g: Guest, budget = 10_000): void {
  expect(g.run(budget)).toBe(RunExit.Halt)
  expect(g.trap(), `unexpected exception ${g.trap()?.vector}`).toBeUndefined()
}

describe("segment register loads", () => {
  // SDM Vol. 2B MOV, protected-mode exceptions: #GP(selector) "if segment selector index is outside descriptor table limits"
  it("MOV DS with a selector past the GDT limit raises #GP(selector) (Vol. 2B MOV; Vol. 3A 3.5.1)", () => {
    const g = protectedGuest(`
start:
  mov ax, 0x83          ; index 16 (GDT has 16 entries), RPL 3
fault:
  mov ds, ax
  hlt`)
    const f = expectTrap(g, GP)
    expect(f.error).toBe(0x80) // RPL dropped, TI = 0, EXT = 0 (6.13)
    expect(f.eip).toBe(g.sym("fault")) // a fault: EIP of the faulting instruction
    expect(f.cs).toBe(KCODE)
    expect(g.cpu.getState().ds.selector).toBe(KDATA) // DS unchanged
  })

  // SDM Vol. 3A 6.15 "Interrupt 11—Segment Not Present": loading a data segment with P = 0
  it("MOV DS with a not-present segment raises #NP(selector) (Vol. 3A 6.15 interrupt 11)", () => {
    const g = protectedGuest(`
start:
  mov ax, NP_DATA
fault:
  mov es, ax
  hlt`)
    const f = expectTrap(g, NP)
    expect(f.error).toBe(NP_DATA)
    expect(f.eip).toBe(g.sym("fault"))
    expect(g.cpu.getState().es.selector).toBe(KDATA)
  })

  // SDM Vol. 3A 5.7 "Privilege Level Checking When Accessing the Stack Segment": DPL and RPL must equal CPL
  it("MOV SS with DPL != CPL raises #GP(selector), at CPL 0 and at CPL 3 (Vol. 3A 5.7)", () => {
    const ring0 = protectedGuest(`
start:
  mov ax, UDATA & ~3    ; DPL 3 data, RPL 0, loaded at CPL 0
fault:
  mov ss, ax
  hlt`)
    const f0 = expectTrap(ring0, GP)
    expect(f0.error).toBe(UDATA & ~3)
    expect(f0.eip).toBe(ring0.sym("fault"))

    const ring3 = protectedGuest(
      `
start:
  mov ax, KDATA | 3     ; RPL 3 = CPL but DPL 0
fault:
  mov ss, ax
  int 0x30`,
      { cpl: 3 }
    )
    const f3 = expectTrap(ring3, GP)
    expect(f3.error).toBe(KDATA)
    expect(f3.eip).toBe(ring3.sym("fault"))
    expect(f3.cs).toBe(UCODE)
    expect(f3.ss).toBe(UDATA)
  })
})

describe("interrupt delivery", () => {
  // SDM Vol. 3A 6.12.1.3 "Flag Usage By Exception- or Interrupt-Handler Procedure"
  it("an interrupt gate clears IF, a trap gate leaves it set (Vol. 3A 6.12.1.3)", () => {
    for (const [vector, ifInHandler] of [
      [0x30, 0],
      [0x31, EFLAGS.IF]
    ] as const) {
      const g = protectedGuest(`
start:
  sti
  int ${vector}
after:
  hlt`)
      const f = expectTrap(g, vector)
      expect(f.eflags & EFLAGS.IF).toBe(EFLAGS.IF) // the pushed EFLAGS is the interrupted one
      expect(f.eip).toBe(g.sym("after")) // INT n is a trap-like event: return address follows it
      expect(g.trap()!.handlerEflags & EFLAGS.IF).toBe(ifInHandler)
    }
  })

  // SDM Vol. 3A 6.12.1.1 "Protection of Exception- and Interrupt-Handler Procedures": INT n with gate DPL < CPL
  it("INT n from ring 3 through a DPL-0 gate raises #GP(vector*8+2) (Vol. 3A 6.12.1.1)", () => {
    const g = protectedGuest(
      `
start:
fault:
  int 0x40
  hlt`,
      { cpl: 3 }
    )
    const f = expectTrap(g, GP)
    expect(f.error).toBe(0x40 * 8 + 2) // IDT bit set, EXT clear
    expect(f.eip).toBe(g.sym("fault"))
    expect(f.cs).toBe(UCODE)
    expect(f.ss).toBe(UDATA)
    expect(f.esp).toBe(USTACK)
  })

  // SDM Vol. 2A INT n "Protected Mode Exceptions": #NP(vector*8+2) if the gate is not present
  it("INT n through a not-present gate raises #NP(vector*8+2) (Vol. 2A INT n)", () => {
    const g = protectedGuest(`
start:
fault:
  int 0x41
  hlt`)
    g.setGate(0x41, { present: false })
    const f = expectTrap(g, NP)
    expect(f.error).toBe(0x41 * 8 + 2)
    expect(f.eip).toBe(g.sym("fault"))
  })

  // SDM Vol. 3A 6.13 "Error Code": EXT = 1 when the event being delivered was external to the program
  it("a hardware interrupt through a not-present gate raises #NP(vector*8+2+EXT) (Vol. 3A 6.13)", () => {
    const g = protectedGuest(`
start:
  sti
  nop
idle:
  jmp idle`)
    g.setGate(0x50, { present: false })
    expect(g.run(10)).toBe(RunExit.Budget)
    g.cpu.acknowledge = () => 0x50
    g.cpu.setIntr(true)
    const f = expectTrap(g, NP)
    expect(f.error).toBe(0x50 * 8 + 3)
    expect(f.eip).toBe(g.sym("idle")) // between instructions: the next one to run
  })

  // SDM Vol. 3A 6.12.1 figure 6-4 "Stack Usage on Transfers to Interrupt and Exception-Handling Routines"
  it("an interrupt from ring 3 switches to SS0:ESP0 from the TSS and pushes SS ESP EFLAGS CS EIP (Vol. 3A 6.12.1, figure 6-4)", () => {
    const g = protectedGuest(
      `
start:
  mov esp, USTACK - 0x24
  stc
  int 0x30
after:
  hlt`,
      { cpl: 3, eflags: EFLAGS.IF }
    )
    expectTrap(g, 0x30)
    const rec = g.trap()!
    expect(rec.handlerSs).toBe(KDATA) // SS0 from the TSS
    expect(rec.handlerCs).toBe(KCODE)
    expect(rec.handlerEsp).toBe(KSTACK - 20) // ESP0 minus five dwords
    // the new stack, from the top down
    expect(g.read32(KSTACK - 4) & 0xffff).toBe(UDATA)
    expect(g.read32(KSTACK - 8)).toBe(USTACK - 0x24)
    expect(g.read32(KSTACK - 12) & (EFLAGS.IF | 1)).toBe(EFLAGS.IF | 1) // IF and CF as they were
    expect(g.read32(KSTACK - 16) & 0xffff).toBe(UCODE)
    expect(g.read32(KSTACK - 20)).toBe(g.sym("after"))
  })

  // SDM Vol. 2A IRET "Operation" (RETURN-TO-OUTER-PRIVILEGE-LEVEL); Vol. 3A 5.8.6 on nulling data segments
  it("IRET to ring 3 pops EIP CS EFLAGS ESP SS, sets CPL 3 and nulls data segments with DPL < 3 (Vol. 2A IRET)", () => {
    const g = protectedGuest(`
start:
  mov ax, UDATA
  mov fs, ax            ; DPL 3: survives the return
  push UDATA            ; SS
  push USTACK - 0x40    ; ESP
  push 0x202            ; EFLAGS (IF)
  push UCODE            ; CS
  push user             ; EIP
  iretd
user:
  mov eax, cs
  mov ebx, ss
  mov ecx, esp
  mov edx, ds
  mov esi, es
  mov edi, fs
  pushfd
  pop ebp
  int 0x30`)
    expect(g.run(8)).toBe(RunExit.Budget) // through the IRETD
    expect(g.cpu.cpl).toBe(3)
    expect(g.cpu.eip).toBe(g.sym("user"))
    const s = g.cpu.getState()
    expect(s.ss).toMatchObject({ selector: UDATA, base: 0, limit: 0xffffffff })
    expect(s.esp).toBe(USTACK - 0x40)
    for (const seg of [s.ds, s.es, s.gs]) {
      expect(seg.selector).toBe(0)
      expect(seg.access & (1 << 16)).not.toBe(0) // unusable: a null selector
    }
    expect(s.fs.selector).toBe(UDATA)
    const f = expectTrap(g, 0x30)
    const r = g.cpu.getState()
    expect([r.eax, r.ebx, r.ecx, r.edx, r.esi, r.edi]).toEqual([UCODE, UDATA, USTACK - 0x40, 0, 0, UDATA])
    expect(r.ebp & EFLAGS.IF).toBe(EFLAGS.IF)
    expect(f.cs).toBe(UCODE)
    expect(f.ss).toBe(UDATA)
  })

  // SDM Vol. 3A 5.8.5 figure 5-13 "Stack Switching During an Interprivilege-Level Call"; 5.8.6 "Returning from a Called Procedure"
  it("far CALL through a call gate to ring 0 copies parameters to the TSS stack and RETF n returns (Vol. 3A 5.8.5, 5.8.6)", () => {
    const g = protectedGuest(
      `
start:
  push 0x11111111       ; parameter 1
  push 0x22222222       ; parameter 2
  call 0x43:0           ; the call gate in GDT slot 8, RPL 3 (the offset is ignored)
back:
  mov edi, esp
  int 0x30
kernel:
%assign i 0
%rep 6
  mov eax, [esp + i * 4]
  mov [DATA + i * 4], eax
%assign i i+1
%endrep
  mov [DATA + 24], esp
  mov eax, cs
  mov [DATA + 28], eax
  mov eax, ss
  mov [DATA + 32], eax
  retf 8`,
      { cpl: 3 }
    )
    g.setCallGate(0x40, KCODE, g.sym("kernel"), 3, 2)
    expectTrap(g, 0x30)
    const words = Array.from({ length: 9 }, (_, i) => g.read32(DATA + i * 4))
    expect(words).toEqual([
      g.sym("back"), // EIP
      UCODE, // CS
      0x22222222, // parameters, in the caller's order
      0x11111111,
      USTACK - 8, // caller's ESP
      UDATA, // caller's SS
      KSTACK - 24, // ESP0 - 6 dwords
      KCODE, // CPL 0
      KDATA // SS0
    ])
    expect(g.cpu.getState().edi).toBe(USTACK) // RETF 8 released the parameters on the outer stack too
  })

  // SDM Vol. 3A 5.8.4 "Accessing a Code Segment Through a Call Gate": CPL and RPL must be <= the gate's DPL
  it("far CALL from ring 3 through a DPL-0 call gate raises #GP(gate selector) (Vol. 3A 5.8.4)", () => {
    const g = protectedGuest(
      `
start:
fault:
  call 0x43:0
  int 0x30
kernel:
  hlt`,
      { cpl: 3 }
    )
    g.setCallGate(0x40, KCODE, g.sym("kernel"), 0, 0)
    const f = expectTrap(g, GP)
    expect(f.error).toBe(0x40)
    expect(f.eip).toBe(g.sym("fault"))
  })
})

describe("I/O and IOPL-sensitive instructions", () => {
  // SDM Vol. 1 19.5.2 "I/O Permission Bit Map": CPL > IOPL consults the TSS bitmap, a set bit raises #GP(0)
  it("IN/OUT at CPL 3 with IOPL 0 follow the TSS I/O bitmap: allowed port works, denied port #GP(0) (Vol. 1 19.5.2)", () => {
    const g = protectedGuest(
      `
start:
  mov al, 0x5a
  out 0x80, al
  in al, 0x80
  mov ebx, eax
  mov al, 0x77
fault:
  out 0x81, al
  int 0x30`,
      { cpl: 3, ioAllow: [0x80] }
    )
    const f = expectTrap(g, GP)
    expect(f.error).toBe(0)
    expect(f.eip).toBe(g.sym("fault"))
    expect(g.ports.writes).toEqual([{ port: 0x80, size: 1, value: 0x5a }])
    expect(g.ports.reads).toEqual([0x80])
    expect(g.cpu.getState().ebx & 0xff).toBe(0x80)

    // a TSS whose I/O map base lies past its limit has no bitmap: every port is denied
    const none = protectedGuest(
      `
start:
fault:
  in al, 0x80
  int 0x30`,
      { cpl: 3 }
    )
    expect(expectTrap(none, GP).eip).toBe(none.sym("fault"))
    expect(none.ports.reads).toEqual([])
  })

  // SDM Vol. 1 19.5.2: every bit covering the bytes of a word/dword port access must be clear
  it("a word OUT whose second byte is a denied port raises #GP(0) (Vol. 1 19.5.2)", () => {
    const g = protectedGuest(
      `
start:
fault:
  out 0x80, ax
  int 0x30`,
      { cpl: 3, ioAllow: [0x80] }
    )
    expect(expectTrap(g, GP).eip).toBe(g.sym("fault"))
    expect(g.ports.writes).toEqual([])
  })

  // SDM Vol. 1 19.5.1 "I/O Privilege Level": CPL <= IOPL needs no bitmap (here the TSS has none)
  it("with IOPL 3 ring 3 may use any port without consulting the bitmap (Vol. 1 19.5.1)", () => {
    const g = protectedGuest(
      `
start:
  mov al, 1
  out 0x81, al
  cli
  int 0x30`,
      { cpl: 3, eflags: EFLAGS.IOPL3 | EFLAGS.IF }
    )
    const f = expectTrap(g, 0x30)
    expect(g.ports.writes).toEqual([{ port: 0x81, size: 1, value: 1 }])
    expect(f.eflags & EFLAGS.IF).toBe(0) // CLI worked at CPL 3 = IOPL
  })

  // SDM Vol. 2A CLI "Protected Mode Exceptions": #GP(0) if CPL > IOPL (PVI not enabled)
  it("CLI at CPL 3 with IOPL 0 raises #GP(0) and leaves IF set (Vol. 2A CLI)", () => {
    const g = protectedGuest(
      `
start:
fault:
  cli
  int 0x30`,
      { cpl: 3, eflags: EFLAGS.IF }
    )
    const f = expectTrap(g, GP)
    expect(f.error).toBe(0)
    expect(f.eip).toBe(g.sym("fault"))
    expect(f.eflags & EFLAGS.IF).toBe(EFLAGS.IF)
  })

  // SDM Vol. 2A HLT: "#GP(0) If the current privilege level is not 0"; Vol. 3A 5.9 privileged instructions
  it("HLT at CPL 3 raises #GP(0) (Vol. 2A HLT; Vol. 3A 5.9)", () => {
    const g = protectedGuest(
      `
start:
  nop
fault:
  hlt`,
      { cpl: 3 }
    )
    const f = expectTrap(g, GP)
    expect(f.error).toBe(0)
    expect(f.eip).toBe(g.sym("fault"))
    expect(f.cs).toBe(UCODE)
  })
})

describe("exception classes", () => {
  // SDM Vol. 3A 6.15 "Interrupt 0—Divide Error Exception (#DE)": a fault, no error code
  it("DIV by zero raises #DE with EIP at the DIV (Vol. 3A 6.15 interrupt 0)", () => {
    const g = protectedGuest(`
start:
  mov eax, 1
  xor edx, edx
  xor ecx, ecx
fault:
  div ecx
  hlt`)
    const f = expectTrap(g, DE)
    expect(f.eip).toBe(g.sym("fault"))
    expect(f.cs).toBe(KCODE)
    expect(g.cpu.getState().eax).toBe(1) // destination unchanged
  })

  // SDM Vol. 2B UD "Undefined Instruction"
  it("UD2 raises #UD (Vol. 2B UD)", () => {
    const g = protectedGuest(`
start:
fault:
  ud2
  hlt`)
    expect(expectTrap(g, UD).eip).toBe(g.sym("fault"))
  })

  // SDM Vol. 2A LOCK: "#UD if the LOCK prefix is used with an instruction not listed" or with a register destination
  it("LOCK on a non-lockable form raises #UD; on a memory ADD it is accepted (Vol. 2A LOCK)", () => {
    for (const insn of ["nop", "add eax, ebx", "mov [DATA], eax"]) {
      const g = protectedGuest(`
start:
fault:
  db 0xf0
  ${insn}
  hlt`)
      expect(expectTrap(g, UD).eip, insn).toBe(g.sym("fault")) // EIP at the prefix
    }
    const ok = protectedGuest(`
start:
  mov eax, 5
  lock add [DATA], eax
  hlt`)
    expectHalt(ok)
    expect(ok.read32(DATA)).toBe(5)
  })

  // SDM Vol. 3A 6.15 "Interrupt 8—Double Fault Exception (#DF)", table 6-5: contributory then contributory
  it("#GP whose gate targets a not-present code segment (#NP) becomes #DF with error code 0 (Vol. 3A 6.15, table 6-5)", () => {
    const g = protectedGuest(`
start:
  mov ax, 0x80
  mov ds, ax            ; #GP(0x80)
  hlt`)
    g.setGate(GP, { selector: NP_CODE }) // delivering #GP raises #NP(NP_CODE | EXT)
    const t = expectTrap(g, DF)
    expect(t.error).toBe(0)
  })

  // SDM Vol. 3A 6.15 interrupt 8: "If another exception occurs while attempting to call the double-fault handler, the processor enters shutdown mode"
  it("a fault while delivering #DF is a triple fault: run() returns Shutdown (Vol. 3A 6.15 interrupt 8)", () => {
    const g = protectedGuest(`
start:
  mov ax, 0x80
  mov ds, ax
  hlt`)
    g.setGate(GP, { selector: NP_CODE })
    g.setGate(DF, { selector: NP_CODE })
    expect(g.run()).toBe(RunExit.Shutdown)
    expect(g.trap()).toBeUndefined()
    expect(g.run()).toBe(RunExit.Shutdown) // shutdown is sticky until reset
  })
})

describe("fast system calls, time stamp and identification", () => {
  // SDM Vol. 2B SYSENTER and SYSEXIT; Vol. 3A 5.8.7 "Performing Fast Calls to System Procedures"
  it("SYSEXIT to ring 3 and SYSENTER back use the IA32_SYSENTER_* MSRs and flat selectors (Vol. 2B SYSENTER/SYSEXIT)", () => {
    const g = protectedGuest(
      `
start:
  xor edx, edx
  mov ecx, 0x174        ; IA32_SYSENTER_CS
  mov eax, KCODE
  wrmsr
  mov ecx, 0x175        ; IA32_SYSENTER_ESP
  mov eax, KSTACK - 0x100
  wrmsr
  mov ecx, 0x176        ; IA32_SYSENTER_EIP
  mov eax, kentry
  wrmsr
  mov ecx, USTACK - 0x20
  mov edx, user
  sysexit
user:
  mov eax, cs
  mov ebx, ss
  mov esi, esp
  sysenter
kentry:
  mov ecx, cs
  mov edx, ss
  mov edi, esp
  pushfd
  pop ebp
  hlt`,
      { eflags: EFLAGS.IF }
    )
    expectHalt(g)
    const s = g.cpu.getState()
    expect([s.eax, s.ebx, s.esi]).toEqual([UCODE, UDATA, USTACK - 0x20]) // SYSEXIT: CS = SYSENTER_CS+16|3, SS = +24|3
    expect([s.ecx, s.edx, s.edi]).toEqual([KCODE, KDATA, KSTACK - 0x100]) // SYSENTER: CS, SS = CS+8, ESP from the MSR
    expect(s.ebp & EFLAGS.IF).toBe(0) // SYSENTER clears IF
    expect(g.cpu.cpl).toBe(0)
    expect(s.cs).toMatchObject({ base: 0, limit: 0xffffffff })
  })

  // SDM Vol. 2B SYSENTER/SYSEXIT "Protected Mode Exceptions": #GP(0) if IA32_SYSENTER_CS[15:2] = 0; SYSEXIT at CPL != 0
  it("SYSENTER with IA32_SYSENTER_CS = 0 and SYSEXIT at CPL 3 raise #GP(0) (Vol. 2B SYSENTER, SYSEXIT)", () => {
    for (const insn of ["sysenter", "sysexit"]) {
      const g = protectedGuest(
        `
start:
fault:
  ${insn}
  int 0x30`,
        { cpl: 3 }
      )
      if (insn === "sysexit") g.cpu.sysenterCs = KCODE
      const f = expectTrap(g, GP)
      expect(f.error, insn).toBe(0)
      expect(f.eip, insn).toBe(g.sym("fault"))
    }
  })

  // SDM Vol. 2B RDTSC; Vol. 3B 18.17 "Time-Stamp Counter": monotonic, 64-bit in EDX:EAX
  it("RDTSC is monotonic and carries into EDX (Vol. 2B RDTSC)", () => {
    const g = protectedGuest(
      `
start:
  rdtsc
  mov esi, eax
  mov edi, edx
  times 20 nop
  rdtsc
  int 0x30`,
      { cpl: 3 }
    )
    g.cpu.setState({ ...g.cpu.getState(), tsc: 2 ** 32 - 8 })
    expectTrap(g, 0x30)
    const s = g.cpu.getState()
    const first = s.edi * 2 ** 32 + s.esi
    const second = s.edx * 2 ** 32 + s.eax
    expect(first).toBeGreaterThanOrEqual(2 ** 32 - 8)
    expect(second).toBeGreaterThan(first)
    expect(s.edx).toBe(1)

    // CR4.TSD makes RDTSC privileged
    const tsd = protectedGuest(
      `
start:
fault:
  rdtsc
  int 0x30`,
      { cpl: 3, cr4: CR4.TSD }
    )
    expect(expectTrap(tsd, GP).error).toBe(0)
  })

  // SDM Vol. 2A CPUID leaf 0 (vendor string in EBX EDX ECX) and leaf 1 EDX feature flags (table 3-11)
  it("CPUID leaf 0 says GenuineIntel and leaf 1 EDX reports no FPU (Vol. 2A CPUID)", () => {
    const g = protectedGuest(`
start:
  xor eax, eax
  cpuid
  mov [DATA], ebx
  mov [DATA + 4], edx
  mov [DATA + 8], ecx
  mov esi, eax
  mov eax, 1
  cpuid
  hlt`)
    expectHalt(g)
    const vendor = new TextDecoder().decode(g.mem.ram.subarray(DATA, DATA + 12))
    expect(vendor).toBe("GenuineIntel")
    const s = g.cpu.getState()
    expect(s.esi).toBeGreaterThanOrEqual(1) // maximum basic leaf
    expect(s.edx & 1).toBe(0) // EDX bit 0: FPU on chip
    expect(s.edx & (1 << 11)).not.toBe(0) // SEP: SYSENTER/SYSEXIT, tested above
  })
})

describe("real mode", () => {
  // SDM Vol. 3A 20.1.4 "Interrupt and Exception Handling" in real-address mode: IVT entry, push FLAGS CS IP, clear IF
  it("INT n in real mode vectors through the IVT, pushes FLAGS CS IP and IRET returns (Vol. 3A 20.1.4)", () => {
    const g = realGuest(`
start:
  xor ax, ax
  mov ds, ax
  mov word [0x21 * 4], handler - 0x7c00
  mov word [0x21 * 4 + 2], 0x07c0    ; the handler runs with CS = 07C0
  sti
  mov ax, 0x1111
  int 0x21
after:
  pushf
  pop dx
  hlt
handler:
  mov bp, sp
  mov bx, [bp]          ; IP
  mov cx, [bp + 2]      ; CS
  mov si, [bp + 4]      ; FLAGS
  pushf
  pop di
  mov [0x600], cs
  mov ax, 0x2222
  iret`)
    expectHalt(g)
    const s = g.cpu.getState()
    expect(s.ebx & 0xffff).toBe(g.sym("after")) // CS was 0: IP = linear address
    expect(s.ecx & 0xffff).toBe(0)
    expect(s.esi & EFLAGS.IF).toBe(EFLAGS.IF) // pushed FLAGS had IF
    expect(s.edi & EFLAGS.IF).toBe(0) // cleared in the handler
    expect(s.edx & EFLAGS.IF).toBe(EFLAGS.IF) // IRET restored it
    expect(g.read16(0x600)).toBe(0x07c0)
    expect(s.eax & 0xffff).toBe(0x2222)
    expect(s.esp).toBe(0x7000)
  })

  // SDM Vol. 3A 9.9.1 "Switching to Protected Mode": LGDT, MOV CR0 (PE), far JMP, reload the data segments
  it("boots from real mode into protected mode with LGDT / MOV CR0 / far JMP (Vol. 3A 9.9.1)", () => {
    const g = realGuest(`
start:
  cli
  xor ax, ax
  mov ds, ax
  lgdt [gdt_ptr]
  mov eax, cr0
  or eax, 1
  mov cr0, eax
  jmp 0x08:pm           ; serializes and loads CS from the GDT
bits 32
pm:
  mov ax, 0x10
  mov ds, ax
  mov es, ax
  mov ss, ax
  mov esp, 0x90000
  mov dword [0x20000], 0xc0ffee
  push dword 0x12345678
  pop dword [0x20004]
  hlt
align 8
gdt:
  dq 0
  dq 0x00cf9a000000ffff ; flat 32-bit code, DPL 0
  dq 0x00cf92000000ffff ; flat data
gdt_ptr:
  dw gdt_ptr - gdt - 1
  dd gdt`)
    expectHalt(g)
    const s = g.cpu.getState()
    expect(s.cr0 & 1).toBe(1)
    expect(s.gdtr).toEqual({ base: g.sym("gdt"), limit: 23 })
    expect(s.cs).toMatchObject({ selector: 0x08, base: 0, limit: 0xffffffff })
    expect(s.cs.access & (1 << 14)).not.toBe(0) // D = 1: 32-bit code
    expect(s.ds).toMatchObject({ selector: 0x10, base: 0, limit: 0xffffffff })
    expect(s.ss.selector).toBe(0x10)
    expect(g.cpu.cpl).toBe(0)
    expect(g.read32(0x20000)).toBe(0xc0ffee)
    expect(g.read32(0x20004)).toBe(0x12345678)
    expect(s.esp).toBe(0x90000)
  })
})

describe("two CPUs", () => {
  const realProgram = `
start:
  xor ax, ax
  mov ds, ax
  mov cx, 300
  xor bx, bx
  xor si, si
.loop:
  add bx, cx
  mov [0x8000 + si], bx
  add si, 2
  and si, 0xfe
  loop .loop
  mov ax, bx
  out 0x80, ax
  hlt`
  const protectedProgram = `
start:
  mov ecx, 200
  xor ebx, ebx
.loop:
  mov eax, ecx
  mul ecx
  add ebx, eax
  int 0x40
  loop .loop
  mov eax, ebx
  out 0x80, eax
  hlt
handler:
  inc dword [DATA]
  iretd`
  const makeReal = () => realGuest(realProgram)
  const makeProtected = () => {
    const g = protectedGuest(protectedProgram, { paging: true })
    g.setGate(0x40, { offset: g.sym("handler") })
    return g
  }
  const outcome = (g: Guest) => ({ state: g.cpu.getState(), ports: g.ports.writes })
  /** Offset of the first byte where two guests' RAM differs, or -1. */
  const ramDiff = (x: Guest, y: Guest) => x.mem.ram.findIndex((byte, i) => byte !== y.mem.ram[i])

  // SDM Vol. 3A 8.1 (each logical processor has its own architectural state): no shared CPU state between instances
  it("a real-mode and a paged protected-mode CPU interleaved a few instructions at a time do not interfere (Vol. 3A 8.1)", () => {
    const soloReal = makeReal()
    expectHalt(soloReal, 1e6)
    const soloProt = makeProtected()
    expect(soloProt.run(1e6)).toBe(RunExit.Halt)

    const a = makeReal()
    const b = makeProtected()
    let doneA = false
    let doneB = false
    for (let i = 0; i < 100_000 && !(doneA && doneB); i++) {
      if (!doneA) doneA = a.run(3) === RunExit.Halt
      if (!doneB) doneB = b.run(2) === RunExit.Halt
    }
    expect([doneA, doneB]).toEqual([true, true])
    expect(a.cpu.getState().ebx & 0xffff).toBe((300 * 301) / 2)
    expect(a.ports.writes).toEqual([{ port: 0x80, size: 2, value: (300 * 301) / 2 }])
    expect(b.cpu.getState().ebx).toBe((200 * 201 * 401) / 6)
    expect(b.read32(DATA)).toBe(200)
    expect(b.ports.writes).toEqual([{ port: 0x80, size: 4, value: (200 * 201 * 401) / 6 }])
    expect(outcome(a)).toEqual(outcome(soloReal))
    expect(outcome(b)).toEqual(outcome(soloProt))
    expect(ramDiff(a, soloReal)).toBe(-1)
    expect(ramDiff(b, soloProt)).toBe(-1)
  })
})
