/**
 * QEMU's firmware configuration device, I/O port interface (QEMU
 * docs/specs/fw_cfg.rst: "Selector (Control) Register", "Data Register",
 * "Register Locations", "Firmware Configuration Items"; key numbers from
 * include/standard-headers/linux/qemu_fw_cfg.h).
 *
 * ```
 * port   offset  access
 * 0x510    0     selector: 16-bit write (little-endian) selects an item, data offset := 0
 * 0x511    1     data: byte reads return the item's next byte (0 past its end)
 *                (QEMU decodes both as one 2-byte region: a 16-bit write anywhere
 *                selects, a byte read anywhere reads data; 0x514 DMA is not offered)
 *
 * key     item                        format
 * 0x0000  FW_CFG_SIGNATURE            "QEMU"
 * 0x0001  FW_CFG_ID                   u32 LE feature bitmap: bit 0 traditional, bit 1 DMA
 * 0x0003  FW_CFG_RAM_SIZE             u64 LE bytes
 * 0x0005  FW_CFG_NB_CPUS              u16 LE
 * 0x000F  FW_CFG_MAX_CPUS             u16 LE
 * 0x0019  FW_CFG_FILE_DIR             u32 BE count, then 64-byte entries:
 *                                     u32 BE size, u16 BE select, u16 reserved, char name[56]
 * 0x0020+ FW_CFG_FILE_FIRST ...       the files, in directory order
 * bit 14  write channel (ignored since QEMU 2.4)   bit 15  architecture-specific item
 * ```
 */

export const FW_CFG_IO_BASE = 0x510
export const FW_CFG_PORTS = 2
export const SELECTOR = 0
export const DATA = 1

export const FwCfgKey = {
  Signature: 0x0000,
  Id: 0x0001,
  Uuid: 0x0002,
  RamSize: 0x0003,
  NoGraphic: 0x0004,
  NbCpus: 0x0005,
  MachineId: 0x0006,
  MaxCpus: 0x000f,
  FileDir: 0x0019,
  FileFirst: 0x0020
} as const

export const WRITE_CHANNEL = 0x4000
export const ARCH_LOCAL = 0x8000
/** The item index within its (generic or architecture) space. */
export const ENTRY_MASK = 0x3fff

export const SIGNATURE = "QEMU"
/** Feature bitmap bits of FW_CFG_ID. */
export const FEATURE_TRADITIONAL = 0x01
export const FEATURE_DMA = 0x02

/** A file directory entry: u32 size, u16 select, u16 reserved, char name[56]. */
export const FILE_ENTRY_SIZE = 64
export const FILE_NAME_SIZE = 56
/** QEMU's default number of file slots (FW_CFG_FILE_SLOTS_DFLT). */
export const FILE_SLOTS = 0x20
