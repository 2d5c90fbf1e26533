/**
 * virtio-mmio version 2: the register map and the constants of the
 * transport (OASIS "Virtual I/O Device (VIRTIO) Version 1.1": 4.2.2 "MMIO
 * Device Register Layout"; 2.1 device status field; 6 reserved feature
 * bits). The behaviour behind the registers is in mmio.ts.
 *
 * One window of VIRTIO_MMIO_SIZE bytes per device; registers are 32-bit
 * little-endian:
 *
 *   off    name                       access  meaning
 *   0x000  MagicValue                 R       0x74726976 ("virt")
 *   0x004  Version                    R       2
 *   0x008  DeviceID                   R       1 net, 2 block (5 "Device Types")
 *   0x00c  VendorID                   R       FIBERVISOR_VENDOR_ID
 *   0x010  DeviceFeatures             R       32 offered feature bits, word DeviceFeaturesSel
 *   0x014  DeviceFeaturesSel          W       0: bits 0..31, 1: bits 32..63, else reads 0
 *   0x020  DriverFeatures             W       32 accepted feature bits, word DriverFeaturesSel
 *   0x024  DriverFeaturesSel          W
 *   0x030  QueueSel                   W       the queue the Queue* registers address
 *   0x034  QueueNumMax                R       its maximum size, 0 if there is no such queue
 *   0x038  QueueNum                   W       its size (a power of two <= QueueNumMax)
 *   0x044  QueueReady                 RW      1: the queue is set up and live
 *   0x050  QueueNotify                W       the driver added buffers to queue N
 *   0x060  InterruptStatus            R       bit 0 used buffer, bit 1 configuration change
 *   0x064  InterruptACK               W       clears the bits written
 *   0x070  Status                     RW      device status (2.1); writing 0 resets the device
 *   0x080  QueueDescLow/High          W       descriptor table address (64-bit, split)
 *   0x090  QueueDriverLow/High        W       available ring address
 *   0x0a0  QueueDeviceLow/High        W       used ring address
 *   0x0fc  ConfigGeneration           R       changes whenever the config space changes
 *   0x100  Config                     RW      device-specific configuration space
 */
export const VIRTIO_MMIO_MAGIC = 0x74726976
export const VIRTIO_MMIO_VERSION = 2
/** "FBVS" in memory byte order: fibervisor's virtio vendor ID. */
export const FIBERVISOR_VENDOR_ID = 0x53564246
/** The window of one device: registers 0x000..0x0ff, config space 0x100..0x1ff. */
export const VIRTIO_MMIO_SIZE = 0x200
/** Where the VMM maps its virtio-mmio devices in guest-physical space (one window each). */
export const VIRTIO_MMIO_BASE = 0xfeb00000
export const VIRTIO_CONFIG_OFFSET = 0x100

export const virtioMmioBase = (n: number) => VIRTIO_MMIO_BASE + n * VIRTIO_MMIO_SIZE

/** The Linux command-line fragment that announces a virtio-mmio device. */
export const linuxCmdlineDevice = (base: number, irq: number) =>
  `virtio_mmio.device=0x${VIRTIO_MMIO_SIZE.toString(16)}@0x${base.toString(16)}:${irq}`

export const VirtioReg = {
  MAGIC: 0x000,
  VERSION: 0x004,
  DEVICE_ID: 0x008,
  VENDOR_ID: 0x00c,
  DEVICE_FEATURES: 0x010,
  DEVICE_FEATURES_SEL: 0x014,
  DRIVER_FEATURES: 0x020,
  DRIVER_FEATURES_SEL: 0x024,
  QUEUE_SEL: 0x030,
  QUEUE_NUM_MAX: 0x034,
  QUEUE_NUM: 0x038,
  QUEUE_READY: 0x044,
  QUEUE_NOTIFY: 0x050,
  INTERRUPT_STATUS: 0x060,
  INTERRUPT_ACK: 0x064,
  STATUS: 0x070,
  QUEUE_DESC_LOW: 0x080,
  QUEUE_DESC_HIGH: 0x084,
  QUEUE_DRIVER_LOW: 0x090,
  QUEUE_DRIVER_HIGH: 0x094,
  QUEUE_DEVICE_LOW: 0x0a0,
  QUEUE_DEVICE_HIGH: 0x0a4,
  CONFIG_GENERATION: 0x0fc
} as const

/** Device status bits (2.1). */
export const VirtioStatus = {
  ACKNOWLEDGE: 1,
  DRIVER: 2,
  DRIVER_OK: 4,
  FEATURES_OK: 8,
  DEVICE_NEEDS_RESET: 0x40,
  FAILED: 0x80
} as const

/** InterruptStatus bits (4.2.2). */
export const VirtioInterrupt = {
  USED_BUFFER: 1,
  CONFIG_CHANGE: 2
} as const

/** Reserved feature bits (6 "Reserved Feature Bits"), as bigints (bit 32 and up exist). */
export const VirtioFeature = {
  INDIRECT_DESC: 1n << 28n,
  EVENT_IDX: 1n << 29n,
  VERSION_1: 1n << 32n
} as const
