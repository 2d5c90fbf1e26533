/**
 * A virtual machine (issue 6 "VM lifecycle"): a scoped resource. Creating it
 * admits its memory pool (reservation / limit), writes its boot payload into
 * guest RAM, builds its PC platform and one VMCS per vCPU, and adds one
 * scheduler world per vCPU. Closing the scope removes the worlds and returns
 * every frame.
 *
 * The VMCS set-up follows the execution mode and `ept` (`vmcsControls`):
 *   hw            hardware assist as today's VT-x: EPT, VPID, unrestricted
 *                 guest (real-mode code runs directly), HLT and I/O exiting,
 *                 the preemption timer bounding each quantum
 *   hw, ept off   first-generation VT-x (2005): no secondary controls at all;
 *                 shadow page tables (vmm/shadow/vmx-shadow-paging.ts: CR3
 *                 load/store and INVLPG exiting, CR0/CR4 masks and read
 *                 shadows, every #PF exits), real mode stepped in the
 *                 emulator (engines/invalid-guest-state.ts)
 *   bt, trap      their own engine (vmm/engines/bt), plugged in through the
 *                 vCPU host's `engine` factory
 *   emu           its own engine too (vmm/engines/emu.ts): every instruction
 *                 on a software CPU per vCPU over the VM's guest-physical
 *                 space; no EPT, no shadow, the VMCS only a state record
 *   pv            a paravirtualized kernel (vmm/engines/pv): the
 *                 hypervisor's region, shadow page tables under its
 *                 auto-translated tables, event channels and console ring
 *
 * States: created -> running -> paused -> running -> stopped (pause removes
 * nothing: its worlds are simply held halted); reset is the guest's (PS/2 or
 * port 0x92) or the VM ends. A guest-caused condition (triple fault,
 * debug-exit, invalid state) ends only this VM, as data in `ended`.
 */
import { Effect, Metric, type Scope } from "effect"
import { PF } from "../hw/cpu/regs.ts"
import type { CpuState } from "../hw/cpu/state.ts"
import {
  cloneGuestRegisters,
  newVmcs,
  PinControls,
  Proc2Controls,
  ProcControls,
  type Vmcs,
  type VmcsControls
} from "../hw/cpu/vmx/vmcs.ts"
import type { BusDevice } from "../hw/machine/device.ts"
import { KernelHost } from "../kernel/boot.ts"
import { MachineMemory } from "../kernel/memory/service.ts"
import { Worlds } from "../kernel/sched/runtime.ts"
import type { WorldId } from "../kernel/sched/types.ts"
import { vmExits } from "../kernel/trace/metrics.ts"
import type { VmConfig } from "./config.ts"
import { InstructionEmulator } from "./emulator.ts"
import { BtEngine } from "./engines/bt/engine.ts"
import { BtMonitor, type BtOptions } from "./engines/bt/monitor.ts"
import { EmuEngine, type EmuVm } from "./engines/emu.ts"
import { PvDomain } from "./engines/pv/domain.ts"
import { PvEngine } from "./engines/pv/engine.ts"
import { MONITOR_PDE_INDEX, PvRegion } from "./engines/pv/region.ts"
import { type ExitCounters, newExitCounters, type VmEnd } from "./exits/types.ts"
import { GuestMemoryError, GuestPhysical } from "./guest-memory.ts"
import type { PvBootInfo } from "./loader/xen-pv.ts"
import { PcPlatform } from "./platform/pc.ts"
import { CR0_HOST_OWNED, CR4_HOST_OWNED, VmShadowPaging } from "./shadow/vmx-shadow-paging.ts"
import { Vcpu } from "./vcpu.ts"

/** What a loader produced: bytes to place in guest RAM and the boot vCPU's registers. */
export interface BootPayload {
  readonly writes: ReadonlyArray<{ readonly address: number; readonly bytes: Uint8Array }>
  readonly registers: CpuState
  /** A paravirtualized kernel's domain (vmm/loader/xen-pv.ts): `pv` mode needs it, other modes refuse it. */
  readonly pv?: PvBootInfo
}

