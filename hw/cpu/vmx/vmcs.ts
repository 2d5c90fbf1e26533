/**
 * The virtual-machine control structure (Intel SDM Vol. 3C ch. 25 (24 in
 * older editions), "Virtual Machine Control Structures") as a named record:
 * the guest-state area (25.4), the VM-execution controls (25.6), VM-entry
 * controls with event injection (25.8), and the VM-exit information fields
 * (25.9). Field and bit names follow the SDM so a reader can look each one up.
 *
 * The host-state area is absent on purpose: the "host" here is the vmkernel,
 * TypeScript code that called `vmenter`; a VM exit simply returns to it.
 * Memory-resident parts (I/O bitmaps, MSR bitmaps, EPT) are referenced by
 * machine-physical address, as on hardware.
 */
import type { CpuState, SegmentState } from "../state.ts"

/** Pin-based VM-execution controls (SDM table 25-5). */
export const PinControls = {
  ExternalInterruptExiting: 1 << 0,
  NmiExiting: 1 << 3,
  VirtualNmis: 1 << 5,
  PreemptionTimer: 1 << 6
} as const

/** Primary processor-based VM-execution controls (SDM table 25-6). */
export const ProcControls = {
  InterruptWindowExiting: 1 << 2,
  UseTscOffsetting: 1 << 3,
  HltExiting: 1 << 7,
  InvlpgExiting: 1 << 9,
  MwaitExiting: 1 << 10,
  RdpmcExiting: 1 << 11,
  RdtscExiting: 1 << 12,
  Cr3LoadExiting: 1 << 15,
  Cr3StoreExiting: 1 << 16,
  NmiWindowExiting: 1 << 22,
  MovDrExiting: 1 << 23,
  UnconditionalIoExiting: 1 << 24,
  UseIoBitmaps: 1 << 25,
  UseMsrBitmaps: 1 << 28,
  MonitorExiting: 1 << 29,
  PauseExiting: 1 << 30,
  ActivateSecondaryControls: 1 << 31
} as const

/** Secondary processor-based VM-execution controls (SDM table 25-7). */
export const Proc2Controls = {
  EnableEpt: 1 << 1,
  EnableVpid: 1 << 5,
  WbinvdExiting: 1 << 6,
  UnrestrictedGuest: 1 << 7
} as const

/** VM-exit controls used here (SDM table 25-14). */
export const ExitControls = {
  AcknowledgeInterruptOnExit: 1 << 15,
  SavePreemptionTimer: 1 << 22
} as const

/** Guest activity states (SDM 25.4.2). */
export const ActivityState = { Active: 0, Hlt: 1, Shutdown: 2, WaitForSipi: 3 } as const

/** Guest interruptibility-state bits (SDM table 25-3). */
export const Interruptibility = { BlockingBySti: 1 << 0, BlockingByMovSs: 1 << 1, BlockingByNmi: 1 << 3 } as const

export interface GuestState {
  /** All registers, segment caches, CRs, DRs, descriptor tables and MSRs (the SDM's guest register state). */
  regs: CpuState
  activityState: number
  interruptibility: number
  pendingDebugExceptions: number
}

export interface VmcsControls {
  pin: number
  proc: number
  proc2: number
  exit: number
  /** Exception bitmap: bit n set => exception n causes a VM exit (SDM 25.6.3). */
  exceptionBitmap: number
  /** #PF exits only when (errorCode & mask) == match, if bit 14 is set (SDM 25.6.3). */
  pageFaultErrorCodeMask: number
  pageFaultErrorCodeMatch: number
  /** Machine-physical addresses of I/O bitmaps A (ports 0-7FFF) and B (8000-FFFF). */
  ioBitmapA: number
  ioBitmapB: number
  /** Machine-physical address of the 4 KiB MSR bitmap. */
  msrBitmap: number
  /** Added to the TSC the guest reads when UseTscOffsetting is set (SDM 25.6.5). */
  tscOffset: number
  /** Bits set here are host-owned: guest writes that change them exit (SDM 25.6.6). */
  cr0GuestHostMask: number
  cr0ReadShadow: number
  cr4GuestHostMask: number
  cr4ReadShadow: number
  /** CR3-target values: a MOV to CR3 of one of these does not exit (SDM 25.6.7). */
  cr3TargetValues: Array<number>
  /** EPT pointer: machine address of the PML4 | memory type (bits 0-2) | walk length - 1 (bits 3-5) | A/D enable (bit 6). */
  eptPointer: number
  vpid: number
  /** VMX-preemption timer value (counts down at TSC >> PREEMPTION_TIMER_RATE). */
  preemptionTimer: number
}

export interface VmEntryControls {
  /** VM-entry interruption-information field (SDM table 25-16): valid bit 31 => inject on entry. */
  interruptionInfo: number
  exceptionErrorCode: number
  instructionLength: number
}

export interface VmExitInfo {
  /** Basic exit reason (bits 0-15), bit 31 = entry failure. */
  reason: number
  qualification: number
  guestLinearAddress: number
  guestPhysicalAddress: number
  /** VM-exit interruption information / error code (exits caused by events). */
  interruptionInfo: number
  interruptionErrorCode: number
  /** IDT-vectoring information: an event whose delivery was interrupted by the exit. */
  idtVectoringInfo: number
  idtVectoringErrorCode: number
  instructionLength: number
  instructionInfo: number
}

