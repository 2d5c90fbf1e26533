/**
 * The Multiboot information structure and everything it points to (GNU
 * "Multiboot Specification version 0.6.96", 3.3 "Boot information format"),
 * laid out in one block of low guest memory, at QEMU's addresses where QEMU
 * has them (hw/i386/multiboot.c: MULTIBOOT_STRUCT_ADDR 0x9000, the e820 map
 * there and the information structure at ADDR_MBI = 0x9500):
 *
 *   0x009000  memory map (mmap_addr): 4 entries x 24 bytes     QEMU: the BIOS e820 map, 0x500 bytes of room
 *   0x009500  Multiboot information structure, 116 bytes       QEMU: same address (88 bytes written)
 *   0x009580  GDT: 5 descriptors (GDTR = 0x9580, limit 0x27)  QEMU: the same table, inside its option ROM
 *   0x0095c0  module list (mods_addr): 16 bytes per module     QEMU: after the kernel, page-aligned
 *   ...       NUL-terminated strings: kernel command line,      QEMU: after the module list
 *             module command lines, boot loader name
 *   end       rounded up to 4 bytes; at most 0x9fc00 (the reserved EBDA)
 *
 * Below 0x9000 is free (the initial ESP is 0x9000, see machine-state.ts);
 * the modules themselves go page-aligned after the kernel (multiboot.ts).
 * The kernel must not overlap [0x9000, end): the used part only, so a short
 * command line leaves more room.
 *
 * Information flags set (3.3), exactly QEMU's set (0x24f):
 *   bit 0  mem_lower = 639 KiB (QEMU's BIOS answers INT 12h with 639: the top
 *          KiB of conventional memory is the EBDA, reserved in the map),
 *          mem_upper = KiB of contiguous RAM from 1 MiB (QEMU computes it from
 *          the map the same way)
 *   bit 1  boot_device = 0x8000ffff: BIOS drive 0x80, no partition (QEMU
 *          writes this constant; "XXX: use the -boot switch?")
 *   bit 2  cmdline (always present, "" when none is given)
 *   bit 3  mods_count / mods_addr (always present, possibly 0 modules)
 *   bit 6  mmap_length / mmap_addr; mmap_addr points at the first entry's
 *          `size` field, each entry is {size = 20, base_addr, length, type}
 *   bit 9  boot_loader_name = "fibervisor" (QEMU: "qemu")
 * Not set: bits 4/5 (symbols), 7 (drives), 8 (config table), 10 (APM),
 * 11 (VBE), 12 (framebuffer): their fields are zero.
 *
 * The memory map, QEMU/SeaBIOS's layout (a PC has a hole from 0xa0000 to
 * 0xf0000 that the map leaves out: VGA memory and option ROMs):
 *
 *   [0x000000, 0x09fc00)  type 1 available
 *   [0x09fc00, 0x0a0000)  type 2 reserved    EBDA
 *   [0x0f0000, 0x100000)  type 2 reserved    system BIOS
 *   [0x100000, RAM end)   type 1 available
 *
 * SeaBIOS also reserves its ACPI tables at the very top of RAM and the BIOS
 * flash below 4 GiB; a VM here has no firmware there, so RAM runs to its end.
 */
export const BOOT_INFO_BASE = 0x9000
export const MMAP_ADDRESS = 0x9000
export const MBI_ADDRESS = 0x9500
/** Size of the information structure through the framebuffer fields of 0.6.96 (offsets 0..115). */
export const MBI_SIZE = 116
export const GDT_ADDRESS = 0x9580
export const GDT_ENTRIES = 5
export const MODULE_LIST_ADDRESS = 0x95c0
export const MODULE_ENTRY_SIZE = 16
/** The boot information may not reach the EBDA. */
export const BOOT_INFO_LIMIT = 0x9fc00
export const MMAP_ENTRY_SIZE = 24
export const BOOT_LOADER_NAME = "fibervisor"
export const MEM_LOWER_KIB = 639
export const BOOT_DEVICE = 0x8000ffff

