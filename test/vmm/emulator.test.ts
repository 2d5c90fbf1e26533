/**
 * The instruction emulators of all VMs share one software TLB (vmm/emulator.ts:
 * a TLB set is 4 MiB, too much per small VM). Each step must leave it empty,
 * so a translation cached while emulating for one VM never serves another.
 */
import { describe, expect, it } from "@effect/vitest"
import { resetGuestRegisters } from "../../hw/cpu/vmx/vmcs.ts"
import { Bus } from "../../hw/machine/buses.ts"
import { MemoryManager } from "../../kernel/memory/memory-manager.ts"
import { InstructionEmulator } from "../../vmm/emulator.ts"
import { GuestPhysical } from "../../vmm/guest-memory.ts"

const MIB = 1024 * 1024

/** A VM whose guest maps linear 4-8 MiB (one PSE page) to guest-physical `dataPage`, holding `value` there. */
const vmWithMapping = (mm: MemoryManager, name: string, dataPage: number, value: number) => {
  expect(typeof mm.createPool(name, { reservation: 0, limit: 4096, shares: 1000 })).toBe("object")
  const guest = new GuestPhysical(mm, name, 16 * MIB)
  const pde = (n: number) => Uint8Array.of(n & 0xff, (n >>> 8) & 0xff, (n >>> 16) & 0xff, n >>> 24)
  guest.write(0x1000, pde(0x00000083)) // PDE 0: linear 0-4 MiB -> 0 (4 MiB page, present, writable)
  guest.write(0x1004, pde(dataPage | 0x83)) // PDE 1: linear 4-8 MiB -> dataPage
  guest.write(0x2000, Uint8Array.of(0xa0, 0x00, 0x00, 0x40, 0x00)) // mov al, [0x400000]
  guest.write(dataPage, Uint8Array.of(value))
  const emulator = new InstructionEmulator(guest, new Bus("mmio"), { in: () => 0xff, out: () => {} })
  const regs = resetGuestRegisters()
  const flat = (access: number) => ({ selector: 0x08, base: 0, limit: 0xffffffff, access })
  regs.cr0 = 0x80000011 // PG | ET | PE
  regs.cr3 = 0x1000
  regs.cr4 = 0x10 // PSE
  regs.cs = flat(0xc09b)
  regs.ds = regs.es = regs.ss = flat(0xc093)
  regs.eip = 0x2000
  return { emulator, regs }
}

describe("instruction emulator", () => {
  it("emulators of different VMs share a TLB but never each other's translations", () => {
    const mm = new MemoryManager(new Uint8Array(4 * MIB), [{ base: 0, length: 4 * MIB, type: "usable" }])
    const a = vmWithMapping(mm, "a", 0x800000, 0x11)
    const b = vmWithMapping(mm, "b", 0xc00000, 0x22)
    for (let round = 0; round < 2; round++) {
      for (const [vm, expected] of [
        [a, 0x11],
        [b, 0x22]
      ] as const) {
        vm.regs.eip = 0x2000
        expect(vm.emulator.step(vm.regs, 0)).toEqual({ _tag: "Done" })
        expect(vm.regs.eax & 0xff).toBe(expected)
        expect(vm.emulator.cpu.tlbCount).toBe(0)
      }
    }
  })

  it("an instruction that faults is reported as that step's trap, and the next step starts clean", () => {
    const mm = new MemoryManager(new Uint8Array(4 * MIB), [{ base: 0, length: 4 * MIB, type: "usable" }])
    const vm = vmWithMapping(mm, "a", 0x800000, 0x11)
    vm.regs.cr3 = 0x3000 // an empty page directory: the load at 0x2000 (and its fetch) fault not-present
    expect(vm.emulator.step(vm.regs, 0)).toEqual({ _tag: "Trap", vector: 14, error: 0, software: false })
    expect(vm.regs.eip).toBe(0x2000)
    expect(vm.regs.cr2).toBe(0x2000)
    vm.regs.cr3 = 0x1000
    expect(vm.emulator.step(vm.regs, 0)).toEqual({ _tag: "Done" })
    expect(vm.regs.eax & 0xff).toBe(0x11)
  })
})
