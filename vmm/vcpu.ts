/**
 * A vCPU: one world of the scheduler, running its guest on whichever pCPU
 * the scheduler picks through its execution engine (engines/engine.ts:
 * `hw` = vmenter and VM exits, `bt` = binary translation, `pv` = a
 * paravirtualized kernel making hypercalls, `emu` = a software CPU of the
 * VM). The loop of one quantum, as Firecracker's vCPU run loop:
 *
 *   bring the VM's devices (and an engine's own events: pv's timer and
 *     event channels) to the vCPU's time
 *   inject: a pending exception, else a pending interrupt if the guest can
 *     take it (IF = 1, no STI/MOV SS blocking), else ask for the interrupt
 *     window
 *   a halted vCPU with nothing to inject sleeps (the world halts; a kernel
 *     timer wakes it at the devices' next deadline, and an interrupt raised
 *     from outside its run wakes it at once: vmm/vm.ts)
 *   vmenter with the preemption timer set to the earlier of the rest of the
 *     quantum and the next device deadline (so timer interrupts arrive on
 *     time in a guest that never exits on its own)
 *   dispatch the exit (exits/dispatch.ts): resume, halt, yield or end the VM;
 *     the run's accesses to the VM's devices cost the device model's work
 *
 * Guest time is pCPU cycles converted at the machine's clock; the devices
 * read the VM's clock, which never goes backwards.
 */
import type { Cpu } from "../hw/cpu/cpu.ts"
import type { CpuState } from "../hw/cpu/state.ts"
import { INTR_INFO_VALID, InterruptionType, interruptionInfo } from "../hw/cpu/vmx/exit-reasons.ts"
import {
  ActivityState,
  cloneGuestRegisters,
  Interruptibility,
  ProcControls,
  resetGuestRegisters,
  type Vmcs
} from "../hw/cpu/vmx/vmcs.ts"
import type { NextState } from "../kernel/sched/types.ts"
import type { InstructionEmulator } from "./emulator.ts"
import type { ExecutionEngine } from "./engines/engine.ts"
import { HwEngine, type HwEngineHost } from "./engines/hw.ts"
import { stepInvalidGuestState } from "./engines/invalid-guest-state.ts"
import type { ExitContext, ExitCounters, VmEnd } from "./exits/types.ts"
import type { GuestPhysical } from "./guest-memory.ts"
import type { PcPlatform } from "./platform/pc.ts"
import { VcpuShadowPaging, type VmShadowPaging } from "./shadow/vmx-shadow-paging.ts"

/** What a vCPU needs from the VM and the host. */
export interface VcpuHost {
  readonly platform: PcPlatform
  readonly guest: GuestPhysical
  readonly emulator: InstructionEmulator
  readonly counters: ExitCounters
  /** The physical pCPU with index `pcpu` (the vmkernel's machine). */
  readonly cpuFor: (pcpu: number) => Cpu
  readonly nsOf: (cycles: number) => number
  readonly cyclesOf: (ns: number) => number
  /** Advance the VM's clock (monotonic) and return it. */
  readonly advanceClock: (ns: number) => number
  /** The VM has ended (any vCPU): every vCPU exits. */
  readonly ended: () => boolean
  /** The VM is paused: its vCPUs do not run (their worlds halt until resumed). */
  readonly paused: () => boolean
  readonly end: (end: VmEnd) => void
  /** Ask the kernel to wake this vCPU's world at virtual time `at`. */
  readonly wakeAt: (vcpu: number, at: number) => void
  /** Called after every handled exit (IPIs between vCPUs). */
  readonly afterExit: () => void
  /** Called on every VM exit before it is handled, with the exit fields still as the CPU left them (tracing). */
  readonly observeExit: (vcpu: number, vmcs: Vmcs) => void
  /** The execution engine for this vCPU (default: `hw`). */
  readonly engine?: (context: ExitContext, hooks: HwEngineHost) => ExecutionEngine
  /** `hw` mode without EPT: the VM's shadow page tables (the vCPU's exit context gets its side of them). */
  readonly shadow?: VmShadowPaging
  /** Cycles of device-model work per access to one of the VM's devices (cost profile `deviceModel`). */
  readonly deviceModelCycles?: number
}

export class Vcpu {
  readonly index: number
  readonly vmcs: Vmcs
  private readonly host: VcpuHost
  private pending: { vector: number; error: number } | undefined
  private readonly context: ExitContext
  readonly engine: ExecutionEngine
  /** Instructions this vCPU has retired in its guest. */
  instructions = 0
  /** After INIT: halted until a start-up IPI (the wait-for-SIPI state, SDM 3A 8.4). */
  waitingForSipi = false

  constructor(index: number, vmcs: Vmcs, host: VcpuHost) {
    this.index = index
    this.vmcs = vmcs
    this.host = host
    this.context = {
      vmcs,
      vcpu: index,
      guest: host.guest,
      counters: host.counters,
      emulate: () => {
        host.platform.currentVcpu = index
        const cpu = host.emulator.cpu
        cpu.apicId = index
        // the instruction exited on the pCPU (not retired there) and retires here, unless it faults
        const before = cpu.instructions
        const result = host.emulator.step(vmcs.guest.regs, vmcs.guest.regs.tsc)
        this.instructions += cpu.instructions - before
        return result
      },
      skipInstruction: () => {
        const regs = vmcs.guest.regs
        regs.eip = (regs.eip + vmcs.exit.instructionLength) >>> 0
        this.instructions++
      },
      ports: host.emulator.cpu.io,
      cpuid: () => {
        host.platform.currentVcpu = index
        host.emulator.cpu.apicId = index
        host.emulator.cpuid(vmcs.guest.regs)
      },
      injectException: (vector, error) => {
        this.pending = { vector, error }
      },
      ...(host.shadow === undefined ? {} : { shadow: new VcpuShadowPaging(host.shadow, vmcs) })
    }
    const hooks: HwEngineHost = {
      retired: (count) => {
        this.instructions += count
      },
      observeExit: (exited) => host.observeExit(index, exited),
      afterExit: () => host.afterExit(),
      emulateGuest: () => {
        host.platform.currentVcpu = index
        host.emulator.cpu.apicId = index
        return stepInvalidGuestState(host.emulator, vmcs)
      }
    }
    this.engine = host.engine?.(this.context, hooks) ?? new HwEngine(this.context, hooks)
  }

