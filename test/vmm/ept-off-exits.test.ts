/**
 * The exit handlers of `hw` mode without EPT (vmm/shadow/vmx-shadow-paging.ts),
 * with fabricated exits as in exits.test.ts: a VMCS filled in as the pCPU
 * leaves it (Intel SDM Vol. 3C 28.2.1 qualifications: #PF linear address,
 * table 28-3 CR access, INVLPG linear address; 28.2.2 interruption
 * information; 28.2.4 IDT-vectoring), but a real guest RAM, a real shadow
 * MMU and a real instruction emulator behind the exit context, so what each
 * handler does to the guest's state and to the shadow tables is checked.
 *
 * The guest: protected mode, paging on, its page directory at 0x1000 whose
 * PDE 0 points at the page table at 0x2000, which maps linear 0-4 MiB to the
 * same guest-physical pages (P | R/W | U/S, A = D = 0) except page 7 (not
 * present), page 0xA (supervisor only) and page 8 (guest-physical
 * 0xFEE00000, outside its 16 MiB: a device).
 */
import { describe, expect, it } from "@effect/vitest"
import { CrAccessType, crQualification, ExitReason, INTR_INFO_VALID } from "../../hw/cpu/vmx/exit-reasons.ts"
import { newVmcs, resetGuestRegisters } from "../../hw/cpu/vmx/vmcs.ts"
import { Bus } from "../../hw/machine/buses.ts"
import { MemoryManager } from "../../kernel/memory/memory-manager.ts"
import { InstructionEmulator } from "../../vmm/emulator.ts"
import { dispatchExit } from "../../vmm/exits/dispatch.ts"
import { type ExitContext, newExitCounters } from "../../vmm/exits/types.ts"
import { GuestPhysical } from "../../vmm/guest-memory.ts"
import { VcpuShadowPaging, VmShadowPaging } from "../../vmm/shadow/vmx-shadow-paging.ts"
import { assemble } from "../hw/cpu/harness.ts"

const MIB = 1024 * 1024
const PF = 14
const P = 1
const W = 2
const U = 4
const CODE = 0x3000

const le32 = (n: number) => Uint8Array.of(n & 0xff, (n >>> 8) & 0xff, (n >>> 16) & 0xff, n >>> 24)

/** A guest with its page tables in place, its code (nasm, org CODE) at CODE, and an exit context over it. */
const setup = (code = "nop", options: { readonly limitFrames?: number } = {}) => {
  const mm = new MemoryManager(new Uint8Array(8 * MIB), [{ base: 0, length: 8 * MIB, type: "usable" }])
  expect(typeof mm.createPool("vm", { reservation: 0, limit: options.limitFrames ?? 4096, shares: 1000 })).toBe(
    "object"
  )
  const guest = new GuestPhysical(mm, "vm", 16 * MIB, { ept: false })
  guest.write(0x1000, le32(0x2000 | P | W | U))
  for (let page = 0; page < 1024; page++) {
    const pte =
      page === 7
        ? 0
        : page === 8
          ? 0xfee00000 | P | W | U
          : page === 0xa
            ? (page << 12) | P | W
            : (page << 12) | P | W | U
    guest.write(0x2000 + page * 4, le32(pte))
  }
  guest.write(CODE, assemble(`bits 32\norg ${CODE}\n${code}`).bytes)
  const frames = mm.shadowFrames("vm")
  if (!("allocateTable" in frames)) throw new Error("no pool")
  const paging = new VmShadowPaging(guest, frames)
  const deviceWrites: Array<string> = []
  const mmio = new Bus("mmio")
  mmio.map(0xfee00000, 0x1000, {
    name: "device",
    read: () => 0,
    write: (offset: number, size: number, value: number) => {
      deviceWrites.push(`${offset.toString(16)}/${size}=${value.toString(16)}`)
    }
  })
  const emulator = new InstructionEmulator(guest, mmio, { in: () => 0xff, out: () => {} })
  const vmcs = newVmcs()
  const regs = resetGuestRegisters()
  const flat = (access: number) => ({ selector: 0x08, base: 0, limit: 0xffffffff, access })
  regs.cr0 = 0x80000011 // PG | ET | PE
  regs.cr3 = 0x1000
  regs.cs = flat(0xc09b)
  regs.ds = regs.es = regs.ss = regs.fs = regs.gs = flat(0xc093)
  regs.eip = CODE
  regs.esp = 0x9000
  vmcs.guest.regs = regs
  const injected: Array<[number, number]> = []
  let emulated = 0
  const ctx: ExitContext = {
    vmcs,
    vcpu: 0,
    guest,
    counters: newExitCounters(),
    emulate: () => {
      emulated++
      return emulator.step(vmcs.guest.regs, 0)
    },
    skipInstruction: () => {
      vmcs.guest.regs.eip = (vmcs.guest.regs.eip + vmcs.exit.instructionLength) >>> 0
    },
    ports: { in: () => 0xff, out: () => {} },
    cpuid: () => {},
    injectException: (vector, error) => injected.push([vector, error]),
    shadow: new VcpuShadowPaging(paging, vmcs)
  }
  const ram = mm.frames.ram
  const dv = new DataView(ram.buffer)
  const root = () => paging.mmu.shadowCr3!
  return {
    mm,
    guest,
    paging,
    ctx,
    regs,
    injected,
    deviceWrites,
    emulated: () => emulated,
    /** Make the shadow of the guest's paging state current (what the engine does before vmenter). */
    activate: () => expect(ctx.shadow!.follow()).toBeUndefined(),
    /** The shadow leaf of `linear` in the current root (0: none). */
    leaf: (linear: number): number => {
      const pde = dv.getUint32(root() + (linear >>> 22) * 4, true)
      if ((pde & P) === 0) return 0
      return dv.getUint32((pde & ~0xfff) + ((linear >>> 12) & 0x3ff) * 4, true)
    },
    guest32: (gpa: number) => guest.readValue(gpa, 4),
    /** A #PF exit at `linear` with error code `error`, dispatched. */
    pageFault: (linear: number, error: number) => {
      vmcs.exit.reason = ExitReason.ExceptionOrNmi
      vmcs.exit.qualification = linear >>> 0
      vmcs.exit.interruptionInfo = (INTR_INFO_VALID | 0x800 | (3 << 8) | PF) >>> 0
      vmcs.exit.interruptionErrorCode = error
      return dispatchExit(ctx)
    },
    crAccess: (cr: number, type: number, gpr: number, length: number) => {
      vmcs.exit.reason = ExitReason.CrAccess
      vmcs.exit.qualification = crQualification(cr, type, gpr)
      vmcs.exit.instructionLength = length
      return dispatchExit(ctx)
    }
  }
}

