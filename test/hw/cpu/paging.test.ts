/**
 * 32-bit paging on the IA-32 interpreter (Intel SDM Vol. 3A ch. 4): page
 * faults with their error codes and CR2 (4.7), U/S and R/W rights and
 * CR0.WP (4.6), accessed and dirty flags (4.8), 4 MiB pages with CR4.PSE
 * (4.3), and the TLB: INVLPG, CR3 loads and global pages (4.10).
 *
 * Every guest starts with the low 4 MiB identity-mapped by 4 KiB pages
 * (P RW US); tests remap single pages through the harness. Physical pages
 * 0x300000-0x303000 are scratch: each gets its own marker so a read shows
 * which frame a translation reached.
 */
import { describe, expect, it } from "@effect/vitest"
import { RunExit } from "../../../hw/cpu/state.ts"
import {
  CR0,
  CR4,
  type Frame,
  frameOf,
  type Guest,
  KCODE,
  KSTACK,
  PFEC,
  PTE,
  protectedGuest,
  UCODE,
  UDATA,
  USTACK
} from "./harness.ts"

const PF = 14
const PAGE_A = 0x300000
const PAGE_B = 0x301000
const PAGE_C = 0x302000

function expectPageFault(g: Guest): Frame {
  expect(g.run()).toBe(RunExit.Halt)
  const t = g.trap()
  expect(t, "no handler ran").toBeDefined()
  expect(t!.vector).toBe(PF)
  expect(t!.count).toBe(1)
  return frameOf(t!, true)
}

function expectHalt(g: Guest, budget = 10_000): void {
  expect(g.run(budget)).toBe(RunExit.Halt)
  expect(g.trap(), `unexpected exception ${g.trap()?.vector}`).toBeUndefined()
}

/** Put a distinct marker at the start of each scratch frame. */
function markFrames(g: Guest): void {
  g.write32(PAGE_A, 0xaaaaaaaa)
  g.write32(PAGE_B, 0xbbbbbbbb)
  g.write32(PAGE_C, 0xcccccccc)
}

