/**
 * fvnic: the fibervisor DMA Ethernet controller, datasheet (revision 1.0).
 *
 * Two descriptor rings in machine RAM, one per direction, each driven by a
 * pair of free-running 32-bit indices: the driver advances TAIL (descriptors
 * posted), the controller advances HEAD (descriptors completed); slot =
 * index mod SIZE; TAIL - HEAD <= SIZE. Frames are Ethernet II as the wire
 * carries them, without preamble or FCS: 14..1518 bytes (1514 + a 4-byte
 * 802.1Q tag).
 *
 * ## Registers (MMIO, 4 KiB window; 32-bit little-endian)
 *
 *   off   name        access  reset        meaning
 *   0x00  MAGIC       RO      0x434E5646   "FVNC" in memory byte order
 *   0x04  VERSION     RO      0x00010000   major << 16 | minor
 *   0x08  MAC_LOW     RW      factory      MAC bytes 0..3 (byte 0 in bits 7:0)
 *   0x0C  MAC_HIGH    RW      factory      MAC bytes 4..5 in bits 15:0
 *   0x10  CONTROL     RW      0            bit 0 TX_ENABLE, bit 1 RX_ENABLE, bit 2 PROMISC
 *   0x14  STATUS      RO      -            bit 0 LINK_UP, bit 1 FAULT (halted until RESET)
 *   0x18  INT_STATUS  RW1C    0            bit 0 TX_DONE, 1 RX_DONE, 2 RX_DROP, 3 LINK_CHANGE, 4 FAULT
 *   0x1C  INT_MASK    RW      0            same bits; 1 = may raise the interrupt line
 *   0x20  TX_BASE     RW      0            TX ring address, 16-byte aligned
 *   0x24  TX_SIZE     RW      0            TX ring descriptors: a power of two, 1..4096
 *   0x28  TX_TAIL     RW      0            TX doorbell: frames posted so far
 *   0x2C  TX_HEAD     RO      0            frames completed so far
 *   0x30  RX_BASE     RW      0            RX ring address, 16-byte aligned
 *   0x34  RX_SIZE     RW      0            RX ring descriptors: a power of two, 1..4096
 *   0x38  RX_TAIL     RW      0            receive buffers posted so far
 *   0x3C  RX_HEAD     RO      0            receive buffers filled (or failed) so far
 *   0x40  RESET       WO      -            write 1: reset (MAC back to factory, link unchanged)
 *   0x44  FAULT_CODE  RO      0            why the controller halted (NicFault)
 *   0x48  RX_DROPPED  RO      0            frames dropped on receive (mod 2^32)
 *   0x4C  MAX_FRAME   RO      1518         largest frame in bytes
 *
 * Reads of 1, 2 or 4 bytes anywhere in a register; writes must be aligned
 * 32-bit stores (others are ignored); unknown offsets read 0. The interrupt
 * line is level-triggered: high while (INT_STATUS & INT_MASK) != 0.
 *
 * A ring's BASE/SIZE are latched when its direction is enabled in CONTROL
 * (writes while enabled are ignored) and validated then: a bad ring halts
 * the controller (FAULT, FAULT_CODE). So does a TAIL that moves backwards or
 * more than SIZE ahead of HEAD. TAIL writes while the direction is disabled
 * are ignored.
 *
 * ## Descriptor (8 bytes, little-endian, both rings)
 *
 *   +0  u32  buffer   machine-physical address of the frame buffer
 *   +4  u16  length   TX: frame length. RX: buffer capacity in, frame length out
 *   +6  u16  flags    written by the controller on completion:
 *                     bit 0 DONE, bit 1 ERROR, bits 15:8 error code (NicError)
 *
 * TX: a frame shorter than 14 or longer than 1518 bytes, a buffer outside
 * RAM, or a link that is down completes the descriptor with ERROR and sends
 * nothing. RX: a frame is accepted if RX is enabled, the link is up, and its
 * destination is this MAC, broadcast/multicast, or anything under PROMISC;
 * it fills the descriptor at RX_HEAD. No posted buffer, an oversize/runt
 * frame, a buffer too small or outside RAM: the frame is dropped, RX_DROPPED
 * counts it and RX_DROP is raised (a bad buffer also completes its descriptor
 * with ERROR). Nothing outside the named buffers and the rings' length/flags
 * fields is ever written.
 *
 * ## Timing
 *
 * Zero virtual latency: a TX_TAIL write sends every posted frame before it
 * returns; a frame from the back-end is placed in RAM when the back-end
 * delivers it. Deterministic for deterministic back-ends (loopback, none).
 */

export const FVNIC_MMIO_SIZE = 0x1000
export const FVNIC_MAGIC = 0x434e5646
export const FVNIC_VERSION = 0x00010000
export const MIN_FRAME = 14
export const MAX_FRAME = 1518
export const NIC_DESCRIPTOR_SIZE = 8
export const NIC_RING_ALIGN = 16
export const NIC_MAX_RING = 4096

export const NicReg = {
  MAGIC: 0x00,
  VERSION: 0x04,
  MAC_LOW: 0x08,
  MAC_HIGH: 0x0c,
  CONTROL: 0x10,
  STATUS: 0x14,
  INT_STATUS: 0x18,
  INT_MASK: 0x1c,
  TX_BASE: 0x20,
  TX_SIZE: 0x24,
  TX_TAIL: 0x28,
  TX_HEAD: 0x2c,
  RX_BASE: 0x30,
  RX_SIZE: 0x34,
  RX_TAIL: 0x38,
  RX_HEAD: 0x3c,
  RESET: 0x40,
  FAULT_CODE: 0x44,
  RX_DROPPED: 0x48,
  MAX_FRAME: 0x4c
} as const

export const NicControl = {
  TxEnable: 1 << 0,
  RxEnable: 1 << 1,
  Promisc: 1 << 2
} as const
export const NIC_CONTROL_ALL = 0b111

export const NicStatus = {
  LinkUp: 1 << 0,
  Fault: 1 << 1
} as const

export const NicInt = {
  TxDone: 1 << 0,
  RxDone: 1 << 1,
  RxDrop: 1 << 2,
  LinkChange: 1 << 3,
  Fault: 1 << 4
} as const
export const NIC_INT_ALL = 0b11111

/** Descriptor flags. */
export const NicFlag = {
  Done: 1 << 0,
  Error: 1 << 1
} as const

/** Error codes in descriptor flags bits 15:8. */
export const NicError = {
  Length: 1,
  Buffer: 2,
  TooSmall: 3,
  LinkDown: 4
} as const
export type NicError = (typeof NicError)[keyof typeof NicError]

/** FAULT_CODE values. */
export const NicFault = {
  None: 0,
  TxRing: 1,
  RxRing: 2,
  TxIndex: 3,
  RxIndex: 4
} as const
export type NicFault = (typeof NicFault)[keyof typeof NicFault]

/** Descriptor field offsets. */
export const NicDesc = {
  BUFFER: 0,
  LENGTH: 4,
  FLAGS: 6
} as const