describe("hw mode without EPT: #PF exits (SDM 3C 25.6.3, 28.2.1) on the shadow MMU", () => {
  it("a hidden fault fills the shadow from the guest's tables (A, then D on a write) and resumes", () => {
    const g = setup()
    g.activate()
    expect(g.pageFault(0x5123, 0)._tag).toBe("Resume")
    expect(g.injected).toEqual([])
    const machine = g.guest.frame(5, false)! * 4096
    expect(g.leaf(0x5000) & ~0xfff).toBe(machine)
    expect(g.leaf(0x5000) & W, "D = 0 in the guest: read-only until the first write").toBe(0)
    expect(g.guest32(0x2014) & 0x60).toBe(0x20) // A set, D clear
    expect(g.pageFault(0x5123, W | P)._tag).toBe("Resume")
    expect(g.leaf(0x5000) & W).toBe(W)
    expect(g.guest32(0x2014) & 0x60).toBe(0x60) // A and D
    expect(g.paging.stats().shadow_hidden_faults).toBe(2)
    expect(g.ctx.counters.exit_exception).toBe(2)
  })

  it("a true fault is injected with the guest's error code, and CR2 = the address (VM entry does not write CR2)", () => {
    const g = setup()
    g.activate()
    g.regs.cr2 = 0xdead0000
    expect(g.pageFault(0x7abc, W)._tag).toBe("Resume")
    expect(g.injected).toEqual([[PF, W]])
    expect(g.regs.cr2).toBe(0x7abc)
    // a user read of a supervisor page: P | U (the guest's own rights, SDM 3A 4.7)
    g.pageFault(0xa010, U)
    expect(g.injected[1]).toEqual([PF, P | U])
    expect(g.regs.cr2).toBe(0xa010)
    expect(g.paging.stats().shadow_true_faults).toBe(2)
  })

  it("a true fault during event delivery: #DF after a #PF, a triple fault after a #DF, the interrupt dropped for the #PF", () => {
    const duringPf = setup()
    duringPf.activate()
    duringPf.ctx.vmcs.entry.interruptionInfo = (INTR_INFO_VALID | 0x800 | (3 << 8) | PF) >>> 0
    duringPf.regs.cr2 = 0x1234
    expect(duringPf.pageFault(0x7000, W)._tag).toBe("Resume")
    expect(duringPf.injected).toEqual([[8, 0]])
    expect(duringPf.ctx.vmcs.entry.interruptionInfo & INTR_INFO_VALID).toBe(0)
    expect(duringPf.regs.cr2, "CR2 is written only when the #PF itself is delivered").toBe(0x1234)
    const duringDf = setup()
    duringDf.activate()
    duringDf.ctx.vmcs.entry.interruptionInfo = (INTR_INFO_VALID | 0x800 | (3 << 8) | 8) >>> 0
    expect(duringDf.pageFault(0x7000, W)).toEqual({ _tag: "End", end: { _tag: "TripleFault" } })
    const duringIrq = setup()
    duringIrq.activate()
    duringIrq.ctx.vmcs.entry.interruptionInfo = (INTR_INFO_VALID | 0x20) >>> 0
    expect(duringIrq.pageFault(0x7000, W)._tag).toBe("Resume")
    expect(duringIrq.injected).toEqual([[PF, W]])
    expect(duringIrq.ctx.vmcs.entry.interruptionInfo & INTR_INFO_VALID).toBe(0)
  })

  it("a write to a traced guest page table is emulated; the shadow leaf derived from the entry written is zapped", () => {
    const g = setup("mov [0x2014], eax\nhlt")
    g.activate()
    g.pageFault(0x5000, 0)
    expect(g.leaf(0x5000)).not.toBe(0)
    g.regs.eax = 0x9000 | P | W | U
    g.ctx.vmcs.exit.instructionLength = 0
    // the page table itself (linear 0x2000) is mapped read-only in the shadow: the write faults (P | W)
    expect(g.pageFault(0x2014, P | W)._tag).toBe("Resume")
    expect(g.emulated()).toBe(1)
    expect(g.guest32(0x2014)).toBe(0x9000 | P | W | U)
    expect(g.regs.eip).toBe(CODE + 5)
    expect(g.leaf(0x5000), "zapped: the next access refills it from the new entry").toBe(0)
    expect(g.paging.stats().shadow_traced_writes).toBe(1)
    g.pageFault(0x5000, 0)
    expect(g.leaf(0x5000) & ~0xfff).toBe(g.guest.frame(9, false)! * 4096)
  })

  it("an unaligned write across two page-table entries zaps both (any size and alignment)", () => {
    const g = setup("mov [0x2016], eax\nhlt")
    g.activate()
    g.pageFault(0x5000, 0)
    g.pageFault(0x6000, 0)
    g.pageFault(0x4000, 0)
    g.regs.eax = 0
    expect(g.pageFault(0x2016, P | W)._tag).toBe("Resume")
    expect([g.leaf(0x4000) !== 0, g.leaf(0x5000), g.leaf(0x6000)]).toEqual([true, 0, 0])
  })

  it("a guest mapping outside its RAM is MMIO: the access is emulated against the device, nothing is shadowed", () => {
    const g = setup("mov [0x8010], eax\nhlt")
    g.activate()
    g.regs.eax = 0xcafe
    expect(g.pageFault(0x8010, W)._tag).toBe("Resume")
    expect(g.deviceWrites).toEqual(["10/4=cafe"])
    expect(g.ctx.counters.exit_mmio_write).toBe(1)
    expect(g.leaf(0x8000)).toBe(0)
  })

  it("an access that must be emulated but belongs to an event's delivery ends the VM with the reason", () => {
    const g = setup()
    g.activate()
    g.ctx.vmcs.entry.interruptionInfo = (INTR_INFO_VALID | 0x20) >>> 0
    const action = g.pageFault(0x8010, W)
    expect(action._tag).toBe("End")
    if (action._tag === "End") expect(action.end).toMatchObject({ _tag: "Failed", message: /delivering an event/ })
  })
})

