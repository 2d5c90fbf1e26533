/**
 * Fuzz suite `devices` (issue 8): every device model a guest or driver can
 * poke, under random sequences of port / MMIO reads and writes with random
 * sizes (legal and not: 0, 3, 8), offsets (in range, out of range,
 * negative, fractional, NaN, +-Infinity, 2^32, 2^53) and values (any
 * double), interleaved with virtual-time steps, ticks (late, early and
 * garbage `now`s), input lines, INTAs and EOIs. One case is one device, its
 * traffic and checks in scripts/fuzz/devices/<device>.ts (the 8042 and ports
 * A/B in pc-misc.ts; the ops and what the devices share in ops.ts):
 *
 *   - cmos-rtc      MC146818 RTC + CMOS (vmm/devices/cmos-rtc)
 *   - ioapic        Intel 82093AA I/O APIC (vmm/devices/ioapic)
 *   - i8042         8042 keyboard controller, port A (0x92), port B (0x61)
 *   - pci-host      i440FX host bridge config mechanism #1 (0xCF8/0xCFC)
 *   - fw-cfg        QEMU fw_cfg (selector / data ports)
 *   - debug-ports   debugcon (0xE9) and isa-debug-exit
 *   - uart16550     NS PC16550D / 16550A UART (hw/devices/uart16550)
 *   - pic8259       two Intel 8259A PICs as the PC/AT pair, plus the PIIX ELCR
 *   - pit8254       Intel 8254 PIT at 1.193182 MHz (hw/devices/pit8254)
 *   - lapic         local APIC, Intel SDM Vol. 3A ch. 11 (hw/devices/lapic)
 *
 * The properties (hw/machine/device.ts: "guest- or driver-reachable paths
 * must never throw: garbage in gives a defined result"):
 *
 *   - nothing throws (a host exception is the failure fast-check reports);
 *   - every read is an unsigned 32-bit integer (and, on the byte-split ISA
 *     devices, fits the access size); every byte a device emits (UART, debugcon)
 *     is a byte; every vector an INTA returns is 0-255; every interrupt
 *     message (I/O APIC, IPI) names a vector 0-255 and a legal pin or destination;
 *   - deadlines returned by `tick(now)` are Infinity or an integer after `now`
 *     (never in the past, never NaN);
 *   - interrupt outputs agree with the model's own view (UART: the IRQ line
 *     is `interruptAsserted`; PIC: INTR is `hasInterrupt()`), and the LAPIC
 *     never holds an illegal vector 0-15 in IRR/ISR (SDM 11.5.2);
 *   - after `reset()` the device does its basic job again, with parameters
 *     drawn per case; each device file's header names the job and the
 *     datasheet section it is checked against.
 *
 * None of these devices does DMA, so "no access outside the VM's memory" holds
 * by construction here (the virtio-mmio devices, which do, have their own
 * hostile-descriptor properties in test/vmm/virtio).
 */
import fc from "fast-check"
import type { FuzzSuite } from "../campaign.ts"
import { type CmosRtcCase, checkCmosRtc, cmosCase } from "../devices/cmos-rtc.ts"
import { checkDebugPorts, type DebugPortsCase, debugCase } from "../devices/debug-ports.ts"
import { checkFwCfg, type FwCfgCase, fwCfgCase } from "../devices/fw-cfg.ts"
import { checkIoApic, type IoApicCase, ioapicCase } from "../devices/ioapic.ts"
import { checkLapic, type LapicCase, lapicCase } from "../devices/lapic.ts"
import { type DeviceOp, hex } from "../devices/ops.ts"
import { checkI8042, type I8042Case, i8042Case } from "../devices/pc-misc.ts"
import { checkPciHost, type PciHostCase, pciCase } from "../devices/pci-host.ts"
import { checkPic, type PicCase, picCase } from "../devices/pic8259.ts"
import { checkPit, type PitCase, pitCase } from "../devices/pit8254.ts"
import { checkUart, type UartCase, uartCase } from "../devices/uart16550.ts"

export type { DeviceOp } from "../devices/ops.ts"

export type DeviceCase =
  | CmosRtcCase
  | IoApicCase
  | I8042Case
  | PciHostCase
  | FwCfgCase
  | DebugPortsCase
  | UartCase
  | PicCase
  | PitCase
  | LapicCase

