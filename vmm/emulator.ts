/**
 * The instruction emulator for exits that need one (I/O, MMIO through an EPT
 * violation, MSR and CPUID accesses): like KVM's x86 emulator, but built from
 * fibervisor's own interpreter. A private software pCPU (hw/cpu, without the
 * extension, `hostTraps` on) whose "physical" memory is this VM's
 * guest-physical space: RAM through the VM's own frames (guest-memory.ts),
 * MMIO ranges to the VM's virtual devices, ports to its virtual port bus.
 * The VMM loads the guest registers, executes exactly one instruction, and
 * copies the registers back; every instruction form (read-modify-write,
 * string I/O, odd sizes, page-crossing) gets the interpreter's exact x86
 * semantics. An exception raised by that instruction (a #PF in the guest's
 * page tables, #GP) comes back as a trap for the VMM to inject.
 */
import { type AccessSize, type IoPorts, PageKind, type PhysicalMemory } from "../hw/cpu/bus.ts"
import { Cpu } from "../hw/cpu/cpu.ts"
import { type CpuState, RunExit } from "../hw/cpu/state.ts"
import type { Bus } from "../hw/machine/buses.ts"
import type { GuestPhysical } from "./guest-memory.ts"

export type EmulationResult =
  | { readonly _tag: "Done" }
  | { readonly _tag: "Trap"; readonly vector: number; readonly error: number; readonly software: boolean }
  | { readonly _tag: "Halted" }

export class InstructionEmulator {
  readonly cpu: Cpu

  constructor(guest: GuestPhysical, mmio: Bus, ports: IoPorts) {
    const memory: PhysicalMemory = {
      ram: new Uint8Array(0),
      // everything goes through read/write: guest RAM by guest frame, the rest to the VM's MMIO devices
      pageKind: () => PageKind.Mmio,
      read: (address: number, size: AccessSize) =>
        guest.contains(address, size) ? guest.readValue(address, size) : mmio.read(address, size),
      write: (address: number, size: AccessSize, value: number) => {
        if (guest.contains(address, size)) guest.writeValue(address, size, value)
        else mmio.write(address, size, value)
      }
    }
    this.cpu = new Cpu(memory, ports)
    this.cpu.hostTraps = true
  }

  /**
   * Execute the one instruction at `regs.eip` and update `regs` in place.
   * `tsc` is the guest's TSC at this point (RDTSC/RDMSR see it).
   */
  step(regs: CpuState, tsc: number): EmulationResult {
    const cpu = this.cpu
    cpu.loadRegisters(regs)
    cpu.flushTlb(false)
    cpu.tscOffset = tsc - cpu.cycles
    cpu.halted = false
    const exit = cpu.run(1)
    cpu.storeRegisters(regs)
    if (exit === RunExit.Trap) {
      return { _tag: "Trap", vector: cpu.trapVector, error: cpu.trapError, software: cpu.trapKind === 2 }
    }
    if (exit === RunExit.Halt) return { _tag: "Halted" }
    return { _tag: "Done" }
  }
}