export type VmState = "created" | "running" | "paused" | "stopped"

export interface VmIo {
  /** Bytes the guest writes to COM1. */
  readonly console: (byte: number) => void
  /** Extra guest-visible port devices (base, length, device), built with the VM they belong to. */
  readonly ports?: (vm: VirtualMachine) => ReadonlyArray<readonly [number, number, BusDevice]>
  /** Tuning of the bt monitor (mode bt/trap), e.g. a small translation cache in tests. */
  readonly bt?: Pick<BtOptions, "tcBytes">
}

export class VmError extends Error {
  override readonly name = "VmError"
}

const FRAME = 4096
const MIB = 1024 * 1024
let vpidCounter = 1

export class VirtualMachine {
  readonly config: VmConfig
  readonly platform: PcPlatform
  readonly guest: GuestPhysical
  readonly counters: ExitCounters = newExitCounters()
  readonly vcpus: Array<Vcpu> = []
  readonly worlds: Array<WorldId> = []
  state: VmState = "created"
  ended: VmEnd | undefined
  private clockNs = 0
  /** Set by createVm: wakes the worlds so every vCPU sees the end. */
  onEnd: () => void = () => {}

  /** `hw` mode without EPT: the VM's shadow page tables (undefined otherwise). */
  shadow: VmShadowPaging | undefined

  /** `pv` mode: the paravirtualized domain (event channels, xenstore, grant table, block back ends). */
  pvDomain: PvDomain | undefined

  constructor(config: VmConfig, platform: PcPlatform, guest: GuestPhysical, shadow?: VmShadowPaging) {
    this.config = config
    this.platform = platform
    this.guest = guest
    this.shadow = shadow
  }

  /**
   * What the VM's execution engine counted, for the boot summary: with
   * `hw --ept off` the shadow page tables' counters (shadow_hidden_faults,
   * shadow_true_faults, shadow_traced_writes, shadow_cr3_switches...; once
   * per VM: its vCPUs share them), plus every vCPU engine's own `stats()`,
   * summed over vCPUs. Empty for `hw` mode with EPT.
   */
  engineStats(): Record<string, number> {
    const out: Record<string, number> = this.shadow?.stats() ?? {}
    for (const vcpu of this.vcpus) {
      for (const [name, value] of Object.entries(vcpu.engine.stats?.() ?? {})) out[name] = (out[name] ?? 0) + value
    }
    return out
  }

  get name(): string {
    return this.config.name
  }

  /** The VM's virtual clock (ns): follows its running vCPU, never goes backwards. */
  advanceClock(ns: number): number {
    if (ns > this.clockNs) this.clockNs = ns
    return this.clockNs
  }

  get now(): number {
    return this.clockNs
  }

  /** Wake the world of vCPU `index` (set by createVm). */
  wake: (index: number) => void = () => {}

  /**
   * Deliver what the virtual local APICs signalled since the last exit
   * (SDM 3A 8.4.4 MP initialization, 10.6 IPIs): INIT puts a vCPU into
   * wait-for-SIPI; a start-up IPI with vector v starts it in real mode at
   * v * 4096 (CS = v << 8, IP = 0); any pending interrupt wakes a halted vCPU.
   */
  serviceIpis(): void {
    this.vcpus.forEach((vcpu, i) => {
      const lapic = this.platform.lapics[i]!
      if (lapic.takeInit()) vcpu.init()
      const sipi = lapic.takeStartup()
      if (sipi !== undefined && vcpu.waitingForSipi) {
        vcpu.startup(sipi)
        this.wake(i)
      } else if (vcpu.halted && !vcpu.waitingForSipi && this.platform.hasInterrupt(i)) {
        this.wake(i)
      }
    })
  }