export type DeviceName = DeviceCase["device"]

export const DEVICE_NAMES: ReadonlyArray<DeviceName> = [
  "cmos-rtc",
  "ioapic",
  "i8042",
  "pci-host",
  "fw-cfg",
  "debug-ports",
  "uart16550",
  "pic8259",
  "pit8254",
  "lapic"
]

/** A device, then a random operation sequence for it. */
export const deviceCases: fc.Arbitrary<DeviceCase> = fc.oneof(
  cmosCase,
  ioapicCase,
  i8042Case,
  pciCase,
  fwCfgCase,
  debugCase,
  uartCase,
  picCase,
  pitCase,
  lapicCase
)
// ---------------------------------------------------------------- checks

/** Run one case: the random traffic with its per-step checks, then reset and the basic-job check. */
export const checkDeviceCase = (c: DeviceCase): void => {
  switch (c.device) {
    case "cmos-rtc":
      checkCmosRtc(c)
      return
    case "ioapic":
      checkIoApic(c)
      return
    case "i8042":
      checkI8042(c)
      return
    case "pci-host":
      checkPciHost(c)
      return
    case "fw-cfg":
      checkFwCfg(c)
      return
    case "debug-ports":
      checkDebugPorts(c)
      return
    case "uart16550":
      checkUart(c)
      return
    case "pic8259":
      checkPic(c)
      return
    case "pit8254":
      checkPit(c)
      return
    case "lapic":
      checkLapic(c)
      return
  }
}

// ---------------------------------------------------------------- render

const num = (v: number): string =>
  Object.is(v, -0)
    ? "-0"
    : Number.isInteger(v) && Math.abs(v) >= 10
      ? `${v < 0 ? "-" : ""}${hex(Math.abs(v))}`
      : String(v)

const renderOp = (op: DeviceOp): string => {
  const port = "port" in op && op.port !== "" ? `${op.port} ` : ""
  switch (op.kind) {
    case "read":
      return `read ${port}${num(op.offset)}/${op.size}`
    case "write":
      return `write ${port}${num(op.offset)}/${op.size} ${num(op.value)}`
    case "advance":
      return `advance ${op.ns}ns`
    case "tickAt":
      return `tick @${op.at}`
    case "tick":
      return `tick now${op.dt < 0 ? "" : "+"}${op.dt}`
    case "irq":
      return `irq ${op.pin} ${op.level ? "high" : "low"}`
    case "eoi":
      return `eoi ${num(op.vector)}`
    case "inta":
      return "inta"
    case "rx":
      return `rx [${op.bytes.map(num).join(" ")}]`
    case "modem":
      return `modem ${num(op.bits)}`
    case "gate":
      return `gate ${op.channel} ${op.level ? "high" : "low"}`
    case "out":
      return `out ${op.channel}`
    case "accept":
      return `accept ${num(op.vector)} ${op.level ? "level" : "edge"}`
    case "lint":
      return `lint${op.pin} ${op.level ? "high" : "low"}`
    case "ipi":
      return `ipi in: mode ${op.mode} vector ${num(op.vector)}${op.levelTriggered ? " level" : ""}${op.assert ? " assert" : ""}`
    case "take":
      return "take nmi/init/sipi"
  }
}

const HEX_PARAMS = new Set(["vector", "byte", "destination"])

/** The device, its reset-check parameters, then one op per line. */
export const renderDeviceCase = (c: DeviceCase): string => {
  const { device, ops, ...params } = c
  const head = Object.entries(params)
    .map(([k, v]) => `${k}=${typeof v === "number" && HEX_PARAMS.has(k) ? hex(v) : String(v)}`)
    .join(" ")
  return [`${device}${head === "" ? "" : ` ${head}`}`, ...ops.map(renderOp)].join("\n")
}

export const devicesSuite: FuzzSuite<DeviceCase> = {
  name: "devices",
  description:
    "random port / MMIO traffic, time, lines and EOIs to every device model (RTC, I/O APIC, 8042, PCI host, fw_cfg, debug ports, 16550, 8259 pair, 8254, local APIC): no throw, u32 reads, deadlines ahead, works after reset",
  arbitrary: deviceCases,
  ciRuns: 20_000,
  check: async (c) => checkDeviceCase(c),
  render: renderDeviceCase
}
