/**
 * The PCI host (vmm/devices/pci-host) against PCI Local Bus 3.0
 * 3.2.2.3.2 "Configuration Mechanism #1", the i440FX header QEMU presents
 * at 00:00.0 (hw/pci-host/i440fx.c) and QEMU's pci_host.c corner cases:
 * CONFIG_ADDRESS read-back, host bridge IDs, empty slots, the enable bit,
 * write masks, data-port byte lanes, PIIX3 reset control, reset, snapshot.
 */
import { describe, expect, it } from "@effect/vitest"
import { PciHost } from "../../../vmm/devices/pci-host/pci-host.ts"

const CF8 = 0
const CFC = 4
const address = (bus: number, device: number, fn: number, register: number) =>
  (0x8000_0000 | (bus << 16) | (device << 11) | (fn << 8) | register) >>> 0

const makeHost = () => {
  const resets: number[] = []
  const host = new PciHost({ ramBytes: 256 << 20, onReset: () => resets.push(1) })
  const cfg = (bus: number, device: number, fn: number, register: number, size: 1 | 2 | 4 = 4) => {
    host.write(CF8, 4, address(bus, device, fn, register & 0xfc))
    return host.read(CFC + (register & 3), size)
  }
  const setCfg = (register: number, size: 1 | 2 | 4, value: number) => {
    host.write(CF8, 4, address(0, 0, 0, register & 0xfc))
    host.write(CFC + (register & 3), size, value)
  }
  return { host, resets, cfg, setCfg }
}

describe("Configuration Mechanism #1: CONFIG_ADDRESS (0xCF8)", () => {
  it("a dword write reads back exactly as written (enable bit and reserved bits included)", () => {
    const m = makeHost()
    expect(m.host.read(CF8, 4)).toBe(0)
    m.host.write(CF8, 4, 0x8000_0000)
    expect(m.host.read(CF8, 4)).toBe(0x8000_0000)
    m.host.write(CF8, 4, 0x7f12_3457)
    expect(m.host.read(CF8, 4)).toBe(0x7f12_3457)
  })

  it("narrower writes are ignored; narrower reads return the low bytes (QEMU)", () => {
    const m = makeHost()
    m.host.write(CF8, 4, 0x8000_1234)
    m.host.write(CF8, 2, 0xffff)
    m.host.write(CF8 + 2, 1, 0xff)
    expect(m.host.read(CF8, 4)).toBe(0x8000_1234)
    expect(m.host.read(CF8, 2)).toBe(0x1234)
    expect(m.host.read(CF8 + 2, 1)).toBe(0x34)
  })
})

describe("bus 0 device 0: the i440FX host bridge QEMU presents", () => {
  it("vendor 0x8086, device 0x1237, revision 2, class 06 00 00, header type 0, QEMU subsystem IDs", () => {
    const m = makeHost()
    expect(m.cfg(0, 0, 0, 0x00)).toBe(0x1237_8086)
    expect(m.cfg(0, 0, 0, 0x00, 2)).toBe(0x8086)
    expect(m.cfg(0, 0, 0, 0x02, 2)).toBe(0x1237)
    expect(m.cfg(0, 0, 0, 0x03, 1)).toBe(0x12)
    expect(m.cfg(0, 0, 0, 0x08)).toBe(0x0600_0002)
    expect(m.cfg(0, 0, 0, 0x0e, 1)).toBe(0x00)
    expect(m.cfg(0, 0, 0, 0x2c)).toBe(0x1100_1af4)
    expect(m.cfg(0, 0, 0, 0x04)).toBe(0) // command 0, status 0
  })

  it("i440FX specifics: RAM / 8 MiB at 0x57 (QEMU, for old coreboot), SMRAM 0x72 = 0x02", () => {
    const m = makeHost()
    expect(m.cfg(0, 0, 0, 0x57, 1)).toBe(32)
    expect(m.cfg(0, 0, 0, 0x72, 1)).toBe(0x02)
  })

  it("write masks (QEMU pci_init_wmask): IDs read-only, command bits 0x0507, 0x40-0xFF writable", () => {
    const m = makeHost()
    m.setCfg(0x00, 4, 0xffff_ffff)
    expect(m.cfg(0, 0, 0, 0x00)).toBe(0x1237_8086)
    m.setCfg(0x04, 4, 0xffff_ffff)
    expect(m.cfg(0, 0, 0, 0x04)).toBe(0x0000_0507)
    m.setCfg(0x0c, 1, 0x10)
    m.setCfg(0x3c, 1, 0x0b)
    expect([m.cfg(0, 0, 0, 0x0c, 1), m.cfg(0, 0, 0, 0x3c, 1)]).toEqual([0x10, 0x0b])
    m.setCfg(0x59, 1, 0x30) // PAM0
    m.setCfg(0x5a, 2, 0x3333)
    expect(m.cfg(0, 0, 0, 0x58)).toBe(0x3333_3000)
    expect(m.cfg(0, 0, 0, 0x54)).toBe(0x2000_0000) // 0x57: 256 MiB / 8 MiB
    expect(m.host.hostBridgeByte(0x59)).toBe(0x30)
  })

  it("CONFIG_DATA byte lanes: register = CONFIG_ADDRESS | (port & 3); accesses past 0xFF read 0", () => {
    const m = makeHost()
    m.host.write(CF8, 4, address(0, 0, 0, 0x00))
    expect(m.host.read(CFC + 1, 1)).toBe(0x80)
    expect(m.host.read(CFC + 2, 4)).toBe(0x0000_1237 | (0x00 << 16)) // command bytes follow
    m.host.write(CF8, 4, address(0, 0, 0, 0xfc))
    expect(m.host.read(CFC + 3, 4)).toBe(m.host.hostBridgeByte(0xff))
  })
})

