/**
 * Extended page tables and VPIDs on the IA-32 interpreter, one Intel SDM
 * Vol. 3C rule per test (current edition numbering: 29.1 VPIDs, 29.3 EPT,
 * 29.4 caching translation information; older editions number them 28.x):
 *
 *   - translation through 4 KiB and 2 MiB EPT pages, with guest paging off
 *     (unrestricted guest) and on (the 2-D walk) (29.3.2);
 *   - EPT violations with the qualification of table 28-7 and the
 *     guest-physical / guest-linear address fields (29.3.3.2, 28.2.1), EPT
 *     misconfigurations (29.3.3.1), accessed and dirty flags (29.3.5), the
 *     VMM fixing an entry and resuming, an EPT violation during event
 *     delivery reported as IDT-vectoring information (28.2.4);
 *   - VPID-tagged TLBs across VM switches, and the INVVPID / INVEPT
 *     equivalent `cpu.flushTlbSets` (29.1, 29.4);
 *   - isolation: two guests on one pCPU with disjoint EPTs never see each
 *     other's memory, whatever their VPIDs.
 *
 * Machine layout (vmx-builder.ts): 16 MiB; EPT tables from 0x100000; guest A's
 * 4 MiB of guest-physical memory at machine 0x400000, guest B's at 0x800000,
 * spare frames from 0xc00000. Guests are harness.ts protected-mode programs
 * with identity paging of their own 4 MiB unless a test turns paging off.
 */
import { describe, expect, it } from "@effect/vitest"
import { EptQual, ExitReason, INTR_INFO_ERROR_CODE, INTR_INFO_VALID } from "../../../hw/cpu/vmx/exit-reasons.ts"
import { Proc2Controls } from "../../../hw/cpu/vmx/vmcs.ts"
import { KSTACK, PTE } from "./harness.ts"
import {
  EPT_ACCESSED,
  EPT_DIRTY,
  EptPerm,
  type EptTables,
  eptVm,
  GUEST_WINDOW,
  Machine,
  MemType,
  tagEptp,
  tagVpid,
  tlbTag,
  type Vm
} from "./vmx-builder.ts"
import { expectExit, expectGuestHalt, expectGuestTrap } from "./vmx-expect.ts"

const GP = 13
const BASE_A = GUEST_WINDOW
const BASE_B = GUEST_WINDOW + 0x400000
const SPARE = 0xc00000
/** A guest-physical data page, and a linear page the tests map to it (the guest's identity map ends at 4 MiB). */
const PAGE = 0x30000
const LINEAR = 0x800000

/** A guest in window A of a fresh machine. */
function guestA(body: string, options: { paging?: boolean } = {}): { m: Machine; vm: Vm; ept: EptTables } {
  const m = new Machine()
  const { vm, ept } = eptVm(m, BASE_A, body, options)
  return { m, vm, ept }
}

/** The table-28-7 qualification for an access to a translated address (bits 7 and 8 set). */
const translated = (access: number, perms: number): number =>
  access | (perms << 3) | EptQual.LinearValid | EptQual.Translated

