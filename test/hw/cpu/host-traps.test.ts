/**
 * A pCPU without the VT-x-like extension running under a hypervisor-owned
 * IDT (DESIGN.md `bt` / `pv` modes): every exception, software interrupt and
 * external interrupt returns to the caller as RunExit.Trap with vector and
 * error code, and the guest's own IDT is never consulted. Fault EIPs point
 * at the faulting instruction, INT n at the next one (SDM Vol. 3A 6.5).
 */
import { describe, expect, it } from "@effect/vitest"
import { EventKind } from "../../../hw/cpu/interrupts.ts"
import { RunExit } from "../../../hw/cpu/state.ts"
import { flatProtectedCpu } from "../../../scripts/bench/cpu.ts"
import { GUEST_CODE } from "../../../scripts/bench/guests.ts"

const start = (bytes: Array<number>) => {
  const cpu = flatProtectedCpu(4 << 20)
  cpu.hostTraps = true
  const s = cpu.getState()
  s.idtr = { base: 0x3ff000, limit: 0 } // garbage: a delivery through it would #GP and shut down
  s.esp = 0x80000
  cpu.setState(s)
  cpu.mem.ram.set(bytes, GUEST_CODE)
  return cpu
}

describe("hypervisor-owned traps (running without the extension)", () => {
  it("a fault (#UD from UD2) returns Trap with EIP at the faulting instruction", () => {
    const cpu = start([0x90, 0x0f, 0x0b])
    expect(cpu.run(10)).toBe(RunExit.Trap)
    expect(cpu.trapVector).toBe(6)
    expect(cpu.trapError).toBe(-1)
    expect(cpu.trapKind).toBe(EventKind.Exception)
    expect(cpu.eip).toBe(GUEST_CODE + 1)
  })

  it("a #GP carries its error code: selector 0x1234 (TI = 1, an LDT reference) with no LDT loaded -> #GP(0x1234)", () => {
    const cpu = start([0x66, 0xb8, 0x34, 0x12, 0x8e, 0xd8])
    expect(cpu.run(10)).toBe(RunExit.Trap)
    expect(cpu.trapVector).toBe(13)
    expect(cpu.trapError).toBe(0x1234)
    expect(cpu.eip).toBe(GUEST_CODE + 4)
  })

  it("INT 0x82 (a Xen-style hypercall gate) returns Trap with EIP after the INT", () => {
    const cpu = start([0xcd, 0x82, 0xf4])
    expect(cpu.run(10)).toBe(RunExit.Trap)
    expect(cpu.trapVector).toBe(0x82)
    expect(cpu.trapKind).toBe(EventKind.Software)
    expect(cpu.eip).toBe(GUEST_CODE + 2)
  })

  it("a page fault writes CR2 and the error code, as the hardware does before the monitor's handler runs", () => {
    // paging on, page directory all zero: any access faults not-present
    const cpu = start([0x8b, 0x05, 0x00, 0x00, 0x40, 0x00]) // mov eax, [0x400000]
    const s = cpu.getState()
    s.cr3 = 0x200000
    s.cr0 = (s.cr0 | 0x80000000) >>> 0
    // identity-map the code page only: PDE 0 -> page table at 0x201000, PTE for GUEST_CODE
    const dv = new DataView(cpu.mem.ram.buffer)
    dv.setUint32(0x200000, 0x201003, true)
    dv.setUint32(0x201000 + (GUEST_CODE >>> 12) * 4, GUEST_CODE | 3, true)
    cpu.setState(s)
    expect(cpu.run(10)).toBe(RunExit.Trap)
    expect(cpu.trapVector).toBe(14)
    expect(cpu.trapError).toBe(0)
    expect(cpu.cr2 >>> 0).toBe(0x400000)
  })

  it("an external interrupt returns Trap with the acknowledged vector, whatever the guest IDT holds", () => {
    const cpu = start([0xfb, 0x90, 0x90, 0xf4])
    cpu.acknowledge = () => 0x30
    cpu.setIntr(true)
    expect(cpu.run(10)).toBe(RunExit.Trap)
    expect(cpu.trapVector).toBe(0x30)
    expect(cpu.trapKind).toBe(EventKind.External)
    // STI's shadow: the NOP after it ran before the interrupt was taken
    expect(cpu.eip).toBe(GUEST_CODE + 2)
  })
})
