/**
 * The EPT builder (kernel/memory/ept-builder.ts) against the real walker
 * (hw/cpu/vmx/ept.ts eptWalk, Intel SDM Vol. 3C 29.3.2): what the builder
 * maps is what the pCPU translates, unmapped gfns are EPT violations
 * (29.3.3.2), permissions and accessed/dirty flags (29.3.5) behave, and the
 * builder refuses to map any frame its VM does not own. Then the whole lazy
 * path on a real guest: EPT violation -> backGuestPage -> map -> re-enter.
 */
import { describe, expect, it } from "@effect/vitest"
import fc from "fast-check"
import { flatMemory, noPorts, type PhysicalMemory } from "../../../hw/cpu/bus.ts"
import { Cpu } from "../../../hw/cpu/cpu.ts"
import { RunExit } from "../../../hw/cpu/state.ts"
import { Access, EptOutcome, ept, eptPointerValid, eptWalk } from "../../../hw/cpu/vmx/ept.ts"
import { EptQual, ExitReason } from "../../../hw/cpu/vmx/exit-reasons.ts"
import { newVmcs, Proc2Controls, ProcControls } from "../../../hw/cpu/vmx/vmcs.ts"
import { vmenter } from "../../../hw/cpu/vmx/vmx.ts"
import { EPT_EXEC, EPT_READ, EPT_RWX, EPT_WRITE, EptBuilder } from "../../../kernel/memory/ept-builder.ts"
import { MemoryInvariantError } from "../../../kernel/memory/errors.ts"
import { FRAME_SIZE } from "../../../kernel/memory/frames.ts"
import { MemoryManager } from "../../../kernel/memory/memory-manager.ts"
import { assemble, Guest } from "../../hw/cpu/harness.ts"

const open = { reservation: 0, limit: Number.POSITIVE_INFINITY, shares: 1000 }

/** A machine of `mib` MiB of flat RAM with a memory manager over it (kernel: the first 16 frames). */
const setup = (mib = 1) => {
  const mem = flatMemory(mib << 20)
  const dv = new DataView(mem.ram.buffer)
  const mm = new MemoryManager(mem.ram, [{ base: 0, length: mem.ram.length, type: "usable" }], { firstFrames: 16 })
  return { mem, dv, mm }
}

const eptOf = (mm: MemoryManager, vm: string): EptBuilder => {
  const e = mm.ept(vm)
  if (!(e instanceof EptBuilder)) throw new Error(String(e))
  return e
}

/** eptWalk of gfn's page at `offset` for `access`: the outcome, and the machine address when Ok. */
const walk = (mem: PhysicalMemory, dv: DataView, eptp: number, gfn: number, access: number, offset = 0) => {
  const outcome = eptWalk(mem, dv, eptp, gfn * FRAME_SIZE + offset, access)
  return outcome === EptOutcome.Ok ? { outcome, machine: ept.machine, perms: ept.perms } : { outcome }
}

