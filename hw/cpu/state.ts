/**
 * The architectural state of an IA-32 CPU as a named record: what snapshots,
 * migration streams and tests read and write (Intel SDM Vol. 3A ch. 2
 * "System Architecture Overview", 3.4.3 segment descriptor caches, 2.5
 * control registers). Values are unsigned 32-bit numbers.
 */

/** A segment register: the visible selector plus its hidden descriptor cache. */
export interface SegmentState {
  selector: number
  base: number
  /** Byte-granular effective limit (already scaled by G). */
  limit: number
  /**
   * Descriptor attribute bits as in VMX "access rights" (SDM 3C 24.4.1):
   * bits 0-3 type, 4 S, 5-6 DPL, 7 P, 12 AVL, 14 D/B, 15 G, 16 unusable.
   */
  access: number
}

export interface TableRegister {
  base: number
  limit: number
}

export interface CpuState {
  eax: number
  ecx: number
  edx: number
  ebx: number
  esp: number
  ebp: number
  esi: number
  edi: number
  eip: number
  eflags: number
  es: SegmentState
  cs: SegmentState
  ss: SegmentState
  ds: SegmentState
  fs: SegmentState
  gs: SegmentState
  ldtr: SegmentState
  tr: SegmentState
  gdtr: TableRegister
  idtr: TableRegister
  cr0: number
  cr2: number
  cr3: number
  cr4: number
  dr: Array<number>
  /** Time-stamp counter (simulated cycles), as a JS number (exact below 2^53). */
  tsc: number
  msr: { apicBase: number; sysenterCs: number; sysenterEsp: number; sysenterEip: number }
  halted: boolean
  /** A20 gate: false masks address bit 20 (8086 wrap-around). */
  a20: boolean
}

/** EFLAGS bits (SDM Vol. 1 3.4.3). */
export const Flag = {
  CF: 1 << 0,
  PF: 1 << 2,
  AF: 1 << 4,
  ZF: 1 << 6,
  SF: 1 << 7,
  TF: 1 << 8,
  IF: 1 << 9,
  DF: 1 << 10,
  OF: 1 << 11,
  IOPL: 3 << 12,
  NT: 1 << 14,
  RF: 1 << 16,
  VM: 1 << 17,
  AC: 1 << 18,
  VIF: 1 << 19,
  VIP: 1 << 20,
  ID: 1 << 21
} as const

/** Why `run(budget)` returned. */
export const RunExit = {
  /** executed `budget` instructions */
  Budget: 0,
  /** HLT with no interrupt to take */
  Halt: 1,
  /** triple fault: the CPU shut down */
  Shutdown: 2,
  /** a VM exit (details in the VMCS exit-information fields) */
  VmExit: 3,
  /** a trap to the hypervisor when running without the extension (vector/error code on the CPU) */
  Trap: 4,
  /** the caller asked the CPU to stop at the next instruction boundary */
  Stopped: 5
} as const
export type RunExit = (typeof RunExit)[keyof typeof RunExit]