describe("EPT translation (SDM 3C 29.3.2)", () => {
  it("guest paging off (unrestricted guest), 4 KiB EPT pages: guest-physical X is machine base + X (SDM 3C 29.3.2, 26.6)", () => {
    const { m, vm, ept } = guestA(
      `
start:
  mov eax, [${PAGE + 0x10}]
  mov dword [${PAGE + 0x14}], 0x11223344
  mov ebx, [${PAGE + 0x1000}]
  hlt`,
      { paging: false }
    )
    m.write32(BASE_A + PAGE + 0x10, 0xa5a5a5a5)
    ept.map4k(PAGE + 0x1000, SPARE) // one page elsewhere
    m.write32(SPARE, 0x5ba5e)
    expectGuestHalt(vm)
    expect(vm.vmcs.guest.regs.eax).toBe(0xa5a5a5a5)
    expect(m.read32(BASE_A + PAGE + 0x14)).toBe(0x11223344)
    expect(m.read32(PAGE + 0x14), "nothing lands at the identity machine address").toBe(0)
    expect(vm.vmcs.guest.regs.ebx).toBe(0x5ba5e)
  })

  it("2 MiB EPT pages (PS in the PD entry, SDM table 29-4): the low 21 bits of the guest-physical address pass through", () => {
    const { m, vm } = guestA(
      `
start:
  mov eax, [0x1ff010]
  mov ebx, [0x234560]
  mov dword [0x234564], 0xfeed
  hlt`,
      { paging: false }
    )
    const big = m.newEpt()
    big.map2m(0, BASE_A)
    big.map2m(0x200000, SPARE)
    vm.vmcs.controls.eptPointer = big.eptp()
    m.write32(BASE_A + 0x1ff010, 0x1111)
    m.write32(SPARE + 0x34560, 0x2222)
    expectGuestHalt(vm)
    expect(vm.vmcs.guest.regs.eax).toBe(0x1111)
    expect(vm.vmcs.guest.regs.ebx).toBe(0x2222)
    expect(m.read32(SPARE + 0x34564)).toBe(0xfeed)
  })

  it("guest paging on: linear -> guest-physical by the guest's tables, then -> machine by EPT, the 2-D walk (SDM 3C 29.3.2)", () => {
    const { m, vm, ept } = guestA(`
start:
  mov eax, [${LINEAR + 0x10}]
  mov dword [${LINEAR + 0x20}], 0xc0ffee
  mov ebx, [${LINEAR + 0x1000 + 0x30}]
  hlt`)
    vm.guest.mapPage(LINEAR, PAGE, PTE.P | PTE.RW)
    vm.guest.mapPage(LINEAR + 0x1000, 0x200000, PTE.P | PTE.RW)
    ept.map4k(PAGE, SPARE)
    m.write32(SPARE + 0x10, 0x4444)
    m.write32(BASE_A + 0x200030, 0x5555)
    expectGuestHalt(vm)
    expect(vm.vmcs.guest.regs.eax).toBe(0x4444)
    expect(vm.vmcs.guest.regs.ebx).toBe(0x5555)
    expect(m.read32(SPARE + 0x20)).toBe(0xc0ffee)
    // the guest's PTE got its A and D flags, written through EPT into the guest's own memory
    const pte = m.read32(BASE_A + vm.guest.pteAddr(LINEAR))
    expect(pte & (PTE.A | PTE.D)).toBe(PTE.A | PTE.D)
  })

  it("guest paging on with a 2 MiB EPT page under a 4 KiB guest page (SDM 3C 29.3.2)", () => {
    const { m, vm } = guestA(`
start:
  mov eax, [${LINEAR + 0x44}]
  hlt`)
    vm.guest.mapPage(LINEAR, 0x3ff000, PTE.P | PTE.RW)
    const big = m.newEpt()
    big.map2m(0, BASE_A)
    big.map2m(0x200000, SPARE)
    vm.vmcs.controls.eptPointer = big.eptp()
    m.write32(SPARE + 0x1ff044, 0x6666)
    expectGuestHalt(vm)
    expect(vm.vmcs.guest.regs.eax).toBe(0x6666)
  })
})

