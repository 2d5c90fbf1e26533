/**
 * The guest's PCI configuration space access: configuration mechanism #1
 * at ports 0xCF8-0xCFF (PCI Local Bus Specification 3.0, 3.2.2.3.2), with
 * bus 0 holding only what QEMU's pc machine puts at 00:00.0, the i440FX
 * host bridge (8086:1237, rev 02, class 06 00 00), so guests that scan the
 * bus see a host bridge and nothing else (QEMU hw/pci/pci_host.c,
 * hw/pci-host/i440fx.c; registers.ts has the layout). The PIIX3 ISA
 * bridge, IDE and ACPI functions QEMU adds at 00:01.x are not modelled.
 *
 * CONFIG_ADDRESS (0xCF8): a dword write stores the value as written and a
 * read returns it (the enable bit 31 and reserved bits included; narrower
 * reads return its low bytes, narrower writes are ignored: QEMU). The byte
 * at 0xCF9 is the PIIX3 reset control register (QEMU rcr_write): writing
 * bit 2 set requests a reset (`onReset()`), otherwise bit 1 (reset type) is
 * kept and read back.
 *
 * CONFIG_DATA (0xCFC-0xCFF): any size at any offset; the configuration
 * byte addressed is (CONFIG_ADDRESS | port & 3) & 0xFF, as QEMU computes
 * it, for `size` bytes not crossing the 256-byte space (bytes past its end
 * read 0). With the enable bit clear, or for a bus/device/function with
 * nothing there (everything but 00:00.0), reads return all-ones (so the
 * vendor ID reads 0xFFFF: "no device") and writes vanish.
 *
 * The host bridge's header is read-only but for QEMU's write masks:
 * command bits I/O, memory, bus master, SERR#, INTx disable; cache line
 * size; interrupt line; and every device-specific byte from 0x40 up (PAM,
 * SMRAM, ...; stored, with no effect on the memory map). Status reads 0.
 *
 * Reset (`reset()`): CONFIG_ADDRESS 0, reset control 0, the host bridge
 * back to its power-on header. Never throws on any offset/size/value.
 */
import type { AccessSize, BusDevice } from "../../../hw/machine/device.ts"
import {
  BUS_SHIFT,
  COMMAND_WRITABLE,
  CONFIG_ADDRESS,
  CONFIG_DATA,
  CONFIG_ENABLE,
  CONFIG_SPACE_SIZE,
  DEVFN_SHIFT,
  I440FX,
  PCI_HOST_PORTS,
  PciConfig,
  RCR_RESET_CPU,
  RCR_SYSTEM_RESET,
  RESET_CONTROL
} from "./registers.ts"
import type { PciHostState } from "./state.ts"

export type { PciHostState }

export interface PciHostOptions {
  readonly name?: string | undefined
  /** Guest RAM in bytes, for the host bridge's RAM-size byte 0x57 (QEMU). Default 0. */
  readonly ramBytes?: number | undefined
  /** The guest wrote the reset bit of the PIIX3 reset control register (0xCF9). */
  readonly onReset?: (() => void) | undefined
}

const allOnes = (n: number) => (n === 4 ? 0xffffffff : n === 2 ? 0xffff : 0xff)
const byteCount = (size: number) => (size === 2 ? 2 : size === 4 ? 4 : 1)

/** The i440FX header as QEMU builds it (do_pci_register_device, i440fx_realize, i440fx_pcihost_realize). */
export const i440fxConfig = (ramBytes: number): Uint8Array => {
  const c = new Uint8Array(CONFIG_SPACE_SIZE)
  const put16 = (at: number, v: number) => {
    c[at] = v & 0xff
    c[at + 1] = (v >> 8) & 0xff
  }
  put16(PciConfig.VendorId, I440FX.vendorId)
  put16(PciConfig.DeviceId, I440FX.deviceId)
  c[PciConfig.Revision] = I440FX.revision
  c[PciConfig.ClassProg] = I440FX.classCode & 0xff
  put16(PciConfig.ClassDevice, I440FX.classCode >> 8)
  put16(PciConfig.SubsystemVendorId, I440FX.subsystemVendorId)
  put16(PciConfig.SubsystemId, I440FX.subsystemId)
  const ram = Number.isFinite(ramBytes) && ramBytes > 0 ? ramBytes : 0
  c[I440FX.ramSizeRegister] = Math.min(Math.floor(ram / (8 * 1024 * 1024)), 255)
  c[I440FX.smram] = I440FX.smramPowerOn
  return c
}