describe("page-fault error codes and CR2", () => {
  // SDM Vol. 3A 4.7 "Page-Fault Exceptions": P = 0 for a not-present translation; W/R and U/S describe the access
  it("a read through a not-present PDE or PTE faults with P=0 W=0 U=0 and CR2 = the linear address (Vol. 3A 4.7)", () => {
    const pde = protectedGuest(
      `
start:
fault:
  mov eax, [0x400123]   ; PDE 1 is not present
  hlt`,
      { paging: true }
    )
    const f = expectPageFault(pde)
    expect(f.error).toBe(0)
    expect(f.eip).toBe(pde.sym("fault"))
    expect(pde.cpu.cr2 >>> 0).toBe(0x400123)

    const pte = protectedGuest(
      `
start:
fault:
  mov eax, [${PAGE_A + 0xabc}]
  hlt`,
      { paging: true }
    )
    pte.mapPage(PAGE_A, PAGE_A, 0) // PTE P = 0
    expect(expectPageFault(pte).error).toBe(0)
    expect(pte.cpu.cr2 >>> 0).toBe(PAGE_A + 0xabc)
  })

  // SDM Vol. 3A 4.7: a not-present write from CPL 3 sets W and U, not P
  it("a ring-3 write to a not-present page faults with W|U (Vol. 3A 4.7)", () => {
    const g = protectedGuest(
      `
start:
fault:
  mov byte [0x400800], 1
  int 0x30`,
      { paging: true, cpl: 3 }
    )
    const f = expectPageFault(g)
    expect(f.error).toBe(PFEC.W | PFEC.U)
    expect(g.cpu.cr2 >>> 0).toBe(0x400800)
  })

  // SDM Vol. 3A 4.6 "Access Rights": user-mode writes need R/W = 1; error code P|W|U (4.7)
  it("a ring-3 write to a read-only user page faults with P|W|U after a read of it succeeded (Vol. 3A 4.6, 4.7)", () => {
    const g = protectedGuest(
      `
start:
  mov eax, [${PAGE_A + 0x10}]
fault:
  mov dword [${PAGE_A + 0x10}], 1
  int 0x30`,
      { paging: true, cpl: 3 }
    )
    g.mapPage(PAGE_A, PAGE_A, PTE.P | PTE.US)
    g.write32(PAGE_A + 0x10, 0x5151)
    const f = expectPageFault(g)
    expect(f.error).toBe(PFEC.P | PFEC.W | PFEC.U)
    expect(f.eip).toBe(g.sym("fault"))
    expect([f.cs, f.ss, f.esp]).toEqual([UCODE, UDATA, USTACK]) // delivered to ring 0 from ring 3
    expect(g.cpu.cr2 >>> 0).toBe(PAGE_A + 0x10)
    expect(g.cpu.getState().eax).toBe(0x5151)
    expect(g.read32(PAGE_A + 0x10)).toBe(0x5151)
  })

  // SDM Vol. 3A 4.6: user-mode access to a supervisor-mode address (U/S = 0 at either level) faults with P|U
  it("ring 3 reading a supervisor page faults with P|U, with U/S clear in the PTE or only in the PDE (Vol. 3A 4.6)", () => {
    const viaPte = protectedGuest(
      `
start:
fault:
  mov eax, [${PAGE_A}]
  int 0x30`,
      { paging: true, cpl: 3 }
    )
    viaPte.mapPage(PAGE_A, PAGE_A, PTE.P | PTE.RW)
    expect(expectPageFault(viaPte).error).toBe(PFEC.P | PFEC.U)
    expect(viaPte.cpu.cr2 >>> 0).toBe(PAGE_A)

    const viaPde = protectedGuest(
      `
start:
fault:
  mov eax, [0x400004]
  int 0x30`,
      { paging: true, cpl: 3 }
    )
    viaPde.mapPage(0x400000, PAGE_A, PTE.P | PTE.RW | PTE.US)
    viaPde.write32(viaPde.pdeAddr(0x400000), viaPde.pde(0x400000) & ~PTE.US)
    expect(expectPageFault(viaPde).error).toBe(PFEC.P | PFEC.U)
    expect(viaPde.cpu.cr2 >>> 0).toBe(0x400004)
  })

  // SDM Vol. 3A 4.6 and 4.10.2.3: a translation cached by a ring-0 access must still fault for ring 3
  it("a supervisor page read at ring 0 (TLB filled) still faults when read again after IRET to ring 3 (Vol. 3A 4.6, 4.10)", () => {
    const g = protectedGuest(
      `
start:
  mov eax, [${PAGE_A}]  ; fills the TLB at CPL 0
  mov dx, UDATA
  mov ds, dx            ; DPL 3, so IRET keeps it
  push UDATA
  push USTACK
  push 2
  push UCODE
  push user
  iretd
user:
fault:
  mov ebx, [${PAGE_A}]
  int 0x30`,
      { paging: true }
    )
    g.mapPage(PAGE_A, PAGE_A, PTE.P | PTE.RW)
    markFrames(g)
    const f = expectPageFault(g)
    expect(f.error).toBe(PFEC.P | PFEC.U)
    expect(f.eip).toBe(g.sym("fault"))
    expect(g.cpu.getState().eax).toBe(0xaaaaaaaa)
  })

  // SDM Vol. 3A 4.7: with 32-bit paging the I/D bit is not reported; a fetch fault has EIP and CR2 at the target
  it("fetching from a not-present page faults with CR2 = EIP = the target (Vol. 3A 4.7)", () => {
    const g = protectedGuest(
      `
start:
  mov eax, 0x500010
  jmp eax`,
      { paging: true }
    )
    const f = expectPageFault(g)
    expect(f.error).toBe(0)
    expect(f.eip).toBe(0x500010)
    expect(f.cs).toBe(KCODE)
    expect(g.cpu.cr2 >>> 0).toBe(0x500010)
  })
})