describe("EPT violations (SDM 3C 29.3.3.2) and their qualification (table 28-7)", () => {
  const access = (insn: string): string => `
start:
  mov eax, 0x1234
insn:
  ${insn}
  hlt`

  it("a read of a not-present page: bit 0, permissions 0, linear valid, translated; GPA and GLA recorded (SDM 3C 29.3.3.2, table 28-7)", () => {
    const { vm, ept } = guestA(access(`mov eax, [${LINEAR + 0x123}]`))
    vm.guest.mapPage(LINEAR, PAGE, PTE.P | PTE.RW)
    ept.unmap4k(PAGE)
    expectExit(vm, ExitReason.EptViolation)
    expect(vm.vmcs.exit.qualification).toBe(translated(EptQual.Read, 0))
    expect(vm.vmcs.exit.guestPhysicalAddress).toBe(PAGE + 0x123)
    expect(vm.vmcs.exit.guestLinearAddress).toBe(LINEAR + 0x123)
    expect(vm.rip).toBe(vm.sym("insn"))
  })

  it("a write to a read-only page: bit 1, permissions R-X in bits 3-5; memory unchanged (SDM 3C table 28-7)", () => {
    const { m, vm, ept } = guestA(access(`mov [${LINEAR + 0x123}], eax`))
    vm.guest.mapPage(LINEAR, PAGE, PTE.P | PTE.RW)
    ept.map4k(PAGE, BASE_A + PAGE, EptPerm.RX)
    expectExit(vm, ExitReason.EptViolation)
    expect(vm.vmcs.exit.qualification).toBe(translated(EptQual.Write, EptPerm.RX))
    expect(vm.vmcs.exit.guestPhysicalAddress).toBe(PAGE + 0x123)
    expect(vm.vmcs.exit.guestLinearAddress).toBe(LINEAR + 0x123)
    expect(m.read32(BASE_A + PAGE + 0x123)).toBe(0)
  })

  it("an instruction fetch from a non-executable page: bit 2, permissions RW-; RIP at the target (SDM 3C table 28-7)", () => {
    const { vm, ept } = guestA(access(`jmp ${LINEAR + 0x40}`))
    vm.guest.mapPage(LINEAR, PAGE, PTE.P | PTE.RW)
    ept.map4k(PAGE, BASE_A + PAGE, EptPerm.RW)
    expectExit(vm, ExitReason.EptViolation)
    expect(vm.vmcs.exit.qualification).toBe(translated(EptQual.Fetch, EptPerm.RW))
    expect(vm.vmcs.exit.guestPhysicalAddress).toBe(PAGE + 0x40)
    expect(vm.vmcs.exit.guestLinearAddress).toBe(LINEAR + 0x40)
    expect(vm.rip).toBe(LINEAR + 0x40)
  })

  it("a guest page-table entry in an unmapped EPT page: bit 8 = 0 (a paging-structure access), GPA = the PTE's address (SDM 3C table 28-7)", () => {
    const { vm, ept } = guestA(access(`mov eax, [${LINEAR + 0x123}]`))
    vm.guest.mapPage(LINEAR, PAGE, PTE.P | PTE.RW)
    const pteGpa = vm.guest.pteAddr(LINEAR)
    ept.unmap4k(pteGpa)
    expectExit(vm, ExitReason.EptViolation)
    expect(vm.vmcs.exit.qualification).toBe(EptQual.Read | EptQual.LinearValid)
    expect(vm.vmcs.exit.guestPhysicalAddress).toBe(pteGpa)
    expect(vm.vmcs.exit.guestLinearAddress).toBe(LINEAR + 0x123)
    expect(vm.rip).toBe(vm.sym("insn"))
  })

  it("setting the accessed flag in a guest PTE on a read-only EPT page: a write (bit 1) to a paging structure, bit 8 = 0 (SDM 3C 29.3.3.2, table 28-7)", () => {
    const { vm, ept } = guestA(access(`mov eax, [${LINEAR + 0x123}]`))
    vm.guest.mapPage(LINEAR, PAGE, PTE.P | PTE.RW) // A = 0: the walk must set it
    const pteGpa = vm.guest.pteAddr(LINEAR)
    ept.map4k(pteGpa, BASE_A + (pteGpa & ~0xfff), EptPerm.R)
    expectExit(vm, ExitReason.EptViolation)
    expect(vm.vmcs.exit.qualification).toBe(EptQual.Write | (EptPerm.R << 3) | EptQual.LinearValid)
    expect(vm.vmcs.exit.guestPhysicalAddress).toBe(pteGpa)
  })

  it("after the VMM fixes the EPT entry and re-enters, the guest instruction completes (SDM 3C 29.3.3.2, 28.1)", () => {
    const { m, vm, ept } = guestA(access(`mov [${LINEAR + 0x123}], eax`))
    vm.guest.mapPage(LINEAR, PAGE, PTE.P | PTE.RW)
    ept.map4k(PAGE, BASE_A + PAGE, EptPerm.R)
    expectExit(vm, ExitReason.EptViolation)
    ept.map4k(PAGE, BASE_A + PAGE, EptPerm.RWX)
    expectGuestHalt(vm)
    expect(m.read32(BASE_A + PAGE + 0x123)).toBe(0x1234)

    const missing = guestA(access(`mov ebx, [${LINEAR + 0x10}]`))
    missing.vm.guest.mapPage(LINEAR, PAGE, PTE.P | PTE.RW)
    missing.ept.unmap4k(PAGE)
    expectExit(missing.vm, ExitReason.EptViolation)
    missing.ept.map4k(PAGE, SPARE) // the VMM backs the page with a fresh frame
    missing.m.write32(SPARE + 0x10, 0x7777)
    expectGuestHalt(missing.vm)
    expect(missing.vm.vmcs.guest.regs.ebx).toBe(0x7777)
  })

  it("an EPT violation while delivering an exception reports it as IDT-vectoring information; the VMM re-injects it (SDM 3C 28.2.4, 27.6)", () => {
    const { vm, ept } = guestA(`
start:
  mov ax, 0x83
insn:
  mov ds, ax            ; #GP(0x80): its frame goes on the stack below KSTACK
  hlt`)
    ept.unmap4k(KSTACK - 0x1000)
    expectExit(vm, ExitReason.EptViolation)
    expect(vm.vmcs.exit.qualification).toBe(translated(EptQual.Write, 0))
    expect(vm.vmcs.exit.guestPhysicalAddress >>> 12).toBe((KSTACK - 0x1000) >>> 12)
    expect(vm.vmcs.exit.idtVectoringInfo).toBe((INTR_INFO_VALID | INTR_INFO_ERROR_CODE | (3 << 8) | GP) >>> 0)
    expect(vm.vmcs.exit.idtVectoringErrorCode).toBe(0x80)
    expect(vm.rip).toBe(vm.sym("insn"))
    expect(vm.vmcs.guest.regs.esp).toBe(KSTACK)
    // the VMM maps the page and re-injects the event it was told about
    ept.map4k(KSTACK - 0x1000, BASE_A + KSTACK - 0x1000)
    vm.vmcs.entry.interruptionInfo = vm.vmcs.exit.idtVectoringInfo
    vm.vmcs.entry.exceptionErrorCode = vm.vmcs.exit.idtVectoringErrorCode
    const f = expectGuestTrap(vm, GP)
    expect(f.error).toBe(0x80)
    expect(f.eip).toBe(vm.sym("insn"))
  })

  it("an exit that is not during event delivery has no IDT-vectoring information (SDM 3C 28.2.4)", () => {
    const { vm, ept } = guestA(access(`mov eax, [${LINEAR}]`))
    vm.guest.mapPage(LINEAR, PAGE, PTE.P | PTE.RW)
    ept.unmap4k(PAGE)
    expectExit(vm, ExitReason.EptViolation)
    expect(vm.vmcs.exit.idtVectoringInfo & INTR_INFO_VALID).toBe(0)
  })
})

