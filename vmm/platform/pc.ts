/**
 * The PC a guest sees (issue 6 "Virtual devices"), assembled from the pure
 * device models: COM1 16550 (IRQ 4), the 8259A pair, the 8254 PIT (IRQ 0),
 * and a local APIC per vCPU at 0xFEE00000 (each vCPU sees its own: the MMIO
 * window dispatches to the vCPU being emulated). The rest of the platform
 * (RTC, IOAPIC, PS/2, PCI host, fw_cfg, debug ports, virtio) is added with
 * `addPorts` / `addMmio`. Devices run on the VM's virtual clock; their
 * interrupts reach a vCPU through `hasInterrupt` / `acknowledge`, which the
 * vCPU loop turns into VMX event injection.
 */

import { routeIpi } from "../../hw/devices/lapic/ipi.ts"
import { LocalApic } from "../../hw/devices/lapic/lapic.ts"
import { PicPair } from "../../hw/devices/pic8259/pic-pair.ts"
import { Pit8254 } from "../../hw/devices/pit8254/pit8254.ts"
import { Uart16550 } from "../../hw/devices/uart16550/uart16550.ts"
import { Bus } from "../../hw/machine/buses.ts"
import type { AccessSize, BusDevice, IrqLine, TimedDevice } from "../../hw/machine/device.ts"

export const GUEST_LAPIC_BASE = 0xfee00000
/** The vLAPIC timer's bus clock (QEMU's APIC runs at 1 GHz; 100 MHz keeps counts readable). */
export const GUEST_APIC_BUS_HZ = 100_000_000

export interface PcPlatformOptions {
  readonly vcpus: number
  /** The VM's virtual time in ns (never the wall clock). */
  readonly clock: () => number
  /** Bytes the guest sends out of COM1. */
  readonly console: (byte: number) => void
}

export class PcPlatform {
  readonly ports = new Bus("guest port bus")
  readonly mmio = new Bus("guest MMIO bus")
  readonly uart: Uart16550
  readonly pic: PicPair
  readonly pit: Pit8254
  readonly lapics: ReadonlyArray<LocalApic>
  /** The vCPU whose instruction is being emulated: it sees its own local APIC. */
  currentVcpu = 0
  private readonly timed: Array<TimedDevice> = []
  private picLevel = false

  constructor(options: PcPlatformOptions) {
    const irq = (line: number): IrqLine => ({ set: (level) => this.setIrq(line, level) })
    this.pic = new PicPair({
      intr: {
        set: (level) => {
          this.picLevel = level
        }
      }
    })
    this.ports.map(0x20, 2, this.pic.master)
    this.ports.map(0xa0, 2, this.pic.slave)
    this.ports.map(0x4d0, 2, this.pic.elcr)
    this.pit = new Pit8254({ clock: options.clock, out0: irq(0) })
    this.ports.map(0x40, 4, this.pit)
    this.timed.push(this.pit)
    this.uart = new Uart16550({ backend: { transmit: options.console }, irq: irq(4) })
    this.ports.map(0x3f8, 8, this.uart)
    const lapics = Array.from(
      { length: options.vcpus },
      (_, id) => new LocalApic({ id, busHz: GUEST_APIC_BUS_HZ, clock: options.clock })
    )
    for (const lapic of lapics) {
      lapic.onIpi((ipi) => routeIpi(lapics, lapic, ipi))
      this.timed.push(lapic)
    }
    this.lapics = lapics
    const window: BusDevice = {
      name: "local APIC",
      read: (offset: number, size: AccessSize) => lapics[this.currentVcpu]!.read(offset, size),
      write: (offset: number, size: AccessSize, value: number) => lapics[this.currentVcpu]!.write(offset, size, value)
    }
    this.mmio.map(GUEST_LAPIC_BASE, 0x1000, window)
  }

  /** Where ISA interrupt lines go besides the PIC (the I/O APIC registers itself here). */
  private readonly irqSinks: Array<(line: number, level: boolean) => void> = []

  /** Drive ISA interrupt line `line` (0-15): the 8259A pair and every other sink (the I/O APIC). */
  setIrq(line: number, level: boolean): void {
    this.pic.setIrq(line, level)
    for (const sink of this.irqSinks) sink(line, level)
  }

  addIrqSink(sink: (line: number, level: boolean) => void): void {
    this.irqSinks.push(sink)
  }

  addPorts(base: number, length: number, device: BusDevice, timed?: TimedDevice): void {
    this.ports.map(base, length, device)
    if (timed !== undefined) this.timed.push(timed)
  }

  addMmio(base: number, length: number, device: BusDevice, timed?: TimedDevice): void {
    this.mmio.map(base, length, device)
    if (timed !== undefined) this.timed.push(timed)
  }

  /** Bring the devices to `now`; the next deadline (Infinity: none). */
  tick(now: number): number {
    let next = Number.POSITIVE_INFINITY
    for (const device of this.timed) next = Math.min(next, device.tick(now))
    return next
  }

  /** A maskable interrupt is waiting for vCPU `vcpu` (its local APIC, or the PIC for the boot vCPU). */
  hasInterrupt(vcpu: number): boolean {
    return this.lapics[vcpu]!.hasInterrupt() || (vcpu === 0 && this.picLevel)
  }

  /** INTA for vCPU `vcpu`: the vector to inject. */
  acknowledge(vcpu: number): number {
    const lapic = this.lapics[vcpu]!
    if (lapic.hasInterrupt()) return lapic.acknowledge()
    return this.pic.acknowledge()
  }
}