describe("write protection and A/D flags", () => {
  // SDM Vol. 3A 4.6.1 "Determination of Access Rights" and 2.5 CR0.WP
  it("CR0.WP=0 lets ring 0 write a read-only page; after setting WP the same write faults with P|W (Vol. 3A 4.6.1)", () => {
    const g = protectedGuest(
      `
start:
  mov dword [${PAGE_A}], 0x1234
  mov eax, cr0
  or eax, ${CR0.WP}
  mov cr0, eax          ; WP applies to every later access, cached translations included
fault:
  mov dword [${PAGE_A}], 0x5678
  hlt`,
      { paging: true }
    )
    g.mapPage(PAGE_A, PAGE_A, PTE.P | PTE.US | PTE.A | PTE.D) // read-only, already dirty
    const f = expectPageFault(g)
    expect(f.error).toBe(PFEC.P | PFEC.W)
    expect(f.eip).toBe(g.sym("fault"))
    expect(g.read32(PAGE_A)).toBe(0x1234)
    expect(g.cpu.cr2 >>> 0).toBe(PAGE_A)
  })

  // SDM Vol. 3A 4.6.1: with WP = 1 from the start, a supervisor write to a read-only page faults
  it("CR0.WP=1: a ring-0 write to a read-only page faults with P|W (Vol. 3A 4.6.1)", () => {
    const g = protectedGuest(
      `
start:
fault:
  mov byte [0x400003], 1
  hlt`,
      { paging: true, cr0: CR0.WP }
    )
    g.mapPage(0x400000, PAGE_A, PTE.P | PTE.RW | PTE.US)
    g.write32(g.pdeAddr(0x400000), g.pde(0x400000) & ~PTE.RW) // read-only at the PDE level only
    expect(expectPageFault(g).error).toBe(PFEC.P | PFEC.W)
    expect(g.cpu.cr2 >>> 0).toBe(0x400003)
  })

  // SDM Vol. 3A 4.8 "Accessed and Dirty Flags"
  it("the walk sets A in the PDE and PTE on a read, and D in the PTE on the first write (Vol. 3A 4.8)", () => {
    const g = protectedGuest(
      `
start:
  mov eax, [${PAGE_A}]
  mov dword [${PAGE_A + 4}], 1
  hlt`,
      { paging: true }
    )
    g.mapPage(PAGE_A, PAGE_A, PTE.P | PTE.RW)
    g.write32(g.pdeAddr(PAGE_A), g.pde(PAGE_A) & ~PTE.A)
    expect(g.pte(PAGE_A) & (PTE.A | PTE.D)).toBe(0)
    expect(g.run(1)).toBe(RunExit.Budget)
    expect(g.pte(PAGE_A) & (PTE.A | PTE.D)).toBe(PTE.A)
    expect(g.pde(PAGE_A) & PTE.A).toBe(PTE.A)
    expect(g.pde(PAGE_A) & PTE.D).toBe(0) // a PDE that maps a page table has no D flag to set
    expect(g.run(1)).toBe(RunExit.Budget) // the write, through the translation the read cached
    expect(g.pte(PAGE_A) & (PTE.A | PTE.D)).toBe(PTE.A | PTE.D)
    expectHalt(g)
  })

  // SDM Vol. 3A 4.3 table 4-4 and figure 4-3: a PDE with PS = 1 maps a 4 MiB page when CR4.PSE = 1
  it("CR4.PSE: a PS=1 PDE maps a 4 MiB page, and gets A and D; without PSE the PS bit is ignored (Vol. 3A 4.3)", () => {
    const source = `
start:
fault:
  mov eax, [0x812345]
  mov dword [0x81234c], 0xcafef00d
  hlt`
    const g = protectedGuest(source, { paging: true, cr4: CR4.PSE })
    g.mapLarge(0x800000, 0x400000, PTE.P | PTE.RW)
    g.write32(0x412345, 0x600df00d)
    expectHalt(g)
    expect(g.cpu.getState().eax).toBe(0x600df00d)
    expect(g.read32(0x41234c)).toBe(0xcafef00d)
    expect(g.pde(0x800000) & (PTE.A | PTE.D)).toBe(PTE.A | PTE.D)

    // CR4.PSE = 0: the same PDE points at a "page table" at 0x400000, whose entry 0x12 is zero
    const off = protectedGuest(source, { paging: true })
    off.mapLarge(0x800000, 0x400000, PTE.P | PTE.RW)
    expect(expectPageFault(off).error).toBe(0)
    expect(off.cpu.cr2 >>> 0).toBe(0x812345)
  })
})

