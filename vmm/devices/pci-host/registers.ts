/**
 * PCI configuration mechanism #1 and the i440FX host bridge's configuration
 * header (PCI Local Bus Specification 3.0, 3.2.2.3.2 "Configuration
 * Mechanism #1" and 6.1/6.2 "Configuration Space Organization / Functions";
 * Intel 82441FX (i440FX PMC) datasheet, 3.2 "PCI Configuration Registers";
 * Intel 82371SB PIIX3 datasheet, "RC - Reset Control Register (CF9h)";
 * QEMU hw/pci/pci_host.c, hw/pci/pci.c, hw/pci-host/i440fx.c, hw/isa/piix.c).
 *
 * ```
 * port   offset  register
 * 0xCF8    0     CONFIG_ADDRESS (dword): 31 enable | 23:16 bus | 15:11 device | 10:8 function | 7:2 register
 * 0xCF9    1     (byte) PIIX3 reset control: bit 2 (1) resets, bit 1 reset type
 * 0xCFC  4-7     CONFIG_DATA: any size at any offset, config byte = register | (port & 3)
 *
 * host bridge 00:00.0 header (type 0)
 *   0x00 vendor 0x8086   0x02 device 0x1237   0x04 command   0x06 status
 *   0x08 revision 0x02   0x09 class 06 00 00 (host bridge)  0x0E header type 0
 *   0x2C subsystem vendor 0x1AF4 (Red Hat)  0x2E subsystem 0x1100 (QEMU)
 *   0x57 RAM size / 8 MiB (QEMU: for old coreboot)   0x59-0x5F PAM   0x72 SMRAM 0x02
 * ```
 */

export const PCI_HOST_PORTS = 8
export const CONFIG_ADDRESS = 0
export const RESET_CONTROL = 1
export const CONFIG_DATA = 4

export const CONFIG_ENABLE = 0x8000_0000
export const BUS_SHIFT = 16
export const DEVFN_SHIFT = 8
export const CONFIG_SPACE_SIZE = 256

/** PIIX3 reset control register (0xCF9) bits. */
export const RCR_RESET_CPU = 0x04
export const RCR_SYSTEM_RESET = 0x02

/** Type-0 header offsets. */
export const PciConfig = {
  VendorId: 0x00,
  DeviceId: 0x02,
  Command: 0x04,
  Status: 0x06,
  Revision: 0x08,
  ClassProg: 0x09,
  ClassDevice: 0x0a,
  CacheLineSize: 0x0c,
  HeaderType: 0x0e,
  SubsystemVendorId: 0x2c,
  SubsystemId: 0x2e,
  InterruptLine: 0x3c,
  /** First device-specific byte: everything from here up is writable in QEMU. */
  DeviceSpecific: 0x40
} as const

/** Command bits QEMU lets software write: I/O, memory, bus master, SERR#, INTx disable. */
export const COMMAND_WRITABLE = 0x0001 | 0x0002 | 0x0004 | 0x0100 | 0x0400

export const I440FX = {
  vendorId: 0x8086,
  deviceId: 0x1237,
  revision: 0x02,
  /** Class 06 (bridge), subclass 00 (host), programming interface 00. */
  classCode: 0x060000,
  subsystemVendorId: 0x1af4,
  subsystemId: 0x1100,
  /** QEMU's I440FX_COREBOOT_RAM_SIZE byte: RAM / 8 MiB, at most 255. */
  ramSizeRegister: 0x57,
  /** Programmable attribute map registers 0x59-0x5F (all 0: BIOS area reads go to PCI/ROM). */
  pam: 0x59,
  smram: 0x72,
  smramPowerOn: 0x02
} as const