describe("hw mode without EPT: CR-access and INVLPG exits (SDM 3C 26.1.3, table 28-3)", () => {
  it("MOV to CR3 loads the guest's CR3 (bits 0-2, 5-11 ignored), RIP moves on, the shadow switches to its root", () => {
    const g = setup()
    g.activate()
    const before = g.paging.stats().shadow_cr3_switches!
    g.regs.ebx = 0x4fff
    expect(g.crAccess(3, CrAccessType.MovToCr, 3, 3)._tag).toBe("Resume")
    expect(g.regs.cr3).toBe(0x4018)
    expect(g.regs.eip).toBe(CODE + 3)
    expect(g.paging.stats().shadow_cr3_switches).toBe(before + 1)
    expect(g.paging.mmu.cachedRoots()).toContain(4)
    expect(g.ctx.counters.exit_cr_access).toBe(1)
  })

  it("MOV from CR3 (CR3-store exiting) reads the guest's CR3, not the shadow root", () => {
    const g = setup()
    g.activate()
    expect(g.crAccess(3, CrAccessType.MovFromCr, 1, 3)._tag).toBe("Resume")
    expect(g.regs.ecx).toBe(0x1000)
  })

  it("MOV to CR0 is carried out by the emulator on the guest's CR0: paging off -> identity shadow; PG without PE -> #GP", () => {
    const g = setup("mov cr0, eax\nhlt")
    g.activate()
    g.regs.eax = 0x11
    expect(g.crAccess(0, CrAccessType.MovToCr, 0, 3)._tag).toBe("Resume")
    expect(g.regs.cr0).toBe(0x11)
    expect(g.paging.mmu.direct).toBe(true)
    expect(g.regs.eip).toBe(CODE + 3)
    g.regs.eip = CODE
    g.regs.eax = 0x80000010
    g.crAccess(0, CrAccessType.MovToCr, 0, 3)
    expect(g.injected).toEqual([[13, 0]])
    expect(g.regs.cr0).toBe(0x11)
  })

  it("MOV to CR4 changing PSE flushes every shadow (they were built under the other rules)", () => {
    const g = setup("mov cr4, eax\nhlt")
    g.activate()
    g.pageFault(0x5000, 0)
    expect(g.leaf(0x5000)).not.toBe(0)
    g.regs.eax = 0x10
    expect(g.crAccess(4, CrAccessType.MovToCr, 0, 3)._tag).toBe("Resume")
    expect(g.regs.cr4).toBe(0x10)
    expect(g.leaf(0x5000)).toBe(0)
  })

  it("INVLPG drops the page's shadow translation and moves RIP past the instruction", () => {
    const g = setup()
    g.activate()
    g.pageFault(0x5000, 0)
    g.ctx.vmcs.exit.reason = ExitReason.Invlpg
    g.ctx.vmcs.exit.qualification = 0x5000
    g.ctx.vmcs.exit.instructionLength = 7
    expect(dispatchExit(g.ctx)._tag).toBe("Resume")
    expect(g.leaf(0x5000)).toBe(0)
    expect(g.regs.eip).toBe(CODE + 7)
    expect(g.ctx.counters.exit_invlpg).toBe(1)
  })

  it("no machine frame for a shadow root: the VM ends with that reason", () => {
    // the pool holds exactly the guest's pages written so far (PD, PT, code): nothing left for shadow tables
    const g = setup("nop", { limitFrames: 3 })
    g.regs.ebx = 0x4000
    const action = g.crAccess(3, CrAccessType.MovToCr, 3, 3)
    expect(action._tag).toBe("End")
    if (action._tag === "End")
      expect(action.end).toMatchObject({ _tag: "Failed", message: /no machine memory for shadow page tables/ })
  })

  it("with EPT (no shadow) a CR access or INVLPG exit, never requested, is emulated and counted", () => {
    const g = setup("invlpg [0x5000]\nmov cr3, ebx\nhlt")
    const { shadow: _shadow, ...withEpt } = g.ctx
    withEpt.vmcs.exit.reason = ExitReason.Invlpg
    expect(dispatchExit(withEpt)._tag).toBe("Resume")
    expect(g.emulated()).toBe(1)
    expect(g.regs.eip).toBe(CODE + 7)
    g.regs.ebx = 0x4000
    withEpt.vmcs.exit.reason = ExitReason.CrAccess
    withEpt.vmcs.exit.qualification = crQualification(3, CrAccessType.MovToCr, 3)
    expect(dispatchExit(withEpt)._tag).toBe("Resume")
    expect(g.emulated()).toBe(2)
    expect(g.regs.cr3).toBe(0x4000)
    expect([withEpt.counters.exit_invlpg, withEpt.counters.exit_cr_access]).toEqual([1, 1])
  })
})