describe("EPT misconfiguration (SDM 3C 29.3.3.1)", () => {
  const reader = `
start:
insn:
  mov eax, [${PAGE + 0x123}]
  hlt`

  it("an entry that is writable but not readable is a misconfiguration (exit 49), GPA recorded (SDM 3C 29.3.3.1)", () => {
    const { vm, ept } = guestA(reader, { paging: false })
    ept.map4k(PAGE, BASE_A + PAGE, EptPerm.W)
    expectExit(vm, ExitReason.EptMisconfig)
    expect(vm.vmcs.exit.guestPhysicalAddress).toBe(PAGE + 0x123)
    expect(vm.rip).toBe(vm.sym("insn"))
  })

  it("a leaf with a reserved memory type (2, 3, 7) is a misconfiguration (SDM 3C 29.3.7)", () => {
    for (const type of [2, 3, 7]) {
      const { vm, ept } = guestA(reader, { paging: false })
      ept.map4k(PAGE, BASE_A + PAGE, EptPerm.RWX, type)
      expectExit(vm, ExitReason.EptMisconfig)
    }
    for (const type of [MemType.UC, MemType.WT, MemType.WB]) {
      const { vm, ept } = guestA(reader, { paging: false })
      ept.map4k(PAGE, BASE_A + PAGE, EptPerm.RWX, type)
      expectGuestHalt(vm)
    }
  })
})