/** Segment selectors of the loader's GDT (QEMU's multiboot.S table). */
export const Selector = { Code32: 0x08, Data32: 0x10, Code16: 0x18, Data16: 0x20 } as const

/**
 * Access rights of the flat 32-bit segments in the VMX format of
 * hw/cpu/state.ts (SDM 3C 24.4.1): type | S | DPL << 5 | P | D/B | G.
 * Code: 0xb execute/read, accessed; data: 0x3 read/write, accessed.
 */
export const SegmentAccess = { code32: 0xc09b, data32: 0xc093 } as const

/** Information structure flags (3.3). */
export const InfoFlag = {
  Memory: 1 << 0,
  BootDevice: 1 << 1,
  Cmdline: 1 << 2,
  Modules: 1 << 3,
  AoutSymbols: 1 << 4,
  ElfSections: 1 << 5,
  MemoryMap: 1 << 6,
  Drives: 1 << 7,
  ConfigTable: 1 << 8,
  BootLoaderName: 1 << 9,
  ApmTable: 1 << 10,
  Vbe: 1 << 11,
  Framebuffer: 1 << 12
} as const

export const INFO_FLAGS =
  InfoFlag.Memory |
  InfoFlag.BootDevice |
  InfoFlag.Cmdline |
  InfoFlag.Modules |
  InfoFlag.MemoryMap |
  InfoFlag.BootLoaderName

/** Byte offsets of the information structure's fields (3.3). */
export const MbiField = {
  flags: 0,
  memLower: 4,
  memUpper: 8,
  bootDevice: 12,
  cmdline: 16,
  modsCount: 20,
  modsAddr: 24,
  syms: 28,
  mmapLength: 44,
  mmapAddr: 48,
  drivesLength: 52,
  drivesAddr: 56,
  configTable: 60,
  bootLoaderName: 64,
  apmTable: 68,
  vbeControlInfo: 72,
  framebufferAddr: 88
} as const

/** Memory map entry types (3.3: 1 = available RAM, anything else reserved). */
export const MemoryType = { Available: 1, Reserved: 2 } as const

export interface MemoryMapEntry {
  readonly base: number
  readonly length: number
  readonly type: number
}

export const memoryMap = (ramBytes: number): ReadonlyArray<MemoryMapEntry> => [
  { base: 0, length: 0x9fc00, type: MemoryType.Available },
  { base: 0x9fc00, length: 0x400, type: MemoryType.Reserved },
  { base: 0xf0000, length: 0x10000, type: MemoryType.Reserved },
  { base: 0x100000, length: ramBytes - 0x100000, type: MemoryType.Available }
]

/** Where each piece of the boot information goes, before the modules are placed. */
export interface BootInfoLayout {
  readonly cmdline: number
  readonly moduleCmdlines: ReadonlyArray<number>
  readonly bootLoaderName: number
  /** One past the last byte used, rounded up to 4 (may exceed BOOT_INFO_LIMIT: the caller refuses that). */
  readonly end: number
}

/** Strings as the structure stores them: UTF-8, NUL-terminated. */
export const cString = (s: string): Uint8Array => {
  const utf8 = new TextEncoder().encode(s)
  const out = new Uint8Array(utf8.length + 1)
  out.set(utf8)
  return out
}

export function layoutBootInfo(cmdline: Uint8Array, moduleCmdlines: ReadonlyArray<Uint8Array>): BootInfoLayout {
  let at = MODULE_LIST_ADDRESS + moduleCmdlines.length * MODULE_ENTRY_SIZE
  const place = (s: Uint8Array): number => {
    const address = at
    at += s.length
    return address
  }
  const cmdlineAt = place(cmdline)
  const moduleAt = moduleCmdlines.map(place)
  const nameAt = place(cString(BOOT_LOADER_NAME))
  return { cmdline: cmdlineAt, moduleCmdlines: moduleAt, bootLoaderName: nameAt, end: (at + 3) & ~3 }
}

