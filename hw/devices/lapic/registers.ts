/**
 * Local APIC register map and bit fields, xAPIC (MMIO) mode only.
 *
 * Intel SDM Vol. 3A ch. 11 "Advanced Programmable Interrupt Controller"
 * (ch. 10 in editions before 2023): Table 11-1 "Local APIC Register Address
 * Map" for the offsets, 11.4.8 (version), 11.5.1 (LVT layout, Figure 11-8),
 * 11.5.3 (ESR bits, Figure 11-9), 11.5.4 (timer divide values, Figure 11-10),
 * 11.6.1 (ICR, Figure 11-12), 11.6.2.2 (DFR models), 11.9 (SVR, Figure 11-23).
 *
 * Every register is 32 bits wide on a 16-byte boundary of the 4 KiB page at
 * IA32_APIC_BASE (0xFEE00000 after reset).
 */

export const LAPIC_DEFAULT_BASE = 0xfee00000
export const LAPIC_MMIO_SIZE = 0x1000

/** Register offsets from the APIC base (SDM Table 11-1). */
export const LapicReg = {
  ID: 0x020,
  VERSION: 0x030,
  TPR: 0x080,
  APR: 0x090,
  PPR: 0x0a0,
  EOI: 0x0b0,
  RRD: 0x0c0,
  LDR: 0x0d0,
  DFR: 0x0e0,
  SVR: 0x0f0,
  /** ISR bank: 8 registers, 0x100..0x170 (vectors 32*i .. 32*i+31) */
  ISR0: 0x100,
  /** TMR bank: 0x180..0x1F0 */
  TMR0: 0x180,
  /** IRR bank: 0x200..0x270 */
  IRR0: 0x200,
  ESR: 0x280,
  ICR_LOW: 0x300,
  ICR_HIGH: 0x310,
  LVT_TIMER: 0x320,
  LVT_THERMAL: 0x330,
  LVT_PERF: 0x340,
  LVT_LINT0: 0x350,
  LVT_LINT1: 0x360,
  LVT_ERROR: 0x370,
  TIMER_INITIAL: 0x380,
  TIMER_CURRENT: 0x390,
  TIMER_DIVIDE: 0x3e0
} as const

/**
 * Version register (11.4.8): bits 7:0 version (0x14: integrated xAPIC, P4 /
 * Xeon class), bits 23:16 "max LVT entry" = number of LVT entries - 1 (six:
 * timer, thermal, perf, LINT0, LINT1, error; no CMCI), bit 24 EOI-broadcast
 * suppression (not supported).
 */
export const LAPIC_VERSION = 0x14 | (5 << 16)

/** SVR bits (11.9). Bits 3:0 of the vector are writable on P4 and later. */
export const SVR_VECTOR = 0xff
export const SVR_ENABLE = 1 << 8
export const SVR_FOCUS_DISABLE = 1 << 9
export const SVR_WRITABLE = SVR_VECTOR | SVR_ENABLE | SVR_FOCUS_DISABLE

/** DFR (11.6.2.2): bits 31:28 select the model; bits 27:0 read as ones. */
export const DFR_FLAT = 0xf
export const DFR_CLUSTER = 0x0

/** LVT fields (11.5.1, Figure 11-8). */
export const LVT_VECTOR = 0xff
export const LVT_DELIVERY_MODE = 7 << 8
export const LVT_DELIVERY_STATUS = 1 << 12
export const LVT_POLARITY = 1 << 13
export const LVT_REMOTE_IRR = 1 << 14
export const LVT_TRIGGER_LEVEL = 1 << 15
export const LVT_MASK = 1 << 16
/** Timer mode, bits 18:17: 00 one-shot, 01 periodic; 10 (TSC-deadline) is reserved without CPUID.01H:ECX[24]. */
export const LVT_TIMER_PERIODIC = 1 << 17

/** Writable bits per LVT entry (everything else reads 0). */
export const LVT_WRITABLE = {
  timer: LVT_VECTOR | LVT_MASK | LVT_TIMER_PERIODIC,
  thermal: LVT_VECTOR | LVT_DELIVERY_MODE | LVT_MASK,
  perf: LVT_VECTOR | LVT_DELIVERY_MODE | LVT_MASK,
  lint0: LVT_VECTOR | LVT_DELIVERY_MODE | LVT_POLARITY | LVT_TRIGGER_LEVEL | LVT_MASK,
  lint1: LVT_VECTOR | LVT_DELIVERY_MODE | LVT_POLARITY | LVT_TRIGGER_LEVEL | LVT_MASK,
  error: LVT_VECTOR | LVT_MASK
} as const
export type LvtName = keyof typeof LVT_WRITABLE

/** Delivery modes (ICR bits 10:8 and LVT bits 10:8; 11.5.1, 11.6.1). */
export const DeliveryMode = {
  Fixed: 0,
  LowestPriority: 1,
  Smi: 2,
  Nmi: 4,
  Init: 5,
  Startup: 6,
  ExtInt: 7
} as const
export type DeliveryMode = (typeof DeliveryMode)[keyof typeof DeliveryMode]

/** ICR low fields (11.6.1, Figure 11-12). */
export const ICR_VECTOR = 0xff
export const ICR_DELIVERY_MODE_SHIFT = 8
export const ICR_LOGICAL = 1 << 11
export const ICR_DELIVERY_STATUS = 1 << 12
export const ICR_LEVEL_ASSERT = 1 << 14
export const ICR_TRIGGER_LEVEL = 1 << 15
export const ICR_SHORTHAND_SHIFT = 18
/** Writable bits of ICR low (delivery status is read-only and always idle here). */
export const ICR_LOW_WRITABLE = 0xff | (7 << 8) | ICR_LOGICAL | ICR_LEVEL_ASSERT | ICR_TRIGGER_LEVEL | (3 << 18)
/** ICR high: destination field, bits 31:24. */
export const ICR_HIGH_WRITABLE = 0xff000000

/** Destination shorthand (ICR bits 19:18). */
export const Shorthand = {
  None: 0,
  Self: 1,
  AllIncludingSelf: 2,
  AllExcludingSelf: 3
} as const
export type Shorthand = (typeof Shorthand)[keyof typeof Shorthand]

/** ESR bits (11.5.3, Figure 11-9). */
export const EsrBit = {
  SendChecksum: 1 << 0,
  ReceiveChecksum: 1 << 1,
  SendAccept: 1 << 2,
  ReceiveAccept: 1 << 3,
  RedirectableIpi: 1 << 4,
  SendIllegalVector: 1 << 5,
  ReceiveIllegalVector: 1 << 6,
  IllegalRegister: 1 << 7
} as const

/**
 * Divide configuration register (11.5.4, Figure 11-10): bits 3,1,0 encode the
 * divisor; 0b000 -> 2, 0b001 -> 4, ..., 0b110 -> 128, 0b111 -> 1.
 */
export const DIVIDE_WRITABLE = 0b1011
export const divisorOf = (divideConfig: number): number => {
  const code = ((divideConfig & 8) >>> 1) | (divideConfig & 3)
  return code === 7 ? 1 : 2 << code
}

/** Reset value of every LVT entry: masked, vector 0 (11.4.7.1). */
export const LVT_RESET = LVT_MASK