  /**
   * Observer of every VM exit (vCPU index, its VMCS before the exit is
   * handled): `fibervisor boot --trace` prints from here. Keep it cheap; it
   * runs inside the vCPU's quantum.
   */
  onExit: ((vcpu: number, vmcs: Vmcs) => void) | undefined = undefined

  /** Set by createVm: the boot payload, to reload on reset. */
  payload: BootPayload | undefined

  /** A20 requested by the guest's gates, applied to every vCPU after the current exit. */
  private a20Request: boolean | undefined

  setA20(enabled: boolean): void {
    this.a20Request = enabled
  }

  /** After an exit: the A20 gate reaches every vCPU's state, then IPIs are delivered. */
  afterExit(): void {
    if (this.a20Request !== undefined) {
      for (const vcpu of this.vcpus) vcpu.vmcs.guest.regs.a20 = this.a20Request
      this.a20Request = undefined
    }
    this.serviceIpis()
  }

  /** Pause: the vCPUs stop being scheduled (their worlds stay halted); nothing is released. */
  pause(): void {
    if (this.state === "running") this.state = "paused"
  }

  /** Resume a paused VM where it stopped. */
  resume(): void {
    if (this.state !== "paused") return
    this.state = "running"
    this.onEnd()
  }

  /**
   * Reset (a guest's PS/2 or port 0x92 reset, or the user's): devices to
   * their power-on state, the kernel image reloaded into guest RAM (as QEMU's
   * -kernel does on reset), the boot vCPU at its entry state, the others
   * waiting for INIT/SIPI.
   */
  reset(): void {
    if (this.ended !== undefined || this.payload === undefined) return
    this.platform.uart.reset()
    this.platform.pic.reset()
    this.platform.pit.reset()
    for (const lapic of this.platform.lapics) lapic.reset()
    for (const write of this.payload.writes) this.guest.write(write.address, write.bytes)
    this.shadow?.flush()
    for (const vcpu of this.vcpus) vcpu.engine.reset?.()
    this.vcpus.forEach((vcpu, i) => {
      if (i === 0) vcpu.boot(this.payload!.registers)
      else vcpu.init()
    })
    this.resets++
    this.onEnd()
  }

  /** Times the VM was reset. */
  resets = 0

  /** Flush any partial console line (the boot command sets it). */
  onFlush: () => void = () => {}

  /** Power off: the VM ends as if its power button were held (the caller's scope then releases it). */
  powerOff(): void {
    this.end({ _tag: "Failed", message: "powered off" })
  }

  /** End the VM (guest-caused: debug-exit, reset, triple fault, failure); only the first end counts. */
  end(end: VmEnd): void {
    if (this.ended !== undefined) return
    this.ended = end
    this.state = "stopped"
    this.onEnd()
  }

  get instructions(): number {
    return this.vcpus.reduce((sum, v) => sum + v.instructions, 0)
  }
}

/**
 * Create and start a VM from a decoded config and a boot payload. Scoped:
 * the VM lives until the scope closes.
 */