describe("EPT accessed and dirty flags (SDM 3C 29.3.5)", () => {
  const body = `
start:
  mov eax, [${PAGE}]
  mov [${PAGE + 0x1000}], eax
  hlt`

  it("with EPTP bit 6, a read sets A in every entry of its walk, a write also sets D in the leaf (SDM 3C 29.3.5)", () => {
    const { vm, ept } = guestA(body, { paging: false })
    vm.vmcs.controls.eptPointer = ept.eptp({ ad: true })
    expectGuestHalt(vm)
    const read = ept.walkEntries(PAGE)
    expect(read).toHaveLength(4)
    for (const at of read) expect(ept.entry(at) & EPT_ACCESSED, `entry at ${at.toString(16)}`).toBe(EPT_ACCESSED)
    expect(ept.entry(ept.leaf(PAGE)) & EPT_DIRTY).toBe(0)
    for (const at of ept.walkEntries(PAGE + 0x1000)) expect(ept.entry(at) & EPT_ACCESSED).toBe(EPT_ACCESSED)
    expect(ept.entry(ept.leaf(PAGE + 0x1000)) & EPT_DIRTY).toBe(EPT_DIRTY)
    expect(ept.entry(ept.leaf(PAGE + 0x2000)) & (EPT_ACCESSED | EPT_DIRTY), "an untouched page").toBe(0)
  })

  it("without EPTP bit 6 no flag is written (SDM 3C 29.3.5)", () => {
    const { vm, ept } = guestA(body, { paging: false })
    expectGuestHalt(vm)
    for (const gpa of [PAGE, PAGE + 0x1000])
      for (const at of ept.walkEntries(gpa)) expect(ept.entry(at) & (EPT_ACCESSED | EPT_DIRTY)).toBe(0)
  })
})

