/**
 * Instruction retirement: `cpu.instructions` counts the instructions that
 * completed. A fault-class exception (#PF, #GP, #UD ...) is reported with
 * EIP at the faulting instruction, whose execution did not complete (SDM
 * Vol. 3A 6.5 "Faults"), and an instruction that causes a VM exit does not
 * execute (SDM Vol. 3C 26.1, "Instructions That Cause VM Exits"; an EPT
 * violation is fault-like, 29.3.3): neither is retired, so an instruction
 * that exits on a first-touch EPT violation and is re-executed after the VMM
 * backs the page counts once. INT n, INT3 and INTO are trap-like: the
 * instruction completes and the event is delivered after it (EIP is the next
 * instruction), so they are retired; an INT n whose delivery faults is the
 * faulting instruction and is not. `run(budget)` still counts every
 * instruction it starts against the budget, so a guest looping on a fault
 * cannot hold it.
 */
import { describe, expect, it } from "@effect/vitest"
import { RunExit } from "../../../hw/cpu/state.ts"
import { ExitReason } from "../../../hw/cpu/vmx/exit-reasons.ts"
import { flatProtectedCpu } from "../../../scripts/bench/cpu.ts"
import { GUEST_CODE } from "../../../scripts/bench/guests.ts"
import { GDT, IDT, writeFlatGdt, writeIdtGate } from "../../../scripts/fuzz/cpu/machine.ts"
import { PTE } from "./harness.ts"
import { eptVm, GUEST_WINDOW, identityVm, Machine } from "./vmx-builder.ts"
import { expectExit, expectGuestHalt } from "./vmx-expect.ts"

/** A flat protected-mode pCPU running `bytes` at GUEST_CODE; with `hostTraps`, every event returns Trap. */
const start = (bytes: Array<number>, hostTraps: boolean) => {
  const cpu = flatProtectedCpu(4 << 20)
  cpu.hostTraps = hostTraps
  const s = cpu.getState()
  s.esp = 0x80000
  cpu.setState(s)
  cpu.mem.ram.set(bytes, GUEST_CODE)
  return cpu
}

/** Paging on with only GUEST_CODE's page mapped (identity): any other access is a not-present #PF. */
const pageOnlyCode = (cpu: ReturnType<typeof flatProtectedCpu>): void => {
  const s = cpu.getState()
  s.cr3 = 0x200000
  s.cr0 = (s.cr0 | 0x80000000) >>> 0
  const dv = new DataView(cpu.mem.ram.buffer)
  dv.setUint32(0x200000, 0x201003, true)
  dv.setUint32(0x201000 + (GUEST_CODE >>> 12) * 4, GUEST_CODE | 3, true)
  cpu.setState(s)
}

const NOP = 0x90
/** mov eax, [0x400000] */
const LOAD_UNMAPPED = [0x8b, 0x05, 0x00, 0x00, 0x40, 0x00]

