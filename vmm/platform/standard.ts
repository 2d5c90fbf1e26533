/**
 * The rest of the PC a guest sees, as QEMU's pc machine presents it (issue 6
 * "Virtual devices"): CMOS RTC (0x70/0x71, IRQ 8), the 8042 (0x60/0x64:
 * status, CPU reset, A20), system control ports A (0x92: fast A20, reset)
 * and B (0x61: PIT channel 2 gate and OUT2), PCI configuration mechanism #1
 * (0xCF8/0xCFC, the i440FX host bridge), fw_cfg (0x510/0x511), the I/O APIC
 * (0xFEC00000, delivering to the vLAPICs), debugcon (0xE9) and isa-debug-exit
 * (0xF4: the guest's result; 0 = success).
 *
 * A reset request (8042, port 0x92, PCI reset at 0xCF9) resets the VM; A20
 * follows the guest's gates: the vCPUs mask address bit 20 from their next
 * VM entry when it is disabled.
 */
import { CmosRtc } from "./../devices/cmos-rtc/cmos-rtc.ts"
import { Debugcon, DebugExit } from "../devices/debug-ports/debug-ports.ts"
import { DEBUG_EXIT_PORT, DEBUG_EXIT_PORTS, DEBUGCON_PORT, DEBUGCON_PORTS } from "../devices/debug-ports/registers.ts"
import { FwCfg } from "../devices/fw-cfg/fw-cfg.ts"
import { FW_CFG_IO_BASE, FW_CFG_PORTS } from "../devices/fw-cfg/registers.ts"
import { IoApic } from "../devices/ioapic/ioapic.ts"
import { IOAPIC_BASE, isaIrqToPin } from "../devices/ioapic/registers.ts"
import { I8042 } from "../devices/pc-misc/i8042.ts"
import { PortA, PortB } from "../devices/pc-misc/system-control.ts"
import { PciHost } from "../devices/pci-host/pci-host.ts"
import type { VirtualMachine } from "../vm.ts"

export interface StandardDevices {
  readonly rtc: CmosRtc
  readonly ioapic: IoApic
  readonly i8042: I8042
  readonly debugExit: DebugExit
}

/** Add the standard PC devices to `vm`'s platform; `debugcon` receives the guest's port-0xE9 bytes. */
export const addStandardDevices = (
  vm: VirtualMachine,
  debugcon: (byte: number) => void = () => {}
): StandardDevices => {
  const platform = vm.platform
  const reset = () => vm.reset()
  const rtc = new CmosRtc({
    clock: () => vm.now,
    irq: { set: (level) => platform.setIrq(8, level) },
    ramBytes: vm.guest.ramBytes,
    cpus: vm.config.vcpus
  })
  platform.addPorts(0x70, 2, rtc, rtc)
  // A20 (8042 output port, port 0x92; last writer wins): the vCPUs see it from their next entry
  const a20 = (enabled: boolean) => vm.setA20(enabled)
  const i8042 = new I8042({ onReset: reset, onA20: a20 })
  platform.addPorts(0x60, 1, i8042.dataPort)
  platform.addPorts(0x64, 1, i8042.commandPort)
  platform.addPorts(0x92, 1, new PortA({ onReset: reset, onA20: a20 }))
  const portB = new PortB({
    setGate2: (level) => platform.pit.setGate(2, level),
    readOut2: () => platform.pit.readOut(2)
  })
  portB.reset() // drives the PIT's counter-2 gate to its power-on level (low), as on a PC
  platform.addPorts(0x61, 1, portB)
  const pci = new PciHost({ onReset: reset })
  platform.addPorts(0xcf8, 8, pci)
  platform.addPorts(FW_CFG_IO_BASE, FW_CFG_PORTS, new FwCfg({ ramBytes: vm.guest.ramBytes, cpus: vm.config.vcpus }))
  const ioapic = new IoApic({
    version: 0x20,
    deliver: (message) => {
      // physical destination mode: the vLAPIC with that APIC ID (fixed / lowest priority: its IRR)
      platform.lapics[message.destination]?.accept(message.vector)
      vm.serviceIpis()
    }
  })
  platform.addMmio(IOAPIC_BASE, 0x1000, ioapic)
  // every ISA line also reaches the I/O APIC (IRQ 0 on pin 2, as QEMU's interrupt source override)
  platform.addIrqSink((line, level) => ioapic.setIrq(isaIrqToPin(line), level))
  platform.addPorts(DEBUGCON_PORT, DEBUGCON_PORTS, new Debugcon({ sink: debugcon }))
  const debugExit = new DebugExit({ onExit: (value) => vm.end({ _tag: "DebugExit", code: value }) })
  platform.addPorts(DEBUG_EXIT_PORT, DEBUG_EXIT_PORTS, debugExit)
  return { rtc, ioapic, i8042, debugExit }
}
