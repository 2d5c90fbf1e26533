/**
 * Registers of the Intel 82093AA I/O Advanced Programmable Interrupt
 * Controller (82093AA datasheet, 3.0 "Register Description": Table 2
 * "Memory Addressable Registers", 3.1 IOREGSEL, 3.2 IOWIN, Table 3 "IOAPIC
 * Registers", 3.2.1 IOAPICID, 3.2.2 IOAPICVER, 3.2.3 IOAPICARB, 3.2.4
 * IOREDTBL[23:0]), with QEMU's version 0x20 EOI register (hw/intc/ioapic.c,
 * as in the ICH's I/O APIC).
 *
 * ```
 * MMIO 0xFEC00000 (4 KiB; QEMU decodes address bits 7:0, so the window repeats every 256 bytes)
 *   0x00  IOREGSEL  bits 7:0 select an indirect register
 *   0x10  IOWIN     32-bit window onto the selected register
 *   0x40  EOI       (version 0x20) write a vector: EOI for level-triggered entries
 *
 * indirect  register
 *   0x00    IOAPICID    bits 27:24 ID
 *   0x01    IOAPICVER   bits 23:16 maximum redirection entry (23), bits 7:0 version
 *   0x02    IOAPICARB   bits 27:24 arbitration ID (reads the ID, as QEMU)
 *   0x10+2n IOREDTBL[n] low dword, 0x11+2n high dword, n = 0..23
 *
 * redirection entry (64 bits)
 *   63:56 destination   16 mask   15 trigger (1 level)   14 remote IRR (RO)
 *   13 polarity (1 low)   12 delivery status (RO)   11 destination mode (1 logical)
 *   10:8 delivery mode (000 fixed, 001 lowest, 010 SMI, 100 NMI, 101 INIT, 111 ExtINT)
 *   7:0 vector
 * ```
 */

/** Where the pc machine maps the I/O APIC. */
export const IOAPIC_BASE = 0xfec00000
export const IOAPIC_MMIO_SIZE = 0x1000
/** QEMU decodes only address bits 7:0 (ioapic_mem_read: `addr &= 0xff`). */
export const IOAPIC_DECODE_MASK = 0xff

export const IOREGSEL = 0x00
export const IOWIN = 0x10
export const IOAPIC_EOI = 0x40

export const IOAPIC_PINS = 24

export const IoApicReg = {
  Id: 0x00,
  Version: 0x01,
  Arbitration: 0x02,
  RedirectionBase: 0x10
} as const

export const ID_SHIFT = 24
export const ID_MASK = 0x0f
export const VERSION_ENTRIES_SHIFT = 16

/** The versions QEMU offers: 0x11 (82093AA) and 0x20 (ICH, with the EOI register; QEMU's default). */
export const IOAPIC_VERSION_82093AA = 0x11
export const IOAPIC_VERSION_ICH = 0x20

/** Redirection entry, low dword. */
export const RTE_VECTOR = 0xff
export const RTE_DELIVERY_MODE_SHIFT = 8
export const RTE_DELIVERY_MODE_MASK = 0x7
export const RTE_LOGICAL = 1 << 11
export const RTE_DELIVERY_STATUS = 1 << 12
export const RTE_POLARITY_LOW = 1 << 13
export const RTE_REMOTE_IRR = 1 << 14
export const RTE_LEVEL = 1 << 15
export const RTE_MASKED = 1 << 16
/** Bits software cannot write (QEMU IOAPIC_RO_BITS); every other bit is stored, as QEMU does. */
export const RTE_READ_ONLY = RTE_REMOTE_IRR | RTE_DELIVERY_STATUS
/** Redirection entry, high dword: destination in bits 31:24 (entry bits 63:56). */
export const RTE_DESTINATION_SHIFT = 24

/** The ISA IRQ -> I/O APIC pin map of the pc machine: IRQ 0 (PIT) is pin 2, the rest identity (MADT override). */
export const isaIrqToPin = (irq: number): number => (irq === 0 ? 2 : irq)