export interface Vmcs {
  guest: GuestState
  controls: VmcsControls
  entry: VmEntryControls
  exit: VmExitInfo
  /** VMCS launch state (SDM 25.1): "clear" until the first successful entry. */
  launched: boolean
}

/** Rate of the preemption timer: it decrements every 2^5 TSC cycles (IA32_VMX_MISC[4:0] = 5). */
export const PREEMPTION_TIMER_RATE = 5

const segment = (selector: number, base: number, limit: number, access: number): SegmentState => ({
  selector,
  base,
  limit,
  access
})

/** Guest register state after INIT in real mode (SDM 9.1.1 table 9-1), as a VMM sets it up for a new vCPU. */
export const resetGuestRegisters = (): CpuState => ({
  eax: 0,
  ecx: 0,
  edx: 0x633,
  ebx: 0,
  esp: 0,
  ebp: 0,
  esi: 0,
  edi: 0,
  eip: 0xfff0,
  eflags: 2,
  es: segment(0, 0, 0xffff, 0x93),
  cs: segment(0xf000, 0xffff0000, 0xffff, 0x9b),
  ss: segment(0, 0, 0xffff, 0x93),
  ds: segment(0, 0, 0xffff, 0x93),
  fs: segment(0, 0, 0xffff, 0x93),
  gs: segment(0, 0, 0xffff, 0x93),
  ldtr: segment(0, 0, 0xffff, 0x82),
  tr: segment(0, 0, 0xffff, 0x8b),
  gdtr: { base: 0, limit: 0xffff },
  idtr: { base: 0, limit: 0xffff },
  cr0: 0x60000010,
  cr2: 0,
  cr3: 0,
  cr4: 0,
  dr: [0, 0, 0, 0, 0, 0, 0xffff0ff0, 0x400],
  tsc: 0,
  msr: { apicBase: 0xfee00900, sysenterCs: 0, sysenterEsp: 0, sysenterEip: 0 },
  halted: false,
  a20: true
})

/**
 * What a program itself changes, copied from `from` into `to` field by field (no allocation): the
 * general registers, EIP, EFLAGS and the six segment registers' caches.
 */
export const copyRegisterFile = (from: CpuState, to: CpuState): void => {
  to.eax = from.eax
  to.ecx = from.ecx
  to.edx = from.edx
  to.ebx = from.ebx
  to.esp = from.esp
  to.ebp = from.ebp
  to.esi = from.esi
  to.edi = from.edi
  to.eip = from.eip
  to.eflags = from.eflags
  for (const [t, f] of [
    [to.es, from.es],
    [to.cs, from.cs],
    [to.ss, from.ss],
    [to.ds, from.ds],
    [to.fs, from.fs],
    [to.gs, from.gs]
  ] as const) {
    t.selector = f.selector
    t.base = f.base
    t.limit = f.limit
    t.access = f.access
  }
}

/**
 * A deep copy of `s` built like resetGuestRegisters' record (structuredClone would give it another hidden
 * class, and every VM entry and exit reads and writes all of it: loadRegisters / storeRegisters).
 */
export const cloneGuestRegisters = (s: CpuState): CpuState => {
  const r = resetGuestRegisters()
  copyRegisterFile(s, r)
  for (const [to, from] of [
    [r.ldtr, s.ldtr],
    [r.tr, s.tr]
  ] as const) {
    to.selector = from.selector
    to.base = from.base
    to.limit = from.limit
    to.access = from.access
  }
  r.gdtr.base = s.gdtr.base
  r.gdtr.limit = s.gdtr.limit
  r.idtr.base = s.idtr.base
  r.idtr.limit = s.idtr.limit
  r.cr0 = s.cr0
  r.cr2 = s.cr2
  r.cr3 = s.cr3
  r.cr4 = s.cr4
  r.dr = [...s.dr]
  r.tsc = s.tsc
  r.msr.apicBase = s.msr.apicBase
  r.msr.sysenterCs = s.msr.sysenterCs
  r.msr.sysenterEsp = s.msr.sysenterEsp
  r.msr.sysenterEip = s.msr.sysenterEip
  r.halted = s.halted
  r.a20 = s.a20
  return r
}

/** A fresh VMCS (VMCLEAR state) with everything off: the VMM fills in what it needs. */
export const newVmcs = (): Vmcs => ({
  guest: {
    regs: resetGuestRegisters(),
    activityState: ActivityState.Active,
    interruptibility: 0,
    pendingDebugExceptions: 0
  },
  controls: {
    pin: 0,
    proc: 0,
    proc2: 0,
    exit: 0,
    exceptionBitmap: 0,
    pageFaultErrorCodeMask: 0,
    pageFaultErrorCodeMatch: 0,
    ioBitmapA: 0,
    ioBitmapB: 0,
    msrBitmap: 0,
    tscOffset: 0,
    cr0GuestHostMask: 0,
    cr0ReadShadow: 0,
    cr4GuestHostMask: 0,
    cr4ReadShadow: 0,
    cr3TargetValues: [],
    eptPointer: 0,
    vpid: 0,
    preemptionTimer: 0
  },
  entry: { interruptionInfo: 0, exceptionErrorCode: 0, instructionLength: 0 },
  exit: {
    reason: 0,
    qualification: 0,
    guestLinearAddress: 0,
    guestPhysicalAddress: 0,
    interruptionInfo: 0,
    interruptionErrorCode: 0,
    idtVectoringInfo: 0,
    idtVectoringErrorCode: 0,
    instructionLength: 0,
    instructionInfo: 0
  },
  launched: false
})
