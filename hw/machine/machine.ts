/**
 * The emulated bare metal: N pCPUs, machine RAM, the firmware ROM, the
 * port-I/O and MMIO buses, the physical devices, and virtual time. Built
 * from a Schema-validated MachineConfig; plain TypeScript (no Effect).
 *
 * Virtual time (DESIGN.md "Virtual time"): `now` is in nanoseconds. A pCPU's
 * time is its simulated cycles converted at the cost profile's clock.
 * `step` runs every runnable pCPU up to the next quantum boundary or device
 * deadline (whichever is first, so timer interrupts arrive on time), then
 * ticks the devices; when every pCPU is halted with nothing to wake it,
 * time jumps straight to the next device deadline: idle costs no host time.
 * The same config, images, seed and inputs give the same run, bit for bit
 * (`stateHash` is how the tests check it).
 *
 * Interrupt wiring (PC-like): PIT OUT0 -> IRQ0, COM1 -> IRQ4, fvnic -> IRQ10,
 * fvblk -> IRQ11 on the 8259A pair, whose INTR goes to pCPU 0 (as the PIC
 * behind the BSP's LINT0 in ExtINT mode); each local APIC drives its own
 * pCPU. The vmkernel owns all of this; guests never see it.
 */
import { type IoPorts, PageKind, type PhysicalMemory } from "../cpu/bus.ts"
import { Cpu } from "../cpu/cpu.ts"
import { RunExit } from "../cpu/state.ts"
import type { BlockBackend } from "../devices/block/backend.ts"
import { Fvblk } from "../devices/block/fvblk.ts"
import { routeIpi } from "../devices/lapic/ipi.ts"
import { LocalApic } from "../devices/lapic/lapic.ts"
import { loopbackBackend, type NicBackend, noneBackend } from "../devices/nic/backends.ts"
import { Fvnic } from "../devices/nic/fvnic.ts"
import { PicPair } from "../devices/pic8259/pic-pair.ts"
import { Pit8254 } from "../devices/pit8254/pit8254.ts"
import { Uart16550, type UartBackend } from "../devices/uart16550/uart16550.ts"
import type { FirmwareDescription, FirmwareDevice } from "../firmware/description.ts"
import { encodeFirmwareTable } from "../firmware/table.ts"
import { Bus, romDevice, WiringError } from "./buses.ts"
import type { MachineConfig } from "./config.ts"
import { applyCostProfile, type CostProfile, costProfiles } from "./cost-profiles.ts"
import { dmaMemory, type IrqLine, type TimedDevice } from "./device.ts"
import { hashMachine } from "./state-hash.ts"

export const MMIO_HOLE = 0xe0000000
export const FVBLK_BASE = 0xfeb00000
export const FVNIC_BASE = 0xfeb01000
export const LAPIC_BASE = 0xfee00000
export const ROM_BASE = 0xffff0000
export const ROM_SIZE = 0x10000
export const IRQ = { pit: 0, com1: 4, nic: 10, block: 11 } as const
/** Local APIC timer input (bus clock). */
export const LAPIC_BUS_HZ = 100_000_000

/** Host-side back-ends the caller (scripts/) supplies: the real world stays outside hw/. */
export interface MachineBackends {
  /** Where COM1's transmitted bytes go (default: nowhere). */
  readonly console?: UartBackend
  /** The datastore disk; required when the config has a `block` device. */
  readonly disk?: BlockBackend
  /** Overrides the NIC back-end named in the config. */
  readonly nic?: NicBackend
}

export class Machine {
  readonly config: MachineConfig
  readonly profile: CostProfile
  readonly ram: Uint8Array
  readonly cpus: ReadonlyArray<Cpu>
  readonly lapics: ReadonlyArray<LocalApic>
  readonly ports = new Bus("port bus")
  readonly mmio = new Bus("MMIO bus")
  readonly uart: Uart16550
  readonly pic: PicPair
  /** The PIT (not on the port bus when the config's timer kind is "lapic"). */
  readonly pit: Pit8254
  readonly block: Fvblk | undefined
  readonly nic: Fvnic | undefined
  readonly firmware: Uint8Array
  readonly firmwareDescription: FirmwareDescription
  /** Machine virtual time in ns. */
  now = 0
  private readonly timed: Array<TimedDevice> = []
  private running: Cpu | undefined
  private lastClock = 0
  private picLevel = false