/** Which bits of each host-bridge configuration byte software may write (QEMU pci_init_wmask). */
const WRITE_MASK = (() => {
  const m = new Uint8Array(CONFIG_SPACE_SIZE)
  m[PciConfig.Command] = COMMAND_WRITABLE & 0xff
  m[PciConfig.Command + 1] = COMMAND_WRITABLE >> 8
  m[PciConfig.CacheLineSize] = 0xff
  m[PciConfig.InterruptLine] = 0xff
  m.fill(0xff, PciConfig.DeviceSpecific)
  return m
})()

export class PciHost implements BusDevice {
  readonly name: string
  private readonly ramBytes: number
  private readonly resetHook: (() => void) | undefined
  private configAddress = 0
  private resetControl = 0
  private hostBridge: Uint8Array

  constructor(options: PciHostOptions = {}) {
    this.name = options.name ?? "pci-host"
    this.ramBytes = options.ramBytes ?? 0
    this.resetHook = options.onReset
    this.hostBridge = i440fxConfig(this.ramBytes)
  }

  // ---------------------------------------------------------------- bus

  read(offset: number, size: AccessSize): number {
    const n = byteCount(size)
    if (!Number.isInteger(offset) || offset < 0 || offset >= PCI_HOST_PORTS) return allOnes(n)
    if (offset < CONFIG_DATA) {
      if (offset === RESET_CONTROL && n === 1) return this.resetControl
      return (this.configAddress & allOnes(n)) >>> 0
    }
    const fn = this.selected()
    if (fn === undefined) return allOnes(n)
    const reg = (this.configAddress | (offset & 3)) & 0xff
    let value = 0
    for (let i = 0; i < n && reg + i < CONFIG_SPACE_SIZE; i++) value |= fn[reg + i]! << (8 * i)
    return value >>> 0
  }

  write(offset: number, size: AccessSize, value: number): void {
    if (!Number.isInteger(offset) || offset < 0 || offset >= PCI_HOST_PORTS) return
    const n = byteCount(size)
    const v = Number.isFinite(value) ? value >>> 0 : 0
    if (offset < CONFIG_DATA) {
      if (offset === CONFIG_ADDRESS && n === 4) this.configAddress = v
      else if (offset === RESET_CONTROL && n === 1) this.writeResetControl(v & 0xff)
      return
    }
    const fn = this.selected()
    if (fn === undefined) return
    const reg = (this.configAddress | (offset & 3)) & 0xff
    for (let i = 0; i < n && reg + i < CONFIG_SPACE_SIZE; i++) {
      const mask = WRITE_MASK[reg + i]!
      fn[reg + i] = (fn[reg + i]! & ~mask) | ((v >>> (8 * i)) & mask)
    }
  }

  /** The configuration space CONFIG_ADDRESS selects, if enabled and populated (only 00:00.0 is). */
  private selected(): Uint8Array | undefined {
    const a = this.configAddress
    if (!(a & CONFIG_ENABLE)) return undefined
    const bus = (a >>> BUS_SHIFT) & 0xff
    const devfn = (a >>> DEVFN_SHIFT) & 0xff
    return bus === 0 && devfn === 0 ? this.hostBridge : undefined
  }

  private writeResetControl(byte: number): void {
    if (byte & RCR_RESET_CPU) {
      this.resetHook?.()
      return
    }
    this.resetControl = byte & RCR_SYSTEM_RESET
  }

  // ----------------------------------------------- reset and snapshot

  /** A configuration byte of the host bridge (00:00.0), without side effects. */
  hostBridgeByte(register: number): number {
    return Number.isInteger(register) && register >= 0 && register < CONFIG_SPACE_SIZE
      ? this.hostBridge[register]!
      : 0xff
  }

  reset(): void {
    this.configAddress = 0
    this.resetControl = 0
    this.hostBridge = i440fxConfig(this.ramBytes)
  }

  snapshot(): PciHostState {
    return {
      configAddress: this.configAddress,
      resetControl: this.resetControl,
      hostBridgeConfig: Array.from(this.hostBridge)
    }
  }

  restore(state: PciHostState): void {
    this.configAddress = Number.isFinite(state.configAddress) ? state.configAddress >>> 0 : 0
    this.resetControl = Number.isFinite(state.resetControl) ? state.resetControl & RCR_SYSTEM_RESET : 0
    const c = new Uint8Array(CONFIG_SPACE_SIZE)
    for (let i = 0; i < CONFIG_SPACE_SIZE; i++) c[i] = (state.hostBridgeConfig[i] ?? 0) & 0xff
    this.hostBridge = c
  }
}