export const createVm = (
  config: VmConfig,
  payload: BootPayload,
  io: VmIo
): Effect.Effect<VirtualMachine, VmError, Scope.Scope | KernelHost | MachineMemory | Worlds> =>
  Effect.gen(function* () {
    // pv: a paravirtualized kernel on the hypervisor's region and shadow page tables (no EPT either)
    const pv = config.mode === "pv"
    if (pv !== (payload.pv !== undefined))
      return yield* Effect.fail(
        new VmError(
          pv
            ? `VM ${config.name}: mode "pv" runs paravirtualized (Xen) kernels only, and this image is not one`
            : `VM ${config.name}: the image is a paravirtualized (Xen) kernel: it runs in mode "pv" only`
        )
      )
    if (pv && config.vcpus > 1)
      return yield* Effect.fail(
        new VmError(
          `VM ${config.name}: mode "pv" runs one vCPU per domain (VCPUOP_initialise is not built), not ${config.vcpus}`
        )
      )
    const host = yield* KernelHost
    const memory = yield* MachineMemory
    const worlds = yield* Worlds
    const ramBytes = config.memoryMiB * MIB
    const ramFrames = ramBytes / FRAME
    const limitFrames = config.memory.limitMiB === null ? ramFrames + 256 : (config.memory.limitMiB * MIB) / FRAME
    const shares =
      config.cpu.shares === "high"
        ? 2000
        : config.cpu.shares === "low"
          ? 500
          : config.cpu.shares === "normal"
            ? 1000
            : config.cpu.shares
    const pool = yield* memory
      .pool(config.name, { reservation: (config.memory.reservationMiB * MIB) / FRAME, limit: limitFrames, shares })
      .pipe(Effect.mapError((e) => new VmError(`VM ${config.name}: memory: ${e.message}`)))
    // hw mode without EPT: guest frames are only backed (no EPT is built), shadow tables come from the pool
    // EPT only for hw (bt runs on a pCPU without the extension: its shadow tables are the monitor's)
    const bt = config.mode === "bt" || config.mode === "trap"
    // emu: the guest runs on the VM's own software CPUs, over guest-physical memory (no EPT, no shadow)
    const emu = config.mode === "emu"
    const ept = !bt && !emu && !pv && (config.mode !== "hw" || config.ept !== false)
    const guest = new GuestPhysical(memory.managerUnsafe, config.name, ramBytes, { ept })
    for (const write of payload.writes) {
      let placed: boolean | GuestMemoryError
      try {
        placed = guest.write(write.address, write.bytes)
      } catch (e) {
        // the host has no frame left for the image (found by fuzz suite `lifecycle`): refused, like admission
        if (!(e instanceof GuestMemoryError)) throw e
        placed = e
      }
      if (placed !== true) {
        // nothing half-started: the pool admitted above is returned at once, not when the caller's scope closes
        yield* memory.release(config.name).pipe(Effect.ignore)
        return yield* Effect.fail(
          new VmError(
            placed === false
              ? `VM ${config.name}: the image places ${write.bytes.length} bytes at 0x${write.address.toString(16)}, outside its ${config.memoryMiB} MiB of RAM`
              : `VM ${config.name}: loading the image: ${placed.message}`
          )
        )
      }
    }
    const eptp = ept
      ? yield* pool.eptp({ accessedDirty: true }).pipe(
          Effect.tapError(() => memory.release(config.name).pipe(Effect.ignore)),
          Effect.mapError((e) => new VmError(`VM ${config.name}: EPT: ${e.message}`))
        )
      : 0
    let shadow: VmShadowPaging | undefined
    if (!ept && !bt && !emu && !pv) {
      const frames = memory.managerUnsafe.shadowFrames(config.name)
      if (!("allocateTable" in frames)) {
        yield* memory.release(config.name).pipe(Effect.ignore)
        return yield* Effect.fail(new VmError(`VM ${config.name}: shadow page tables: ${frames.message}`))
      }
      shadow = new VmShadowPaging(guest, frames)
    }

    let vm: VirtualMachine | undefined
    const platform = new PcPlatform({ vcpus: config.vcpus, clock: () => vm?.now ?? 0, console: io.console })
    vm = new VirtualMachine(config, platform, guest, shadow)
    const machineVm = vm
    for (const [base, length, device] of io.ports?.(vm) ?? []) platform.addPorts(base, length, device)
    const emulator = new InstructionEmulator(guest, platform.mmio, {
      in: (port, size) => platform.ports.read(port, size),
      out: (port, size, value) => platform.ports.write(port, size, value)
    })
    const sched = yield* worlds.addVm({
      name: config.name,
      shares,
      reservation: config.cpu.reservation,
      ...(config.cpu.limit === null ? {} : { limit: config.cpu.limit })
    })
    const vpid = vpidCounter++ & 0xffff || 1
    const machine = host.machine
    const emuVm: EmuVm | undefined = emu
      ? {
          guest,
          ram: memory.managerUnsafe.frames.ram,
          mmio: platform.mmio,
          ports: emulator.cpu.io,
          costs: machine.profile,
          select: (index) => {
            platform.currentVcpu = index
          }
        }
      : undefined
    // bt (and its `trap` demonstration): the monitor region, translation cache and shadow page tables
    let monitor: BtMonitor | undefined
    if (bt) {
      const frames = memory.managerUnsafe.shadowFrames(config.name)
      const made =
        "allocateTable" in frames
          ? BtMonitor.create(guest, frames, emulator, config.vcpus, {
              ...io.bt,
              translate: config.mode === "bt"
            })
          : frames
      if (!(made instanceof BtMonitor)) {
        yield* worlds.removeVm(sched)
        yield* memory.release(config.name).pipe(Effect.ignore)
        return yield* Effect.fail(new VmError(`VM ${config.name}: bt monitor: ${made.message}`))
      }
      monitor = made
      machineVm.shadow = made.paging
    }
    let domain: PvDomain | undefined
    if (pv) {
      const frames = memory.managerUnsafe.shadowFrames(config.name)
      const region = "allocateTable" in frames ? PvRegion.create(frames, config.vcpus) : frames
      if (!(region instanceof PvRegion) || !("allocateTable" in frames)) {
        yield* worlds.removeVm(sched)
        yield* memory.release(config.name).pipe(Effect.ignore)
        const reason = region instanceof PvRegion ? "no frames" : region.message
        return yield* Effect.fail(new VmError(`VM ${config.name}: pv region: ${reason}`))
      }
      const paging = new VmShadowPaging(guest, frames, { monitorPde: { index: MONITOR_PDE_INDEX, entry: region.pde } })
      domain = new PvDomain(guest, payload.pv!, paging, region, config.vcpus, io.console)
      domain.writeTimeInfo(machine.profile.clockHz)
      machineVm.shadow = paging
      machineVm.pvDomain = domain
    }
    const pvCosts = { hypercall: machine.profile.hypercall, nsOf: (cycles: number) => machine.nsOf(cycles) }

    for (let i = 0; i < config.vcpus; i++) {
      const vmcs = newVmcs()
      vmcsControls(vmcs.controls, ept ? { eptp, vpid } : undefined)
      if (i === 0) vmcs.guest.regs = cloneGuestRegisters(payload.registers)
      const vcpu = new Vcpu(i, vmcs, {
        platform,
        guest,
        emulator,
        counters: machineVm.counters,
        cpuFor: (pcpu) => machine.cpus[pcpu]!,
        nsOf: (cycles) => machine.nsOf(cycles),
        cyclesOf: (ns) => machine.cyclesOf(ns),
        advanceClock: (ns) => machineVm.advanceClock(ns),
        ended: () => machineVm.ended !== undefined,
        paused: () => machineVm.state === "paused",
        end: (end) => machineVm.end(end),
        wakeAt: (index, at) => worlds.timerAtUnsafe(at, () => worlds.wakeUnsafe(machineVm.worlds[index]!)),
        afterExit: () => machineVm.afterExit(),
        observeExit: (index, exited) => machineVm.onExit?.(index, exited),
        deviceModelCycles: machine.profile.deviceModel,
        ...(shadow === undefined ? {} : { shadow }),
        ...(monitor === undefined ? {} : { engine: (context, hooks) => new BtEngine(monitor, context, hooks) }),
        ...(emuVm === undefined ? {} : { engine: (context, hooks) => new EmuEngine(context, hooks, emuVm) }),
        ...(domain === undefined ? {} : { engine: (context, hooks) => new PvEngine(domain, context, hooks, pvCosts) })
      })
      if (i > 0) vcpu.init() // application processors wait for INIT/SIPI
      machineVm.vcpus.push(vcpu)
      machineVm.worlds.push(
        yield* worlds.addWorld(
          sched,
          {
            run: (pcpu, start, budget) => {
              try {
                return vcpu.run(pcpu, start, budget)
              } catch (e) {
                // a guest that outgrows its memory limit ends; anything else is a hypervisor bug and propagates (panic)
                if (!(e instanceof GuestMemoryError)) throw e
                machineVm.end({ _tag: "Failed", message: e.message })
                return { used: 0, next: "exited" }
              }
            }
          },
          i === 0 ? {} : { halted: true }
        )
      )
    }
    machineVm.onEnd = () => {
      for (const w of machineVm.worlds) worlds.wakeUnsafe(w)
    }
    machineVm.wake = (index) => worlds.wakeUnsafe(machineVm.worlds[index]!)
    if (domain !== undefined) domain.onEvent = (index) => machineVm.wake(index)
    // an interrupt raised from outside the VM's own run (a frame from another VM through the vSwitch, a disk
    // completing) wakes a vCPU halted waiting for it, as the LAPIC's INTR would a real CPU in HLT
    platform.addIrqSink((_line, level) => {
      if (!level) return
      machineVm.vcpus.forEach((vcpu, i) => {
        if (vcpu.halted && !vcpu.waitingForSipi && platform.hasInterrupt(i)) machineVm.wake(i)
      })
    })
    machineVm.payload = payload
    machineVm.state = "running"
    yield* Effect.addFinalizer(() =>
      Effect.gen(function* () {
        machineVm.state = "stopped"
        yield* worlds.removeVm(sched)
        // the VM's exit counters become Effect metrics (fibervisor_vm_exits{vm, reason}), readable after the run
        for (const [reason, count] of Object.entries(machineVm.counters)) {
          if (count > 0) yield* Metric.update(Metric.withAttributes(vmExits, { vm: config.name, reason }), count)
        }
      })
    )
    return machineVm
  })

