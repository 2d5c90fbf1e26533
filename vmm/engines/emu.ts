/**
 * The `emu` execution engine: pure emulation, as QEMU's TCG runs a guest
 * (Bellard, "QEMU, a Fast and Portable Dynamic Translator", USENIX 2005):
 * every guest instruction, ring 0 included, runs on a software CPU model
 * that belongs to the VM -- one `Cpu` (hw/cpu) per vCPU -- never on the
 * machine's pCPU, which only pays for it: the software CPU's cycles are
 * charged to the pCPU the scheduler gave the vCPU (the vCPU loop measures
 * time with them), and each guest instruction costs its class's cycles plus
 * the profile's `emulatedInstruction` (the emulator's own work per guest
 * instruction; hw/machine/cost-profiles.ts).
 *
 * The software CPU is a whole CPU of the VM (not a VMX guest, no host traps):
 *   memory   its "physical" address space is the VM's guest-physical space:
 *            guest RAM by the machine frame backing each guest frame
 *            (vmm/guest-memory.ts, backed on first touch as an EPT violation
 *            would; Cpu.physicalPage), so RAM accesses take the interpreter's
 *            fast TLB path; every other address goes to the VM's MMIO bus.
 *            Each vCPU has its own TLB set, kept across slices while the
 *            guest's CR0/CR3/CR4/A20 and register record stay the same
 *   ports    the VM's port bus; CPUID the VM's (no VMX bit, APIC ID = the
 *            vCPU index), as the `hw` exits answer it
 *   TSC      the VM's clock (tscOffset = guest TSC - the CPU's cycles)
 *   events   exceptions, INT n and their faults go through the guest's own
 *            IVT/IDT on that CPU, real mode included; a triple fault shuts it
 *            down and the VM ends with TripleFault
 *
 * Each slice (`run`): the VMCS guest registers (the vCPU's state record,
 * engine.ts) are loaded, the event the vCPU loop put in the VM-entry
 * interruption field is delivered, the STI / MOV SS shadow is honoured, and
 * instructions run until the slice's cycles are used (the slice already ends
 * at the next device deadline, vcpu.ts); then the registers, activity state
 * and interruptibility are stored back. The run also stops
 *   - at HLT (Halt: the loop sleeps the vCPU until an interrupt);
 *   - with "interrupt-window exiting" requested, as soon as IF = 1 outside a
 *     shadow (Cpu.stopAtInterruptWindow), so the loop injects;
 *   - after every port I/O and every MMIO access (Resume, after the VM's
 *     afterExit: A20, IPIs): a device may have raised an interrupt, reset or
 *     ended the VM, exactly the points where `hw` exits, so interrupts are
 *     injected at the same instruction boundaries relative to device
 *     accesses as in `hw` (which keeps every image's output identical).
 * Not modelled: EFLAGS.TF single-step ordering against an injected interrupt.
 */
import type { AccessSize, IoPorts, PhysicalMemory } from "../../hw/cpu/bus.ts"
import { PageKind } from "../../hw/cpu/bus.ts"
import { CostClass } from "../../hw/cpu/cost-class.ts"
import { Cpu } from "../../hw/cpu/cpu.ts"
import { type CpuState, RunExit } from "../../hw/cpu/state.ts"
import { INTR_INFO_VALID } from "../../hw/cpu/vmx/exit-reasons.ts"
import { ActivityState, Interruptibility, ProcControls, type Vmcs } from "../../hw/cpu/vmx/vmcs.ts"
import type { Bus } from "../../hw/machine/buses.ts"
import { End, type ExitAction, type ExitContext, Halt, Resume } from "../exits/types.ts"
import type { GuestPhysical } from "../guest-memory.ts"
import type { ExecutionEngine } from "./engine.ts"
import type { HwEngineHost } from "./hw.ts"
import { injectEntryEvent } from "./invalid-guest-state.ts"

/** The costs of the emulated CPU (from the machine's cost profile). */
export interface EmuCosts {
  /** Cycles per instruction of each cost class (CostClass order). */
  readonly perClass: ReadonlyArray<number>
  readonly pageWalk: number
  readonly eventDelivery: number
  /** The emulator's own cycles per guest instruction, on top of its class cost. */
  readonly emulatedInstruction: number
}

/** What an `emu` vCPU needs from its VM. */
export interface EmuVm {
  readonly guest: GuestPhysical
  /** Machine RAM (the frames backing guest RAM are indexed in it). */
  readonly ram: Uint8Array
  readonly mmio: Bus
  readonly ports: IoPorts
  readonly costs: EmuCosts
  /** Make `vcpu` the one the VM's devices see as current (the local APIC it reaches). */
  readonly select: (vcpu: number) => void
}

const STI_OR_MOV_SS = Interruptibility.BlockingBySti | Interruptibility.BlockingByMovSs

export class EmuEngine implements ExecutionEngine {
  /** The vCPU's own software CPU. */
  readonly cpu: Cpu
  private readonly vmcs: Vmcs
  private readonly vcpu: number
  private readonly hooks: HwEngineHost
  private readonly vm: EmuVm
  /** A port or MMIO access happened in this run (the run stops after that instruction). */
  private deviceAccess = false
  /** The most expensive instruction's cycles: bounds a run to the slice's cycles. */
  private readonly perInstruction: number
  /** What the TLB's translations were made under: the register record, CR0, CR3, CR4, A20. */
  private tlbFor: { regs: CpuState | undefined; cr0: number; cr3: number; cr4: number; a20: boolean } = {
    regs: undefined,
    cr0: 0,
    cr3: 0,
    cr4: 0,
    a20: true
  }
  private readonly counters = {
    emulated_instructions: 0,
    device_accesses: 0,
    injected_events: 0,
    tlb_flushes_on_entry: 0
  }