  get halted(): boolean {
    return this.vmcs.guest.activityState === ActivityState.Hlt
  }

  /** Reset to a boot state: these registers, running, nothing pending. */
  boot(registers: CpuState): void {
    this.vmcs.guest.regs = cloneGuestRegisters(registers)
    this.vmcs.guest.activityState = ActivityState.Active
    this.vmcs.guest.interruptibility = 0
    this.vmcs.entry.interruptionInfo = 0
    this.pending = undefined
    this.waitingForSipi = false
  }

  /** INIT: the vCPU's registers go to their INIT state and it waits for a start-up IPI. */
  init(): void {
    this.vmcs.guest.regs = resetGuestRegisters()
    this.vmcs.guest.activityState = ActivityState.Hlt
    this.vmcs.guest.interruptibility = 0
    this.vmcs.entry.interruptionInfo = 0
    this.pending = undefined
    this.waitingForSipi = true
  }

  /** Start-up IPI with vector v: real mode at CS = v << 8, IP = 0 (SDM 3A 8.4.4.1). */
  startup(vector: number): void {
    const regs = this.vmcs.guest.regs
    regs.cs = { selector: (vector & 0xff) << 8, base: (vector & 0xff) << 12, limit: 0xffff, access: 0x9b }
    regs.eip = 0
    this.vmcs.guest.activityState = ActivityState.Active
    this.waitingForSipi = false
  }

  /** The scheduler's world body: run for at most `budget` ns of virtual time from `start` on `pcpu`. */
  run(pcpu: number, start: number, budget: number): { used: number; next: NextState } {
    const host = this.host
    const cpu = host.cpuFor(pcpu)
    const vmcs = this.vmcs
    const startCycles = cpu.cycles
    const budgetCycles = Math.max(1, host.cyclesOf(budget))
    const elapsed = () => Math.min(budget, host.nsOf(cpu.cycles - startCycles))
    host.platform.currentVcpu = this.index
    for (;;) {
      if (host.ended()) return { used: elapsed(), next: "exited" }
      if (host.paused()) return { used: elapsed(), next: "halted" }
      const now = host.advanceClock(start + elapsed())
      const engine = this.engine
      const deadline = Math.min(host.platform.tick(now), engine.tick?.(now) ?? Number.POSITIVE_INFINITY)
      const injecting = !this.waitingForSipi && (this.prepareInjection() || engine.eventPending?.() === true)
      if (this.halted && !injecting) {
        if (Number.isFinite(deadline)) host.wakeAt(this.index, deadline)
        return { used: elapsed(), next: "halted" }
      }
      const left = budgetCycles - (cpu.cycles - startCycles)
      if (left <= 0) return { used: budget, next: "runnable" }
      // the slice also ends at the next device deadline (a PIT or LAPIC tick), so a compute-bound guest gets
      // its timer interrupts on time, not only at the end of the quantum
      const untilDevice = Number.isFinite(deadline) ? host.cyclesOf(Math.max(0, deadline - now)) : left
      // the guest's TSC follows the VM's clock, whichever pCPU it runs on (TSC offsetting, SDM 3C 26.3)
      const accesses = host.platform.ports.accesses + host.platform.mmio.accesses
      const action = this.engine.run(cpu, Math.min(left, untilDevice), host.cyclesOf(now))
      // the device models' own work for the accesses of this run, whichever way they reached them
      cpu.cycles +=
        (host.platform.ports.accesses + host.platform.mmio.accesses - accesses) * (host.deviceModelCycles ?? 0)
      if (action === undefined) continue
      switch (action._tag) {
        case "Resume":
          continue
        case "Halt":
          vmcs.guest.activityState = ActivityState.Hlt
          continue
        case "Yield":
          return { used: elapsed(), next: "runnable" }
        case "End":
          host.end(action.end)
          return { used: elapsed(), next: "exited" }
      }
    }
  }

  /** Set up event injection (or the interrupt window) for the next entry; true if an event will be injected. */
  private prepareInjection(): boolean {
    const vmcs = this.vmcs
    const entry = vmcs.entry
    vmcs.controls.proc = (vmcs.controls.proc | ProcControls.UseTscOffsetting) & ~ProcControls.InterruptWindowExiting
    if ((entry.interruptionInfo & INTR_INFO_VALID) !== 0) return true
    if (this.pending !== undefined) {
      const { vector, error } = this.pending
      this.pending = undefined
      entry.interruptionInfo = interruptionInfo(vector, InterruptionType.HardwareException, error >= 0)
      entry.exceptionErrorCode = Math.max(0, error)
      return true
    }
    if (!this.host.platform.hasInterrupt(this.index)) return false
    const blocked =
      (vmcs.guest.interruptibility & (Interruptibility.BlockingBySti | Interruptibility.BlockingByMovSs)) !== 0
    if ((vmcs.guest.regs.eflags & 0x200) !== 0 && !blocked) {
      const vector = this.host.platform.acknowledge(this.index)
      entry.interruptionInfo = interruptionInfo(vector, InterruptionType.External, false)
      return true
    }
    vmcs.controls.proc |= ProcControls.InterruptWindowExiting
    return false
  }
}