/**
 * The VM-execution controls of a `hw` vCPU (SDM 3C 25.6). Both set-ups: the
 * preemption timer (each quantum), HLT and unconditional I/O exiting, TSC
 * offsetting.
 *   `ept` given   secondary controls: EPT (this pointer), VPID, unrestricted
 *                 guest; nothing about paging or CRs exits
 *   undefined     first-generation VT-x: no secondary controls; CR3-load and
 *                 CR3-store exiting (no CR3-target values), INVLPG exiting,
 *                 CR0 PE/PG/WP and CR4 PSE/PGE host-owned (their read
 *                 shadows are set at each entry), #PF in the exception bitmap
 *                 with PFEC mask = match = 0 (every #PF exits, 26.2)
 */
export function vmcsControls(c: VmcsControls, ept: { readonly eptp: number; readonly vpid: number } | undefined): void {
  c.pin = PinControls.PreemptionTimer
  c.proc = ProcControls.HltExiting | ProcControls.UnconditionalIoExiting | ProcControls.UseTscOffsetting
  if (ept !== undefined) {
    c.proc |= ProcControls.ActivateSecondaryControls
    c.proc2 = Proc2Controls.EnableEpt | Proc2Controls.EnableVpid | Proc2Controls.UnrestrictedGuest
    c.eptPointer = ept.eptp
    c.vpid = ept.vpid
    return
  }
  c.proc |= ProcControls.Cr3LoadExiting | ProcControls.Cr3StoreExiting | ProcControls.InvlpgExiting
  c.proc2 = 0
  c.cr0GuestHostMask = CR0_HOST_OWNED
  c.cr4GuestHostMask = CR4_HOST_OWNED
  c.cr3TargetValues = []
  c.exceptionBitmap = 1 << PF
  c.pageFaultErrorCodeMask = 0
  c.pageFaultErrorCodeMatch = 0
}