  constructor(config: MachineConfig, backends: MachineBackends = {}) {
    this.config = config
    this.profile = costProfiles[config.costProfile]
    const ramBytes = config.ramMiB * 1024 * 1024
    if (ramBytes > MMIO_HOLE)
      throw new WiringError(`RAM of ${config.ramMiB} MiB reaches into the MMIO hole at 0xE0000000`)
    this.ram = new Uint8Array(ramBytes)
    const clock = () => this.deviceClock()
    const irq = (line: number): IrqLine => ({ set: (level) => this.pic.setIrq(line, level) })
    const devices: Array<FirmwareDevice> = []

    this.pic = new PicPair({
      intr: {
        set: (level) => {
          this.picLevel = level
          this.refreshInterrupts()
        }
      }
    })
    this.ports.map(0x20, 2, this.pic.master)
    this.ports.map(0xa0, 2, this.pic.slave)
    this.ports.map(0x4d0, 2, this.pic.elcr)
    devices.push({ type: "pic8259", space: "port", base: 0x20, length: 2, irq: null })
    devices.push({ type: "pic8259", space: "port", base: 0xa0, length: 2, irq: null })

    // the timer choice: every P6-class pCPU has a local APIC timer; "lapic" leaves the PIT off the bus
    this.pit = new Pit8254({ clock, out0: irq(IRQ.pit) })
    if (config.timer.kind !== "lapic") {
      this.ports.map(0x40, 4, this.pit)
      this.timed.push(this.pit)
      devices.push({ type: "pit8254", space: "port", base: 0x40, length: 4, irq: IRQ.pit })
    }

    this.uart = new Uart16550({ ...(backends.console ? { backend: backends.console } : {}), irq: irq(IRQ.com1) })
    this.ports.map(0x3f8, 8, this.uart)
    this.timed.push(this.uart)
    devices.push({ type: "uart16550", space: "port", base: 0x3f8, length: 8, irq: IRQ.com1 })

    const dma = dmaMemory(this.ram)
    if (config.block !== null) {
      if (backends.disk === undefined)
        throw new WiringError(
          `the config names a datastore disk (${config.block.path}) but no disk back-end was supplied`
        )
      this.block = new Fvblk({ backend: backends.disk, dma, irq: irq(IRQ.block), clock })
      this.mmio.map(FVBLK_BASE, 0x1000, this.block)
      this.timed.push(this.block)
      devices.push({ type: "fvblk", space: "mmio", base: FVBLK_BASE, length: 0x1000, irq: IRQ.block })
    }
    const nicBackend = backends.nic ?? (config.nic.backend === "loopback" ? loopbackBackend() : noneBackend())
    this.nic = new Fvnic({ backend: nicBackend, dma, irq: irq(IRQ.nic), mac: macFromSeed(config.seed) })
    this.mmio.map(FVNIC_BASE, 0x1000, this.nic)
    devices.push({ type: "fvnic", space: "mmio", base: FVNIC_BASE, length: 0x1000, irq: IRQ.nic })

    const lapics: Array<LocalApic> = []
    const cpus: Array<Cpu> = []
    const io = this.portsFor()
    for (let i = 0; i < config.pcpus; i++) {
      const lapic = new LocalApic({ id: i, busHz: LAPIC_BUS_HZ, clock })
      lapics.push(lapic)
      this.timed.push(lapic)
      const cpu = new Cpu(this.memoryFor(lapic), io)
      cpu.apicId = i
      cpu.vmxSupported = true
      applyCostProfile(cpu, this.profile)
      cpu.acknowledge = () => this.acknowledge(i)
      cpus.push(cpu)
    }
    for (const lapic of lapics) {
      lapic.onIpi((ipi) => routeIpi(lapics, lapic, ipi))
      lapic.onWake(() => this.refreshInterrupts())
    }
    devices.push({ type: "lapic", space: "mmio", base: LAPIC_BASE, length: 0x1000, irq: null })
    this.lapics = lapics
    this.cpus = cpus

    this.firmwareDescription = {
      cpus: cpus.map((_, i) => ({ apicId: i, bootstrap: i === 0 })),
      memory: [
        { base: 0, length: ramBytes, type: "usable" },
        { base: FVBLK_BASE, length: 0x2000, type: "mmio" },
        { base: LAPIC_BASE, length: 0x1000, type: "mmio" },
        { base: ROM_BASE, length: ROM_SIZE, type: "rom" }
      ],
      devices
    }
    const table = encodeFirmwareTable(this.firmwareDescription)
    this.firmware = new Uint8Array(ROM_SIZE).fill(0xff)
    this.firmware.set(table, 0)
    this.mmio.map(ROM_BASE, ROM_SIZE, romDevice("firmware ROM", this.firmware))
  }

  // ---- buses as the pCPUs see them ----

  private memoryFor(lapic: LocalApic): PhysicalMemory {
    const ramPages = this.ram.length >>> 12
    return {
      ram: this.ram,
      pageKind: (page) => (page < ramPages ? PageKind.Ram : PageKind.Mmio),
      read: (address, size) => {
        if (address >= LAPIC_BASE && address < LAPIC_BASE + 0x1000) return lapic.read(address - LAPIC_BASE, size)
        return this.mmio.read(address, size)
      },
      write: (address, size, value) => {
        if (address >= LAPIC_BASE && address < LAPIC_BASE + 0x1000) lapic.write(address - LAPIC_BASE, size, value)
        else this.mmio.write(address, size, value)
        this.refreshInterrupts()
      }
    }
  }