describe("the builder's tables, walked by the pCPU's eptWalk (SDM 3C 29.3.2)", () => {
  it("mapped gfns translate to their frames (offset preserved), in every level's index range", () => {
    const { mem, dv, mm } = setup()
    mm.createPool("vm1", open)
    const gfns = [0, 1, 0x1ff, 0x200, 0x3ffff, 0x40000, 0xc0123, 0xfffff]
    const frames = gfns.map((g) => mm.mapGuestPage("vm1", g) as number)
    const eptp = eptOf(mm, "vm1").eptp()
    expect(eptPointerValid(eptp)).toBe(true)
    gfns.forEach((g, i) => {
      expect(walk(mem, dv, eptp, g, Access.Read, 0x123)).toEqual({
        outcome: EptOutcome.Ok,
        machine: frames[i]! * FRAME_SIZE + 0x123,
        perms: EPT_RWX
      })
    })
  })

  it("unmapped gfns are EPT violations, whether their tables exist or not; unmap makes a mapped one a violation", () => {
    const { mem, dv, mm } = setup()
    mm.createPool("vm1", open)
    mm.mapGuestPage("vm1", 0x10)
    const e = eptOf(mm, "vm1")
    const eptp = e.eptp()
    for (const g of [0x11, 0x0f, 0x210, 0x40010, 0xfffff])
      expect(walk(mem, dv, eptp, g, Access.Read).outcome).toBe(EptOutcome.Violation)
    const frame = mm.guestFrame("vm1", 0x10)
    expect(e.unmap(0x10)).toBe(frame)
    expect(walk(mem, dv, eptp, 0x10, Access.Read).outcome).toBe(EptOutcome.Violation)
    expect(e.unmap(0x10)).toBeUndefined()
    expect(e.lookup(0x10)).toBeUndefined()
  })

  it("a fresh EPT (just a PML4) maps nothing: every gfn is a violation", () => {
    const { mem, dv, mm } = setup()
    mm.createPool("vm1", open)
    const eptp = eptOf(mm, "vm1").eptp()
    expect(mm.usage("vm1")).toMatchObject({ tableFrames: 1 })
    expect(walk(mem, dv, eptp, 0, Access.Read).outcome).toBe(EptOutcome.Violation)
  })

  it("leaf permissions decide (read-only, execute-only); write-without-read is refused before it can misconfigure", () => {
    const { mem, dv, mm } = setup()
    mm.createPool("vm1", open)
    const e = eptOf(mm, "vm1")
    const ro = mm.backGuestPage("vm1", 1) as number
    const xo = mm.backGuestPage("vm1", 2) as number
    e.map(1, ro, EPT_READ)
    e.map(2, xo, EPT_EXEC)
    const eptp = e.eptp()
    expect(walk(mem, dv, eptp, 1, Access.Read).outcome).toBe(EptOutcome.Ok)
    expect(walk(mem, dv, eptp, 1, Access.Write).outcome).toBe(EptOutcome.Violation)
    expect(walk(mem, dv, eptp, 1, Access.Fetch).outcome).toBe(EptOutcome.Violation)
    expect(walk(mem, dv, eptp, 2, Access.Fetch).outcome).toBe(EptOutcome.Ok)
    expect(walk(mem, dv, eptp, 2, Access.Read).outcome).toBe(EptOutcome.Violation)
    expect(() => e.map(1, ro, EPT_WRITE)).toThrow(MemoryInvariantError)
    expect(() => e.map(1, ro, EPT_WRITE | EPT_EXEC)).toThrow(/write without read/)
    expect(e.lookup(1)).toMatchObject({ frame: ro, perms: EPT_READ }) // unchanged
  })

  it("EPTP: PML4 | WB | walk length 4, and bit 6 turns on A/D flags that lookup then reports (SDM 29.3.5)", () => {
    const { mem, dv, mm } = setup()
    mm.createPool("vm1", open)
    mm.mapGuestPage("vm1", 3)
    const e = eptOf(mm, "vm1")
    expect(e.eptp()).toBe(e.root * FRAME_SIZE + 6 + (3 << 3))
    const ad = e.eptp({ accessedDirty: true })
    expect(ad).toBe(e.eptp() | 0x40)
    expect(eptPointerValid(ad)).toBe(true)
    expect(e.lookup(3)).toMatchObject({ accessed: false, dirty: false })
    walk(mem, dv, e.eptp(), 3, Access.Write) // A/D off: no flags
    expect(e.lookup(3)).toMatchObject({ accessed: false, dirty: false })
    walk(mem, dv, ad, 3, Access.Read)
    expect(e.lookup(3)).toMatchObject({ accessed: true, dirty: false })
    walk(mem, dv, ad, 3, Access.Write)
    expect(e.lookup(3)).toMatchObject({ accessed: true, dirty: true, perms: EPT_RWX })
    // the walk set A in the non-leaf entries too; the builder still finds its tables under them
    expect(walk(mem, dv, ad, 3, Access.Read, 8)).toMatchObject({ outcome: EptOutcome.Ok })
    mm.mapGuestPage("vm1", 4)
    expect(walk(mem, dv, ad, 4, Access.Read).outcome).toBe(EptOutcome.Ok)
  })
})

describe("never map a frame the VM does not own", () => {
  it("refuses free frames, another VM's frames, the kernel's frames, its own EPT tables, and aliases", () => {
    const { mm } = setup()
    mm.createPool("a", open)
    mm.createPool("b", open)
    const mine = mm.mapGuestPage("a", 0) as number
    const theirs = mm.backGuestPage("b", 0) as number
    const e = eptOf(mm, "a")
    const before = mm.usage("a")
    const free = mm.frames.allocate("kernel") as number
    mm.freeKernelFrame(free)
    expect(() => e.map(1, theirs)).toThrow(/VM a does not own machine frame/)
    expect(() => e.map(1, free)).toThrow(MemoryInvariantError)
    expect(() => e.map(1, 0)).toThrow(MemoryInvariantError) // kernel frame 0
    expect(() => e.map(1, e.root)).toThrow(/one of its own EPT tables/)
    for (const table of e.tableFrames()) expect(() => e.map(1, table)).toThrow(MemoryInvariantError)
    expect(() => e.map(1, mine)).toThrow(/already mapped at gfn 0x0/)
    expect(e.lookup(1)).toBeUndefined()
    expect(mm.usage("a")).toEqual(before)
    expect(mm.checkInvariants()).toEqual([])
  })

  it("property: any sequence of map/remap/unmap/unback agrees with a model, as eptWalk sees it", () => {
    const universe = [0, 1, 2, 0x1ff, 0x200, 0x201, 0x3ffff, 0x40000, 0x80000, 0xc0000, 0xfffff, 0x12345]
    const perms = fc.constantFrom(EPT_READ, EPT_EXEC, EPT_READ | EPT_WRITE, EPT_READ | EPT_EXEC, EPT_RWX)
    const op = fc.oneof(
      fc.record({ kind: fc.constant("map" as const), g: fc.nat(universe.length - 1), perms }),
      fc.record({ kind: fc.constant("unmap" as const), g: fc.nat(universe.length - 1) }),
      fc.record({ kind: fc.constant("unback" as const), g: fc.nat(universe.length - 1) })
    )
    fc.assert(
      fc.property(fc.array(op, { maxLength: 30 }), fc.boolean(), (ops, ad) => {
        const { mem, dv, mm } = setup()
        mm.createPool("vm1", open)
        const e = eptOf(mm, "vm1")
        const model = new Map<number, { frame: number; perms: number }>()
        for (const o of ops) {
          const gfn = universe[o.g]!
          if (o.kind === "map") {
            const frame = mm.backGuestPage("vm1", gfn) as number
            expect(e.map(gfn, frame, o.perms)).toBeUndefined()
            model.set(gfn, { frame, perms: o.perms })
          } else if (o.kind === "unmap") {
            expect(e.unmap(gfn)).toBe(model.get(gfn)?.frame)
            model.delete(gfn)
          } else {
            mm.unbackGuestPage("vm1", gfn)
            model.delete(gfn)
          }
        }
        const eptp = e.eptp({ accessedDirty: ad })
        for (const gfn of universe) {
          const m = model.get(gfn)
          for (const [access, bit] of [
            [Access.Read, EPT_READ],
            [Access.Write, EPT_WRITE],
            [Access.Fetch, EPT_EXEC]
          ] as const) {
            const r = walk(mem, dv, eptp, gfn, access, 0xabc)
            if (m !== undefined && (m.perms & bit) !== 0)
              expect(r).toEqual({ outcome: EptOutcome.Ok, machine: m.frame * FRAME_SIZE + 0xabc, perms: m.perms })
            else expect(r.outcome).toBe(EptOutcome.Violation)
          }
        }
        expect(e.mappedCount).toBe(model.size)
        expect(mm.checkInvariants()).toEqual([])
      }),
      { seed: 0x5eed, numRuns: 150 }
    )
  })
})