describe("hw mode without EPT: the CRs around vmenter (vmx-shadow-paging.ts)", () => {
  it("enter gives the pCPU PE/PG/WP, the shadow root, CR4 without PSE/PGE and A20 on; leave restores the guest's, keeping guest-owned changes", () => {
    const g = setup()
    g.regs.cr4 = 0x90 // PSE | PGE
    g.regs.a20 = false
    expect(g.ctx.shadow!.enter()).toBeUndefined()
    expect(g.regs.cr0).toBe((0x80000011 | 0x10000) >>> 0)
    expect(g.regs.cr3).toBe(g.paging.mmu.shadowCr3)
    expect(g.regs.cr4).toBe(0)
    expect(g.regs.a20).toBe(true)
    expect(g.ctx.vmcs.controls.cr0ReadShadow).toBe(0x80000011)
    expect(g.ctx.vmcs.controls.cr4ReadShadow).toBe(0x90)
    g.regs.cr0 |= 8 // the guest set TS (guest-owned) while it ran
    g.ctx.shadow!.leave()
    expect([g.regs.cr0, g.regs.cr3, g.regs.cr4, g.regs.a20]).toEqual([0x80000019, 0x1000, 0x90, false])
  })

  it("the VMM's own writes to guest RAM (emulator, DMA, reload) zap shadows derived from the entries written", () => {
    const g = setup()
    g.activate()
    g.pageFault(0x5000, 0)
    expect(g.leaf(0x5000)).not.toBe(0)
    g.guest.write(0x2010, new Uint8Array(8)) // entries 4 and 5, as a virtio device's DMA would
    expect(g.leaf(0x5000)).toBe(0)
  })
})