  private portsFor(): IoPorts {
    return {
      in: (port, size) => {
        const v = this.ports.read(port, size)
        this.refreshInterrupts()
        return v
      },
      out: (port, size, value) => {
        this.ports.write(port, size, value)
        this.refreshInterrupts()
      }
    }
  }

  // ---- interrupts ----

  /** Drive every pCPU's INTR pin from the PIC (pCPU 0) and its local APIC. */
  refreshInterrupts(): void {
    for (let i = 0; i < this.cpus.length; i++) {
      const level = this.lapics[i]!.hasInterrupt() || (i === 0 && this.picLevel)
      this.cpus[i]!.setIntr(level)
    }
  }

  private acknowledge(i: number): number {
    const lapic = this.lapics[i]!
    const vector = lapic.hasInterrupt() ? lapic.acknowledge() : i === 0 ? this.pic.acknowledge() : 0xff
    this.refreshInterrupts()
    return vector
  }

  // ---- virtual time ----

  /** Virtual ns of `cycles` simulated cycles at the profile's clock. */
  nsOf(cycles: number): number {
    return Math.floor((cycles * 1e9) / this.profile.clockHz)
  }

  cyclesOf(ns: number): number {
    return Math.ceil((ns * this.profile.clockHz) / 1e9)
  }

  /** The time devices see: the running pCPU's time, never going backwards. */
  private deviceClock(): number {
    const t = this.running !== undefined ? this.nsOf(this.running.cycles) : this.now
    if (t > this.lastClock) this.lastClock = t
    return this.lastClock
  }

  /** Bring every device to `now`; returns the earliest next deadline (Infinity: none). */
  advanceDevices(now: number): number {
    if (now > this.now) this.now = now
    if (this.now > this.lastClock) this.lastClock = this.now
    let next = Number.POSITIVE_INFINITY
    for (const device of this.timed) next = Math.min(next, device.tick(this.lastClock))
    this.refreshInterrupts()
    return next
  }

  /** Is pCPU `i` able to execute (not halted, or halted with an interrupt to take)? */
  runnable(i: number): boolean {
    const cpu = this.cpus[i]!
    if (cpu.isShutdown) return false
    return !cpu.halted || cpu.nmiPending || (cpu.intrLine && cpu.interruptsEnabled)
  }

  /**
   * One machine quantum in root mode (raw code on the pCPUs: tests, the
   * determinism check, firmware): run each runnable pCPU, in order, up to
   * `min(now + quantumNs, next device deadline)`, then tick the devices. If
   * no pCPU can run, jump to the next deadline. Returns false when nothing
   * can ever happen again (all halted, no deadline).
   */
  step(quantumNs: number, limit = Number.POSITIVE_INFINITY): boolean {
    const next = this.advanceDevices(this.now)
    const anyRunnable = this.cpus.some((_, i) => this.runnable(i))
    if (!anyRunnable) {
      if (!Number.isFinite(next) && !Number.isFinite(limit)) return false
      const to = Math.min(next, limit)
      this.idleUntil(to)
      this.advanceDevices(to)
      return true
    }
    const target = Math.max(this.now + 1, Math.min(this.now + quantumNs, next))
    for (let i = 0; i < this.cpus.length; i++) {
      if (this.runnable(i)) this.runCpuUntil(this.cpus[i]!, target)
    }
    this.idleUntil(target)
    this.advanceDevices(target)
    return true
  }

  /** Run the machine until virtual time `until` (ns) or until nothing can happen. */
  runUntil(until: number, quantumNs = 1_000_000): void {
    while (this.now < until) {
      if (!this.step(Math.min(quantumNs, until - this.now), until)) break
    }
  }

  /** Run one pCPU's root-mode code until its time reaches `target` ns, it halts or it shuts down. */
  private runCpuUntil(cpu: Cpu, target: number): void {
    this.running = cpu
    try {
      for (;;) {
        const cyclesLeft = this.cyclesOf(target) - cpu.cycles
        if (cyclesLeft <= 0) return
        const exit = cpu.run(Math.max(1, cyclesLeft))
        if (exit !== RunExit.Budget) return
      }
    } finally {
      this.running = undefined
    }
  }

  /** The TSC of halted pCPUs keeps counting while time passes (SDM 17.17). */
  private idleUntil(ns: number): void {
    const cycles = this.cyclesOf(ns)
    for (const cpu of this.cpus) if (cpu.cycles < cycles && (cpu.halted || cpu.isShutdown)) cpu.cycles = cycles
    if (ns > this.now) this.now = ns
  }

  /** A hash of everything architectural: RAM, pCPU states, device states, time. */
  stateHash(): string {
    return hashMachine(this)
  }
}

/** A locally administered MAC in QEMU's 52:54:00 range, from the seed (deterministic). */
const macFromSeed = (seed: number): Array<number> => [
  0x52,
  0x54,
  0x00,
  (seed >>> 16) & 0xff,
  (seed >>> 8) & 0xff,
  seed & 0xff
]