  constructor(context: ExitContext, hooks: HwEngineHost, vm: EmuVm) {
    this.vmcs = context.vmcs
    this.vcpu = context.vcpu
    this.hooks = hooks
    this.vm = vm
    const guest = vm.guest
    const ramPages = Math.ceil(guest.ramBytes / 4096)
    const device = () => {
      this.deviceAccess = true
      this.counters.device_accesses++
      this.cpu.requestStop()
    }
    const memory: PhysicalMemory = {
      ram: vm.ram,
      // only machine frames backing guest RAM reach pageKind (Cpu.physicalPage sends the rest to the bus)
      pageKind: () => PageKind.Ram,
      read: (address: number, size: AccessSize) => {
        if (guest.contains(address, size)) return guest.readValue(address, size)
        device()
        return vm.mmio.read(address, size)
      },
      write: (address: number, size: AccessSize, value: number) => {
        if (guest.contains(address, size)) {
          guest.writeValue(address, size, value)
          return
        }
        device()
        vm.mmio.write(address, size, value)
      }
    }
    const ports: IoPorts = {
      in: (port, size) => {
        device()
        return vm.ports.in(port, size)
      },
      out: (port, size, value) => {
        device()
        vm.ports.out(port, size, value)
      }
    }
    const cpu = new Cpu(memory, ports)
    // guest RAM by its backing frame, allocated on first touch (what an EPT violation does in `hw`)
    cpu.physicalPage = (page) => (page < ramPages ? guest.frame(page, true)! : -1)
    cpu.hostTraps = false
    cpu.apicId = context.vcpu
    const costs = vm.costs
    cpu.setCosts(
      costs.perClass.map((cycles, cls) => (cls === CostClass.Prefix ? cycles : cycles + costs.emulatedInstruction)),
      costs.pageWalk
    )
    cpu.eventCost = costs.eventDelivery
    this.perInstruction = Math.max(1, cpu.maxOpCycles)
    this.cpu = cpu
  }

  stats(): Readonly<Record<string, number>> {
    return { ...this.counters }
  }

  run(pcpu: Cpu, cycles: number, guestTsc: number): ExitAction | undefined {
    const vmcs = this.vmcs
    const regs = vmcs.guest.regs
    const cpu = this.cpu
    this.vm.select(this.vcpu)
    this.load(regs, guestTsc)
    const startCycles = cpu.cycles
    const startInstructions = cpu.instructions
    this.deviceAccess = false
    let exit: RunExit = RunExit.Budget
    try {
      if ((vmcs.entry.interruptionInfo & INTR_INFO_VALID) !== 0) {
        this.counters.injected_events++
        injectEntryEvent(cpu, vmcs)
      }
      cpu.stopAtInterruptWindow = (vmcs.controls.proc & ProcControls.InterruptWindowExiting) !== 0
      const deadline = startCycles + cycles
      while (!cpu.isShutdown && !this.deviceAccess) {
        const left = deadline - cpu.cycles
        if (left <= 0) break
        exit = cpu.run(Math.max(1, Math.floor(left / this.perInstruction)))
        if (exit !== RunExit.Budget) break
      }
    } finally {
      cpu.stopAtInterruptWindow = false
      cpu.stopRequested = false
      pcpu.cycles += cpu.cycles - startCycles
      const retired = cpu.instructions - startInstructions
      this.counters.emulated_instructions += retired
      this.hooks.retired(retired)
    }
    if (vmcs.guest.regs === regs) this.store(regs)
    else this.tlbFor.regs = undefined // a device reset the VM (port 0x92, PS/2): its new state stands
    if (cpu.isShutdown) return End({ _tag: "TripleFault" })
    if (exit === RunExit.Halt || (cpu.halted && vmcs.guest.regs === regs)) {
      this.hooks.afterExit()
      return Halt
    }
    if (this.deviceAccess) {
      this.hooks.afterExit()
      return Resume
    }
    return undefined
  }

  /** The vCPU's state record into the software CPU; its TLB flushed unless made under the same paging state. */
  private load(regs: CpuState, guestTsc: number): void {
    const cpu = this.cpu
    const vmcs = this.vmcs
    cpu.loadRegisters(regs)
    const t = this.tlbFor
    if (t.regs !== regs || t.cr0 !== regs.cr0 || t.cr3 !== regs.cr3 || t.cr4 !== regs.cr4 || t.a20 !== regs.a20) {
      cpu.flushTlb(false)
      this.counters.tlb_flushes_on_entry++
    }
    cpu.tscOffset = guestTsc - cpu.cycles
    cpu.isShutdown = false
    cpu.exitCode = -1
    cpu.halted = vmcs.guest.activityState === ActivityState.Hlt
    cpu.intShadow = (vmcs.guest.interruptibility & STI_OR_MOV_SS) !== 0
    cpu.nmiBlocked = (vmcs.guest.interruptibility & Interruptibility.BlockingByNmi) !== 0
  }

  private store(regs: CpuState): void {
    const cpu = this.cpu
    const vmcs = this.vmcs
    cpu.storeRegisters(regs)
    regs.tsc = cpu.cycles + cpu.tscOffset
    regs.halted = false
    vmcs.guest.activityState = cpu.halted && !cpu.isShutdown ? ActivityState.Hlt : ActivityState.Active
    vmcs.guest.interruptibility =
      (cpu.intShadow ? Interruptibility.BlockingBySti : 0) | (cpu.nmiBlocked ? Interruptibility.BlockingByNmi : 0)
    this.tlbFor = { regs, cr0: regs.cr0, cr3: regs.cr3, cr4: regs.cr4, a20: regs.a20 }
  }
}
