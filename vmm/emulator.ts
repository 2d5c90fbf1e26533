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
import { Cpu, newTlbSet } from "../hw/cpu/cpu.ts"
import { cpuid } from "../hw/cpu/ops/cpuid.ts"
import { type CpuState, RunExit } from "../hw/cpu/state.ts"
import type { Bus } from "../hw/machine/buses.ts"
import type { GuestPhysical } from "./guest-memory.ts"

export type EmulationResult =
  | { readonly _tag: "Done" }
  | { readonly _tag: "Trap"; readonly vector: number; readonly error: number; readonly software: boolean }
  | { readonly _tag: "Halted" }

/**
 * One TLB for every VM's emulator (a TLB set is a 4 MiB page-indexed array:
 * one per VM would dominate a small VM's footprint). Safe because a step
 * starts and ends with it empty: no translation survives a step, so none can
 * reach another VM's.
 */
const sharedTlb = newTlbSet(0)

const DONE: EmulationResult = { _tag: "Done" }
const HALTED: EmulationResult = { _tag: "Halted" }

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
    this.cpu = new Cpu(memory, ports, sharedTlb)
    this.cpu.hostTraps = true
  }

  /**
   * CPUID as this emulator's CPU answers it (the same leaves `step` would
   * produce, without loading the whole register file): reads EAX/ECX from
   * `regs`, writes EAX-EDX. RIP is the caller's (KVM's kvm_emulate_cpuid).
   */
  cpuid(regs: CpuState): void {
    const r = this.cpu.r32
    r[0] = regs.eax
    r[1] = regs.ecx
    r[2] = regs.edx
    r[3] = regs.ebx
    cpuid(this.cpu)
    regs.eax = r[0]! >>> 0
    regs.ecx = r[1]! >>> 0
    regs.edx = r[2]! >>> 0
    regs.ebx = r[3]! >>> 0
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
    let exit: RunExit
    try {
      exit = cpu.run(1)
    } finally {
      cpu.flushTlb(false) // leave the shared TLB empty, even when the access threw (GuestMemoryError)
    }
    if (exit === RunExit.Budget && cpu.exitCode >= 0) {
      // the instruction faulted: its trap is recorded for the next event check, which a one-instruction run
      // does not reach; it is this step's result (left pending, the next step would report it instead)
      exit = cpu.exitCode as RunExit
      cpu.exitCode = -1
    }
    cpu.storeRegisters(regs)
    if (exit === RunExit.Trap) {
      return { _tag: "Trap", vector: cpu.trapVector, error: cpu.trapError, software: cpu.trapKind === 2 }
    }
    if (exit === RunExit.Halt) return HALTED
    return DONE
  }
}