describe("VPID-tagged TLBs (SDM 3C 29.1, 29.4)", () => {
  /** Touches three data pages and its code page, then VMCALLs; the VMM resumes it past the VMCALL. */
  const toucher = `
start:
  mov eax, [${PAGE}]
  mov eax, [${PAGE + 0x1000}]
  mov eax, [${PAGE + 0x2000}]
  vmcall
  jmp start`
  const PAGES_TOUCHED = 4
  /** Big enough that cycles / WALK counts the TLB fills under EPT. */
  const WALK = 1_000_000

  const twoVms = (vpidA: number, vpidB: number): { m: Machine; a: Vm; b: Vm } => {
    const m = new Machine()
    const a = eptVm(m, BASE_A, toucher, vpidA ? { vpid: vpidA } : {}).vm
    const b = eptVm(m, BASE_B, toucher, vpidB ? { vpid: vpidB } : {}).vm
    m.cpu.eptWalkCost = WALK
    return { m, a, b }
  }
  /** One round trip to the guest's VMCALL; returns how many TLB fills it took. */
  const fills = (vm: Vm): number => {
    const before = vm.cpu.cycles
    expectExit(vm, ExitReason.Vmcall)
    vm.skip()
    return Math.floor((vm.cpu.cycles - before) / WALK)
  }

  it("with VPIDs, translations cached for VM A survive running VM B: A's second run refills nothing (SDM 3C 29.1, 29.4.1)", () => {
    const { m, a, b } = twoVms(1, 2)
    expect([fills(a), fills(b), fills(a), fills(b), fills(a)]).toEqual([PAGES_TOUCHED, PAGES_TOUCHED, 0, 0, 0])
    const tags = m.cpu.tlbSets.map((s) => s.tag)
    expect(tags).toContain(tlbTag(1, a.vmcs.controls.eptPointer))
    expect(tags).toContain(tlbTag(2, b.vmcs.controls.eptPointer))
  })

  it("without VPIDs every VM entry flushes: each run refills (SDM 3C 29.4.3.1, VPID 0000H)", () => {
    const { a, b } = twoVms(0, 0)
    expect([fills(a), fills(b), fills(a), fills(b)]).toEqual(Array(4).fill(PAGES_TOUCHED))
  })

  it("'enable VPID' with VPID 0 in the VMCS is treated as no VPID: flushed on entry (SDM 3C 29.4.3.1)", () => {
    const { a, b } = twoVms(0, 0)
    a.proc2(Proc2Controls.EnableVpid)
    b.proc2(Proc2Controls.EnableVpid)
    expect([fills(a), fills(b), fills(a)]).toEqual(Array(3).fill(PAGES_TOUCHED))
  })

  it("INVVPID equivalent: flushTlbSets by VPID drops VM A's translations only (SDM 3C 29.4.3.3)", () => {
    const { m, a, b } = twoVms(1, 2)
    fills(a)
    fills(b)
    m.cpu.flushTlbSets((tag) => tagVpid(tag) === 1)
    expect(fills(a)).toBe(PAGES_TOUCHED)
    expect(fills(b)).toBe(0)
  })

  it("INVEPT equivalent: flushTlbSets by EPTP drops the translations derived from that EPT only (SDM 3C 29.4.3.3)", () => {
    const { m, a, b } = twoVms(1, 2)
    fills(a)
    fills(b)
    const eptpB = b.vmcs.controls.eptPointer
    m.cpu.flushTlbSets((tag) => tag !== 0 && tagEptp(tag) === eptpB)
    expect(fills(a)).toBe(0)
    expect(fills(b)).toBe(PAGES_TOUCHED)
  })

  it("without INVEPT a changed EPT entry is not seen through a cached translation; after it, it is (SDM 3C 29.4.3)", () => {
    const m = new Machine()
    const { vm, ept } = eptVm(
      m,
      BASE_A,
      `
start:
  mov eax, [${PAGE}]
  vmcall
  jmp start`,
      { vpid: 3 }
    )
    m.write32(BASE_A + PAGE, 0xaaaa)
    m.write32(SPARE, 0xbbbb)
    const load = (): number => {
      expectExit(vm, ExitReason.Vmcall)
      vm.skip()
      return vm.vmcs.guest.regs.eax
    }
    expect(load()).toBe(0xaaaa)
    ept.map4k(PAGE, SPARE)
    expect(load(), "stale: the tagged TLB still holds the old frame").toBe(0xaaaa)
    m.cpu.flushTlbSets((tag) => tag !== 0 && tagEptp(tag) === vm.vmcs.controls.eptPointer)
    expect(load()).toBe(0xbbbb)
  })
})