describe("instruction retirement (cpu.instructions)", () => {
  it("an instruction that raises #PF is not retired (SDM 3A 6.5: EIP points at it, it did not complete)", () => {
    const cpu = start([NOP, NOP, ...LOAD_UNMAPPED], true)
    pageOnlyCode(cpu)
    expect(cpu.run(10)).toBe(RunExit.Trap)
    expect(cpu.trapVector).toBe(14)
    expect(cpu.eip).toBe(GUEST_CODE + 2)
    expect(cpu.instructions).toBe(2)
  })

  it("the same #PF delivered through the guest's IDT: only the handler's instructions follow the two NOPs", () => {
    // IDT limit 0: delivering the #PF faults (#GP), then #DF, then shutdown; nothing of it retires
    const cpu = start([NOP, NOP, ...LOAD_UNMAPPED], false)
    pageOnlyCode(cpu)
    const s = cpu.getState()
    s.idtr = { base: 0, limit: 0 }
    cpu.setState(s)
    expect(cpu.run(10)).toBe(RunExit.Shutdown)
    expect(cpu.instructions).toBe(2)
  })

  it("#GP and #UD from the one-byte and two-byte tables are not retired either", () => {
    // mov ds, ax with AX = 0x1234 (an LDT selector, no LDT): #GP(0x1234)
    const gp = start([0x66, 0xb8, 0x34, 0x12, 0x8e, 0xd8], true)
    expect(gp.run(10)).toBe(RunExit.Trap)
    expect(gp.trapVector).toBe(13)
    expect(gp.instructions).toBe(1)
    // NOP, UD2
    const ud = start([NOP, 0x0f, 0x0b], true)
    expect(ud.run(10)).toBe(RunExit.Trap)
    expect(ud.trapVector).toBe(6)
    expect(ud.instructions).toBe(1)
  })

  it("INT n is retired: it completes and the interrupt is delivered after it (EIP is the next instruction)", () => {
    const cpu = start([NOP, 0xcd, 0x82, 0xf4], true)
    expect(cpu.run(10)).toBe(RunExit.Trap)
    expect(cpu.trapVector).toBe(0x82)
    expect(cpu.eip).toBe(GUEST_CODE + 3)
    expect(cpu.instructions).toBe(2)
    // INT3 and INTO (OF = 1) alike
    const int3 = start([NOP, 0xcc], true)
    expect(int3.run(10)).toBe(RunExit.Trap)
    expect(int3.instructions).toBe(2)
    // mov al, 0x7f; add al, 1 (OF = 1); into
    const into = start([0xb0, 0x7f, 0x04, 0x01, 0xce], true)
    expect(into.run(10)).toBe(RunExit.Trap)
    expect(into.trapVector).toBe(4)
    expect(into.instructions).toBe(3)
  })

  it("an INT n whose delivery faults is the faulting instruction: not retired", () => {
    // IDT limit 0: INT 0x80's gate is past the limit, #GP(0x80 * 8 + 2) with EIP at the INT
    const cpu = start([NOP, 0xcd, 0x80], false)
    const s = cpu.getState()
    s.idtr = { base: 0, limit: 0 }
    cpu.setState(s)
    expect(cpu.run(10)).toBe(RunExit.Shutdown)
    expect(cpu.eip).toBe(GUEST_CODE + 1)
    expect(cpu.instructions).toBe(1)
  })

  it("the instruction in an interrupt shadow (after STI) that faults is not retired", () => {
    const cpu = start([0xfb, ...LOAD_UNMAPPED], true)
    pageOnlyCode(cpu)
    expect(cpu.run(10)).toBe(RunExit.Trap)
    expect(cpu.trapVector).toBe(14)
    expect(cpu.instructions).toBe(1)
  })

  it("a fault loop still ends the budget: every instruction started counts against it", () => {
    // the #PF handler is the faulting instruction itself: every delivery runs it again
    const cpu = start([...LOAD_UNMAPPED], false)
    pageOnlyCode(cpu)
    const ram = cpu.mem.ram
    writeFlatGdt(ram)
    writeIdtGate(ram, 14, GUEST_CODE)
    const s = cpu.getState()
    s.gdtr = { base: GDT, limit: 3 * 8 - 1 }
    s.idtr = { base: IDT, limit: 8 * 32 - 1 }
    cpu.setState(s)
    // identity-map the descriptor tables' page and the stack's
    const dv = new DataView(ram.buffer)
    dv.setUint32(0x201000, 0x0000 | 3, true)
    dv.setUint32(0x201000 + 0x7f * 4, 0x7f000 | 3, true)
    expect(cpu.run(100)).toBe(RunExit.Budget)
    expect(cpu.instructions).toBe(0)
    expect(cpu.cr2 >>> 0).toBe(0x400000)
  })

  it("a first-touch EPT violation exit is not retired: re-executed after the VMM maps the page, the load counts once", () => {
    const m = new Machine()
    const { vm, ept } = eptVm(
      m,
      GUEST_WINDOW,
      `
start:
  mov eax, 0x1234
insn:
  mov eax, [0x800123]
  hlt`
    )
    vm.guest.mapPage(0x800000, 0x30000, PTE.P | PTE.RW)
    ept.unmap4k(0x30000)
    const before = vm.cpu.instructions
    expectExit(vm, ExitReason.EptViolation)
    expect(vm.rip).toBe(vm.sym("insn"))
    expect(vm.cpu.instructions - before).toBe(1)
    ept.map4k(0x30000, GUEST_WINDOW + 0x30000)
    expectGuestHalt(vm)
    expect(vm.cpu.instructions - before).toBe(3) // mov, mov, hlt
  })

  it("an instruction that exits without faulting (CPUID, HLT exiting) is not retired on the pCPU", () => {
    const vm = identityVm(`
start:
  nop
  cpuid
  hlt`)
    const before = vm.cpu.instructions
    expectExit(vm, ExitReason.Cpuid)
    expect(vm.rip).toBe(vm.sym("start") + 1)
    expect(vm.cpu.instructions - before).toBe(1)
  })
})
