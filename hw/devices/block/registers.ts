/**
 * fvblk: the fibervisor DMA block controller, datasheet (revision 1.0).
 *
 * A single-queue controller in the spirit of a minimal NVMe / virtio-blk:
 * the driver fills 16-byte descriptors in a ring in machine RAM, publishes
 * them by writing a free-running producer index to DOORBELL, and the
 * controller completes them strictly in order, writing each one's status
 * back into the descriptor and advancing COMPLETION. Sectors are 512 bytes.
 *
 * ## Registers (MMIO, 4 KiB window; 32-bit little-endian)
 *
 *   off   name         access  reset        meaning
 *   0x00  MAGIC        RO      0x4B425646   "FVBK" in memory byte order
 *   0x04  VERSION      RO      0x00010000   major << 16 | minor
 *   0x08  CAPACITY     RO      -            disk size in 512-byte sectors
 *   0x0C  MAX_COUNT    RO      256          largest sector count per descriptor
 *   0x10  RING_BASE    RW      0            machine-physical address of the ring, 16-byte aligned
 *   0x14  RING_SIZE    RW      0            descriptors in the ring: a power of two, 1..1024
 *   0x18  DOORBELL     RW      0            producer index: descriptors posted so far (mod 2^32)
 *   0x1C  COMPLETION   RO      0            descriptors completed so far (mod 2^32)
 *   0x20  INT_STATUS   RW1C    0            bit 0 COMPLETE, bit 1 FAULT; write 1s to acknowledge
 *   0x24  INT_MASK     RW      0            same bits; 1 = may raise the interrupt line
 *   0x28  STATUS       RO      0            bit 0 BUSY (requests outstanding), bit 1 FAULT (halted)
 *   0x2C  RESET        WO      -            write 1: reset the controller (not the disk)
 *   0x30  FAULT_CODE   RO      0            why the controller halted (FaultCode)
 *   0x34  SERVICE_NS   RO      -            virtual service time of one request, in ns
 *
 * Reads of 1, 2 or 4 bytes are allowed anywhere in a register; writes must
 * be aligned 32-bit stores (others are ignored); unknown offsets read 0.
 * Slot i of the ring is descriptor (index mod RING_SIZE). RING_BASE and
 * RING_SIZE are ignored while BUSY. The interrupt line is level-triggered:
 * high while (INT_STATUS & INT_MASK) != 0.
 *
 * ## Descriptor (16 bytes, little-endian)
 *
 *   +0   u16  opcode   1 READ (disk -> RAM), 2 WRITE (RAM -> disk), 3 FLUSH
 *   +2   u16  status   written by the controller on completion (Status)
 *   +4   u32  sector   first sector (READ/WRITE)
 *   +8   u32  count    sectors, 1..MAX_COUNT (READ/WRITE; ignored by FLUSH)
 *   +12  u32  buffer   machine-physical address of count * 512 bytes
 *
 * A bad descriptor is completed with an error status and touches nothing
 * but its own status field. A bad ring or doorbell (size not a power of two,
 * ring misaligned or outside RAM, a producer index that moves backwards or
 * more than RING_SIZE ahead of COMPLETION) halts the controller: STATUS.FAULT,
 * INT_STATUS.FAULT, FAULT_CODE; then only RESET brings it back.
 *
 * ## Timing
 *
 * Each request takes a fixed virtual service time (SERVICE_NS, 100 us by
 * default, a constructor option). The controller serves one request at a
 * time: a request posted to an idle controller starts at the doorbell's
 * virtual time, the next one when the previous completes. The descriptor is
 * read, the data moved and the status written at the completion instant
 * (a driver must not touch a posted descriptor). A DOORBELL write first
 * completes every request already due, so results do not depend on how
 * late the machine delivers ticks. A service time of 0 makes
 * every request complete synchronously inside the DOORBELL write.
 */

export const FVBLK_MMIO_SIZE = 0x1000
export const FVBLK_MAGIC = 0x4b425646
export const FVBLK_VERSION = 0x00010000
export const SECTOR_SIZE = 512
export const MAX_COUNT = 256
export const MAX_RING_SIZE = 1024
export const DESCRIPTOR_SIZE = 16
export const RING_ALIGN = 16
export const DEFAULT_SERVICE_NS = 100_000

export const BlockReg = {
  MAGIC: 0x00,
  VERSION: 0x04,
  CAPACITY: 0x08,
  MAX_COUNT: 0x0c,
  RING_BASE: 0x10,
  RING_SIZE: 0x14,
  DOORBELL: 0x18,
  COMPLETION: 0x1c,
  INT_STATUS: 0x20,
  INT_MASK: 0x24,
  STATUS: 0x28,
  RESET: 0x2c,
  FAULT_CODE: 0x30,
  SERVICE_NS: 0x34
} as const

/** INT_STATUS / INT_MASK bits. */
export const BlockInt = {
  Complete: 1 << 0,
  Fault: 1 << 1
} as const
export const BLOCK_INT_ALL = BlockInt.Complete | BlockInt.Fault

/** STATUS bits. */
export const BlockStatus = {
  Busy: 1 << 0,
  Fault: 1 << 1
} as const

export const BlockOpcode = {
  Read: 1,
  Write: 2,
  Flush: 3
} as const

/** Descriptor status codes. */
export const Status = {
  Ok: 0,
  BadOpcode: 1,
  BadCount: 2,
  OutOfRange: 3,
  BadBuffer: 4,
  IoError: 5
} as const
export type Status = (typeof Status)[keyof typeof Status]

/** FAULT_CODE values. */
export const FaultCode = {
  None: 0,
  RingSize: 1,
  RingBase: 2,
  Doorbell: 3
} as const
export type FaultCode = (typeof FaultCode)[keyof typeof FaultCode]

/** Descriptor field offsets. */
export const Desc = {
  OPCODE: 0,
  STATUS: 2,
  SECTOR: 4,
  COUNT: 8,
  BUFFER: 12
} as const