describe("TLB maintenance", () => {
  // SDM Vol. 3A 4.10.4.1 "Operations that Invalidate TLBs and Paging-Structure Caches": INVLPG and MOV to CR3.
  // Hardware *may* keep using the old translation until then (4.10.4.4); this TLB always does, which the test relies on.
  it("a stale translation survives a PTE change until INVLPG, or until CR3 is reloaded (Vol. 3A 4.10.4.1)", () => {
    for (const flush of [`invlpg [${PAGE_A}]`, "mov edx, cr3\n  mov cr3, edx"]) {
      const g = protectedGuest(
        `
start:
  mov eax, [${PAGE_A}]              ; caches PAGE_A -> frame A
  mov dword [esi], ${PAGE_B | PTE.P | PTE.RW}
  mov ebx, [${PAGE_A}]              ; the TLB still says frame A
  ${flush}
  mov ecx, [${PAGE_A}]              ; frame B
  hlt`,
        { paging: true }
      )
      markFrames(g)
      g.cpu.r32[6] = g.pteAddr(PAGE_A) // ESI: where the PTE lives (identity-mapped)
      expectHalt(g)
      const s = g.cpu.getState()
      expect([s.eax, s.ebx, s.ecx], flush).toEqual([0xaaaaaaaa, 0xaaaaaaaa, 0xbbbbbbbb])
    }
  })

  // SDM Vol. 3A 4.10.2.4 "Global Pages" and 4.10.4.1: CR3 loads keep G=1 translations; INVLPG and CR4.PGE toggles do not
  it("with CR4.PGE a global page survives a CR3 reload but not INVLPG or a CR4.PGE toggle (Vol. 3A 4.10.2.4)", () => {
    const g = protectedGuest(
      `
start:
  mov eax, [${PAGE_A}]              ; frame A, global
  mov dword [esi], ${PAGE_B | PTE.P | PTE.RW | PTE.G}
  mov edx, cr3
  mov cr3, edx
  mov ebx, [${PAGE_A}]              ; still A: global translations survive CR3 loads
  invlpg [${PAGE_A}]
  mov ecx, [${PAGE_A}]              ; B
  mov dword [esi], ${PAGE_C | PTE.P | PTE.RW | PTE.G}
  mov edx, cr3
  mov cr3, edx
  mov edi, [${PAGE_A}]              ; still B
  mov edx, cr4
  and edx, ~${CR4.PGE}
  mov cr4, edx                      ; clearing PGE flushes everything, globals included
  or edx, ${CR4.PGE}
  mov cr4, edx
  mov ebp, [${PAGE_A}]              ; C
  hlt`,
      { paging: true, cr4: CR4.PGE }
    )
    g.mapPage(PAGE_A, PAGE_A, PTE.P | PTE.RW | PTE.G)
    markFrames(g)
    g.cpu.r32[6] = g.pteAddr(PAGE_A)
    expectHalt(g)
    const s = g.cpu.getState()
    expect([s.eax, s.ebx, s.ecx, s.edi, s.ebp]).toEqual([0xaaaaaaaa, 0xaaaaaaaa, 0xbbbbbbbb, 0xbbbbbbbb, 0xcccccccc])
  })

  // SDM Vol. 3A 4.10.2.4: the G flag is ignored while CR4.PGE = 0
  it("without CR4.PGE a G=1 translation is flushed by a CR3 reload (Vol. 3A 4.10.2.4)", () => {
    const g = protectedGuest(
      `
start:
  mov eax, [${PAGE_A}]
  mov dword [esi], ${PAGE_B | PTE.P | PTE.RW | PTE.G}
  mov edx, cr3
  mov cr3, edx
  mov ebx, [${PAGE_A}]
  hlt`,
      { paging: true }
    )
    g.mapPage(PAGE_A, PAGE_A, PTE.P | PTE.RW | PTE.G)
    markFrames(g)
    g.cpu.r32[6] = g.pteAddr(PAGE_A)
    expectHalt(g)
    expect([g.cpu.getState().eax, g.cpu.getState().ebx]).toEqual([0xaaaaaaaa, 0xbbbbbbbb])
  })
})