export interface PlacedModule {
  readonly start: number
  /** One past the last byte (QEMU's mod_end = mod_start + length). */
  readonly end: number
}

/** Segment descriptor bytes (Intel SDM Vol. 3A 3.4.5): base 0, `limit`, access byte, G/DB nibble. */
const descriptor = (limit: number, accessByte: number, flagsNibble: number): [number, number] => [
  limit & 0xffff,
  ((limit & 0xf0000) | (accessByte << 8) | (flagsNibble << 20)) >>> 0
]

/**
 * QEMU's multiboot.S GDT, with the accessed bit already set so that the
 * table and the segment caches of machine-state.ts agree (a CPU loading
 * these selectors would set it): null; 0x08 32-bit code, base 0, 4 GiB;
 * 0x10 32-bit data, base 0, 4 GiB; 0x18 16-bit conforming code, 64 KiB;
 * 0x20 16-bit data, 64 KiB.
 */
export const gdtDescriptors = (): ReadonlyArray<[number, number]> => [
  [0, 0],
  descriptor(0xfffff, SegmentAccess.code32 & 0xff, 0xc),
  descriptor(0xfffff, SegmentAccess.data32 & 0xff, 0xc),
  descriptor(0xffff, 0x9f, 0),
  descriptor(0xffff, 0x93, 0)
]

/** The bytes of [BOOT_INFO_BASE, layout.end): memory map, information structure, GDT, module list, strings. */
export function encodeBootInfo(
  layout: BootInfoLayout,
  ramBytes: number,
  cmdline: Uint8Array,
  modules: ReadonlyArray<PlacedModule & { readonly cmdline: Uint8Array }>
): Uint8Array {
  const block = new Uint8Array(layout.end - BOOT_INFO_BASE)
  const dv = new DataView(block.buffer)
  const put32 = (address: number, value: number) => dv.setUint32(address - BOOT_INFO_BASE, value >>> 0, true)
  const put64 = (address: number, value: number) => {
    put32(address, value % 2 ** 32)
    put32(address + 4, Math.floor(value / 2 ** 32))
  }

  const map = memoryMap(ramBytes)
  map.forEach((entry, i) => {
    const at = MMAP_ADDRESS + i * MMAP_ENTRY_SIZE
    put32(at, MMAP_ENTRY_SIZE - 4) // `size` does not count itself
    put64(at + 4, entry.base)
    put64(at + 12, entry.length)
    put32(at + 20, entry.type)
  })

  const mbi = (field: keyof typeof MbiField, value: number) => put32(MBI_ADDRESS + MbiField[field], value)
  mbi("flags", INFO_FLAGS)
  mbi("memLower", MEM_LOWER_KIB)
  mbi("memUpper", Math.floor((ramBytes - 0x100000) / 1024))
  mbi("bootDevice", BOOT_DEVICE)
  mbi("cmdline", layout.cmdline)
  mbi("modsCount", modules.length)
  mbi("modsAddr", MODULE_LIST_ADDRESS)
  mbi("mmapLength", map.length * MMAP_ENTRY_SIZE)
  mbi("mmapAddr", MMAP_ADDRESS)
  mbi("bootLoaderName", layout.bootLoaderName)

  gdtDescriptors().forEach(([lo, hi], i) => {
    put32(GDT_ADDRESS + i * 8, lo)
    put32(GDT_ADDRESS + i * 8 + 4, hi)
  })

  modules.forEach((m, i) => {
    const at = MODULE_LIST_ADDRESS + i * MODULE_ENTRY_SIZE
    put32(at, m.start)
    put32(at + 4, m.end)
    put32(at + 8, layout.moduleCmdlines[i]!)
    block.set(m.cmdline, layout.moduleCmdlines[i]! - BOOT_INFO_BASE)
  })
  block.set(cmdline, layout.cmdline - BOOT_INFO_BASE)
  block.set(cString(BOOT_LOADER_NAME), layout.bootLoaderName - BOOT_INFO_BASE)
  return block
}
