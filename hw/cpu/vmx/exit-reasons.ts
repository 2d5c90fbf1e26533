/**
 * VM-exit reasons, numbered as Intel's (SDM Vol. 3C appendix C, "VMX Basic
 * Exit Reasons"), and the formats of the exit qualifications this model
 * produces (SDM 3C 28.2.1 (27.2.1 in older editions), tables 28-3 control
 * registers, 28-5 I/O instructions, 28-7 EPT violations).
 */

export const ExitReason = {
  ExceptionOrNmi: 0,
  ExternalInterrupt: 1,
  TripleFault: 2,
  InitSignal: 3,
  StartupIpi: 4,
  InterruptWindow: 7,
  NmiWindow: 8,
  TaskSwitch: 9,
  Cpuid: 10,
  Hlt: 12,
  Invd: 13,
  Invlpg: 14,
  Rdpmc: 15,
  Rdtsc: 16,
  Vmcall: 18,
  CrAccess: 28,
  DrAccess: 29,
  IoInstruction: 30,
  Rdmsr: 31,
  Wrmsr: 32,
  EntryFailGuestState: 33,
  EntryFailMsrLoading: 34,
  Mwait: 36,
  Monitor: 39,
  Pause: 40,
  EptViolation: 48,
  EptMisconfig: 49,
  PreemptionTimer: 52,
  Wbinvd: 54
} as const
export type ExitReason = (typeof ExitReason)[keyof typeof ExitReason]

/** Bit 31 of the exit reason: the VM entry failed. */
export const EXIT_REASON_ENTRY_FAILURE = 0x80000000

/** Names for traces and test messages. */
export const exitReasonName = (reason: number): string => {
  const base = reason & 0xffff
  const entry = Object.entries(ExitReason).find(([, v]) => v === base)
  return `${entry?.[0] ?? `reason ${base}`}${(reason & EXIT_REASON_ENTRY_FAILURE) !== 0 ? " (entry failure)" : ""}`
}

/** Control-register access qualification (SDM table 28-3): CR number, access type, GPR. */
export const CrAccessType = { MovToCr: 0, MovFromCr: 1, Clts: 2, Lmsw: 3 } as const
export const crQualification = (cr: number, accessType: number, gpr: number, lmswSource = 0): number =>
  (cr & 0xf) | ((accessType & 3) << 4) | ((gpr & 0xf) << 8) | ((lmswSource & 0xffff) << 16)

/** I/O instruction qualification (SDM table 28-5): size-1, direction (1 = IN), string, REP, immediate operand, port. */
export const ioQualification = (
  size: number,
  isIn: boolean,
  isString: boolean,
  isRep: boolean,
  immediate: boolean,
  port: number
): number =>
  ((size - 1) & 7) |
  (isIn ? 8 : 0) |
  (isString ? 16 : 0) |
  (isRep ? 32 : 0) |
  (immediate ? 64 : 0) |
  ((port & 0xffff) << 16)

/** EPT-violation qualification bits (SDM table 28-7). */
export const EptQual = {
  Read: 1 << 0,
  Write: 1 << 1,
  Fetch: 1 << 2,
  /** bits 3-5: the R/W/X permissions of the guest-physical address (AND of all levels) */
  Readable: 1 << 3,
  Writable: 1 << 4,
  Executable: 1 << 5,
  /** the guest-linear-address field is valid */
  LinearValid: 1 << 7,
  /** with LinearValid: the access was to the translated address (1) or to a paging-structure entry (0) */
  Translated: 1 << 8
} as const

/** VM-exit / VM-entry interruption-information format (SDM table 25-17 / 24-16). */
export const InterruptionType = {
  External: 0,
  Nmi: 2,
  HardwareException: 3,
  SoftwareInterrupt: 4,
  PrivilegedSoftwareException: 5,
  SoftwareException: 6
} as const
export const INTR_INFO_VALID = 0x80000000
export const INTR_INFO_ERROR_CODE = 1 << 11
export const interruptionInfo = (vector: number, type: number, hasErrorCode: boolean): number =>
  ((vector & 0xff) | ((type & 7) << 8) | (hasErrorCode ? INTR_INFO_ERROR_CODE : 0) | INTR_INFO_VALID) >>> 0