describe("privilege changes under paging", () => {
  /**
   * Supervisor-only system pages: GDT/IDT/TSS, handler stubs, trap record
   * and the ring-0 stack (0x0000-0x9FFF) get U/S = 0, as an OS maps them.
   */
  const protectKernel = (g: Guest) => {
    for (let page = 0; page < KSTACK; page += 0x1000) g.mapPage(page, page, PTE.P | PTE.RW)
  }

  // SDM Vol. 3A 6.12.1 and 4.6: pushes onto the inner stack happen at the handler's privilege (supervisor accesses)
  it("an interrupt from ring 3 pushes its frame onto a supervisor-only ring-0 stack (Vol. 3A 6.12.1, 4.6)", () => {
    const g = protectedGuest(
      `
start:
  int 0x30
after:
  hlt`,
      { paging: true, cpl: 3 }
    )
    protectKernel(g)
    expect(g.run()).toBe(RunExit.Halt)
    const t = g.trap()
    expect(t?.vector).toBe(0x30)
    const f = frameOf(t!, false)
    expect([f.eip, f.cs, f.esp, f.ss]).toEqual([g.sym("after"), UCODE, USTACK, UDATA])
    expect(t!.handlerEsp).toBe(KSTACK - 20)
  })

  // SDM Vol. 3A 5.8.5 and 4.6: the call-gate stack switch writes the ring-0 stack at the new privilege
  it("a call gate from ring 3 copies its parameters onto a supervisor-only ring-0 stack (Vol. 3A 5.8.5, 4.6)", () => {
    const g = protectedGuest(
      `
start:
  push 0x77
  call 0x43:0
back:
  int 0x30
kernel:
  mov eax, [esp + 8]
  mov ebx, esp
  retf 4`,
      { paging: true, cpl: 3 }
    )
    protectKernel(g)
    g.setCallGate(0x40, KCODE, g.sym("kernel"), 3, 1)
    expect(g.run()).toBe(RunExit.Halt)
    expect(g.trap()?.vector).toBe(0x30)
    const s = g.cpu.getState()
    expect([s.eax, s.ebx]).toEqual([0x77, KSTACK - 20])
  })

  // SDM Vol. 3A 4.6: a ring-3 #PF delivered through the IDT on a fully supervisor-only kernel
  it("a ring-3 page fault is delivered to ring 0 with the kernel pages supervisor-only (Vol. 3A 4.6, 6.12.1)", () => {
    const g = protectedGuest(
      `
start:
fault:
  mov eax, [0x5000]     ; the trap record's page: supervisor-only
  int 0x30`,
      { paging: true, cpl: 3 }
    )
    protectKernel(g)
    const f = expectPageFault(g)
    expect(f.error).toBe(PFEC.P | PFEC.U)
    expect(f.eip).toBe(g.sym("fault"))
    expect(g.cpu.cr2 >>> 0).toBe(0x5000)
  })
})