describe("empty slots and the enable bit", () => {
  it("every other bus/device/function reads all-ones (vendor 0xFFFF) and ignores writes", () => {
    const m = makeHost()
    for (let device = 1; device < 32; device++) expect(m.cfg(0, device, 0, 0x00, 2)).toBe(0xffff)
    for (let fn = 1; fn < 8; fn++) expect(m.cfg(0, 0, fn, 0x00)).toBe(0xffff_ffff)
    expect(m.cfg(1, 0, 0, 0x00)).toBe(0xffff_ffff)
    expect(m.cfg(255, 31, 7, 0xfc, 1)).toBe(0xff)
    m.host.write(CF8, 4, address(0, 3, 0, 0x04))
    m.host.write(CFC, 4, 0x7)
    expect(m.host.read(CFC, 4)).toBe(0xffff_ffff)
  })

  it("with bit 31 clear, CONFIG_DATA reads all-ones and writes vanish", () => {
    const m = makeHost()
    m.host.write(CF8, 4, 0x0000_0004)
    expect(m.host.read(CFC, 4)).toBe(0xffff_ffff)
    expect(m.host.read(CFC, 2)).toBe(0xffff)
    m.host.write(CFC, 4, 0x7)
    expect(m.cfg(0, 0, 0, 0x04)).toBe(0)
  })
})

describe("PIIX3 reset control register (0xCF9, byte)", () => {
  it("bit 2 requests a reset; otherwise bit 1 is kept; a dword at 0xCF8 is CONFIG_ADDRESS", () => {
    const m = makeHost()
    m.host.write(1, 1, 0x02)
    expect(m.host.read(1, 1)).toBe(0x02)
    expect(m.resets.length).toBe(0)
    m.host.write(1, 1, 0x06)
    expect(m.resets.length).toBe(1)
    m.host.write(CF8, 4, 0x8000_0000)
    expect(m.host.read(1, 1)).toBe(0x02)
    expect(m.resets.length).toBe(1)
  })
})

describe("reset and snapshot", () => {
  it("reset restores the power-on header and clears CONFIG_ADDRESS; snapshot/restore round-trips", () => {
    const m = makeHost()
    m.setCfg(0x04, 2, 0x07)
    m.setCfg(0x60, 4, 0xdeadbeef)
    const snap = m.host.snapshot()
    const copy = makeHost()
    copy.host.restore(snap)
    expect(copy.host.snapshot()).toEqual(snap)
    expect(copy.cfg(0, 0, 0, 0x60)).toBe(0xdeadbeef)
    m.host.reset()
    expect(m.host.read(CF8, 4)).toBe(0)
    expect(m.cfg(0, 0, 0, 0x04)).toBe(0)
    expect(m.cfg(0, 0, 0, 0x60)).toBe(0)
  })
})