describe("isolation: two guests with disjoint EPTs on one pCPU (SDM 3C 29.3, 29.4.1)", () => {
  /** Guest-physical buffer both guests use (3 pages), and where the VMM leaves the probe address. */
  const BUF = 0x30000
  const N = 3072
  const PROBE_PTR = 0x2f000
  /**
   * Each round: write pattern(id, round, i) over BUF, yield (the other guest runs and writes its own pattern at the
   * same guest-physical addresses), read everything back counting mismatches in EBP, read [PROBE] (an address that
   * is the other guest's machine memory), yield with EBP. Registers: EBX = id (set by the VMM), ESI = round.
   */
  const program = `
start:
  inc esi
  mov edi, ${BUF}
  xor ecx, ecx
write:
  call pattern
  mov [edi + ecx*4], eax
  inc ecx
  cmp ecx, ${N}
  jb write
  vmcall                        ; yield 1: written
  xor ebp, ebp
  xor ecx, ecx
check:
  call pattern
  cmp [edi + ecx*4], eax
  je .same
  inc ebp
.same:
  inc ecx
  cmp ecx, ${N}
  jb check
  mov edx, [${PROBE_PTR}]
probe:
  mov eax, [edx]
after_probe:
  vmcall                        ; yield 2: EBP = mismatches, EAX = what the probe read
  jmp start
pattern:                        ; EAX = id << 24 | round << 12 | ECX
  mov eax, ebx
  shl eax, 24
  mov edx, esi
  shl edx, 12
  or eax, edx
  or eax, ecx
  ret`
  const pattern = (id: number, round: number, i: number): number => ((id << 24) | (round << 12) | i) >>> 0

  interface Guest {
    readonly vm: Vm
    readonly base: number
    readonly other: number
  }

  /** Run one guest to a VMCALL and resume it past it. */
  const toVmcall = (g: Guest): void => {
    expectExit(g.vm, ExitReason.Vmcall, 1_000_000)
    g.vm.skip()
  }

  /** The second half of a round: the probe must exit (EPT violation at the other's frames), then report. */
  const checkAndProbe = (g: Guest): void => {
    expectExit(g.vm, ExitReason.EptViolation, 1_000_000)
    expect(g.vm.rip).toBe(g.vm.sym("probe"))
    expect(g.vm.vmcs.exit.guestPhysicalAddress).toBe(g.other) // (with paging, LINEAR maps to gpa `other`)
    expect(g.vm.vmcs.exit.qualification & 7).toBe(EptQual.Read)
    // the VMM treats it as unbacked guest-physical memory: all-ones, and skips the load
    g.vm.vmcs.guest.regs.eax = 0xffffffff
    g.vm.vmcs.guest.regs.eip = g.vm.sym("after_probe")
    expectExit(g.vm, ExitReason.Vmcall, 1_000_000)
    g.vm.skip()
    expect(g.vm.vmcs.guest.regs.ebp, "words of its own buffer the guest did not read back").toBe(0)
  }

  const scenarios = [
    { name: "distinct VPIDs", vpids: [1, 2], paging: true },
    { name: "the same VPID misused for both (the TLB is tagged by EPTP too)", vpids: [7, 7], paging: true },
    { name: "VPIDs off", vpids: [0, 0], paging: true },
    { name: "the same VPID, guest paging off (unrestricted guests)", vpids: [5, 5], paging: false }
  ] as const

  for (const s of scenarios) {
    it(`${s.name}: neither guest ever sees the other's memory, before and after they switch roles (SDM 3C 29.3, 29.4.1)`, () => {
      const m = new Machine()
      const make = (base: number, other: number, vpid: number, id: number): Guest => {
        const { vm } = eptVm(m, base, program, { paging: s.paging, vpid, regs: { ebx: id } })
        if (s.paging) {
          vm.guest.mapPage(LINEAR, other, PTE.P | PTE.RW)
          vm.guest.write32(PROBE_PTR, LINEAR)
        } else {
          vm.guest.write32(PROBE_PTR, other)
        }
        return { vm, base, other }
      }
      const a = make(BASE_A, BASE_B, s.vpids[0], 0xa)
      const b = make(BASE_B, BASE_A, s.vpids[1], 0xb)
      const ROUNDS = 24
      for (let round = 1; round <= ROUNDS; round++) {
        const swapped = round > ROUNDS / 2
        if (round === ROUNDS / 2 + 1) {
          // switch roles: B runs first from now on, and the guests exchange ids (each now writes the other's pattern)
          a.vm.vmcs.guest.regs.ebx = 0xb
          b.vm.vmcs.guest.regs.ebx = 0xa
        }
        const [first, second] = swapped ? [b, a] : [a, b]
        toVmcall(first)
        toVmcall(second)
        checkAndProbe(first)
        checkAndProbe(second)
        // machine memory: each window holds exactly its own guest's pattern for this round
        const idA = swapped ? 0xb : 0xa
        const idB = swapped ? 0xa : 0xb
        for (let i = 0; i < N; i += 97) {
          expect(m.read32(BASE_A + BUF + i * 4)).toBe(pattern(idA, round, i))
          expect(m.read32(BASE_B + BUF + i * 4)).toBe(pattern(idB, round, i))
        }
        expect(m.read32(BASE_A + BUF + (N - 1) * 4)).toBe(pattern(idA, round, N - 1))
        expect(m.read32(BASE_B + BUF + (N - 1) * 4)).toBe(pattern(idB, round, N - 1))
      }
      // nothing was written outside the two windows' buffers at those guest-physical addresses
      expect(m.read32(BUF)).toBe(0)
      expect(m.read32(SPARE + BUF)).toBe(0)
    })
  }
})