describe("lazy backing of a real guest through EPT violations (SDM 3C 29.3.3.2)", () => {
  it("violation at gpa -> backGuestPage -> map -> re-enter, until the guest halts; first touches read zero", () => {
    const { mem, mm } = setup(2)
    mem.ram.fill(0xee, 16 * FRAME_SIZE) // garbage everywhere a guest frame could come from
    mm.createPool("vm1", { reservation: 0, limit: 32, shares: 1000 })
    // a real-mode guest (unrestricted guest + EPT): writes one page, reads it back, reads a never-written page
    const program = assemble(`bits 16
org 0x7c00
  mov ax, 0x3000
  mov ds, ax
  mov word [0x10], 0xbeef   ; gpa 0x30010: first touch -> EPT violation
  mov bx, [0x10]            ; same page: no exit
  mov ax, 0x5000
  mov ds, ax
  mov cx, [0x20]            ; gpa 0x50020: first touch of a page never written
  hlt
`)
    // the loader backs the code page and copies the image in (as the VMM's loader will)
    const code = mm.mapGuestPage("vm1", 0x7) as number
    mem.ram.set(program.bytes, code * FRAME_SIZE + 0xc00)

    const cpu = new Cpu(mem, noPorts)
    cpu.vmxSupported = true
    const g = new Guest()
    g.enterReal(0x7c00)
    const vmcs = newVmcs()
    vmcs.guest.regs = g.cpu.getState()
    vmcs.guest.regs.ecx = 0x1234
    vmcs.controls.proc |= ProcControls.ActivateSecondaryControls
    vmcs.controls.proc2 |= Proc2Controls.EnableEpt | Proc2Controls.UnrestrictedGuest
    vmcs.controls.eptPointer = eptOf(mm, "vm1").eptp()

    const violations: Array<number> = []
    let exit = vmenter(cpu, vmcs, 10_000)
    while (exit === RunExit.VmExit && vmcs.exit.reason === ExitReason.EptViolation) {
      const gpa = vmcs.exit.guestPhysicalAddress
      violations.push(gpa)
      expect(vmcs.exit.qualification & (EptQual.Readable | EptQual.Writable | EptQual.Executable)).toBe(0)
      expect(typeof mm.mapGuestPage("vm1", gpa >>> 12)).toBe("number")
      exit = vmenter(cpu, vmcs, 10_000)
    }
    expect(exit).toBe(RunExit.Halt)
    expect(violations).toEqual([0x30010, 0x50020])
    expect(vmcs.guest.regs.ebx & 0xffff).toBe(0xbeef)
    expect(vmcs.guest.regs.ecx & 0xffff).toBe(0) // a lazily backed page reads as zeros, not the garbage
    const data = mm.guestFrame("vm1", 0x30) as number
    expect(new DataView(mem.ram.buffer).getUint16(data * FRAME_SIZE + 0x10, true)).toBe(0xbeef)
    // code + 2 data frames, and the tables (PML4, PDPT, PD, one PT: all three gfns are in the first 2 MiB)
    expect(mm.usage("vm1")).toMatchObject({ guestFrames: 3, tableFrames: 4 })
    expect(mm.checkInvariants()).toEqual([])
  })
})
