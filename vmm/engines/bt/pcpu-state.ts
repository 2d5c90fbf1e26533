/**
 * What the pCPU runs with while a `bt` guest is on it (vmm/engines/bt/
 * engine.ts), derived from the guest's *virtual* state at every entry, and
 * what comes back at every exit (Adams & Agesen 2006 section 3.1; Intel SDM
 * Vol. 3A 5.5-5.8 privilege levels, 3.4.5 segment descriptors, 2.5 control
 * registers):
 *
 *   CS       kernel: the translation cache's flat ring-1 code segment;
 *            user (and `trap`'s kernel): the guest's, at its ring
 *   SS       the guest's, DPL = RPL = the ring (the CPL follows SS.DPL)
 *   DS..GS   the guest's, limits truncated below the monitor region
 *   GDTR, IDTR, TR, LDTR   the monitor's (monitor-region.ts)
 *   CR0      the guest's FPU bits | PE | PG | WP;  CR3 = the shadow root;
 *   CR4      TSD only;  SYSENTER_CS = 0 (SYSENTER faults into the monitor)
 *   EFLAGS   the guest's arithmetic and control bits; IOPL 0; IF = the
 *            guest's in user mode, 0 at ring 1 (the virtual IF is the
 *            monitor's business)
 *
 * Only general registers and the guest-owned EFLAGS bits come back: the
 * rest of the virtual state changes only through the monitor.
 */
import type { Cpu } from "../../../hw/cpu/cpu.ts"
import { CR0_EM, CR0_ET, CR0_MP, CR0_NE, CR0_PE, CR0_PG, CR0_TS, CR0_WP } from "../../../hw/cpu/regs.ts"
import { type CpuState, Flag, type SegmentState } from "../../../hw/cpu/state.ts"
import {
  GDT_LIMIT,
  GDT_LINEAR,
  GUEST_LINEAR_TOP,
  IDT_LIMIT,
  IDT_LINEAR,
  TC_CODE_ACCESS,
  TC_CODE_SELECTOR,
  TSS_SELECTOR_BASE
} from "./monitor-region.ts"

/** EFLAGS bits the monitor owns on the pCPU (the guest's live in the virtual state). */
export const OWNED = Flag.IF | Flag.IOPL | Flag.VM | Flag.RF | Flag.TF | Flag.NT | Flag.VIF | Flag.VIP
/** Guest CR0 bits the pCPU runs with (FPU control); PE, PG, WP are the monitor's. */
const CR0_GUEST = CR0_MP | CR0_EM | CR0_TS | CR0_NE | CR0_ET
const CR4_TSD = 1 << 2

export interface PcpuEntry {
  /** EIP to start at: a TC address (translated kernel) or the guest's EIP. */
  readonly eip: number
  /** Machine CR3: the shadow root. */
  readonly root: number
  /** The guest is at virtual CPL 3 (runs at ring 3), else at ring 1. */
  readonly user: boolean
  /** Kernel code runs from the translation cache (false: `trap` mode, or user code). */
  readonly translated: boolean
  /** Linear base of this vCPU's TSS in the monitor region. */
  readonly tss: number
  readonly tscOffset: number
}

/** Load `cpu` with the monitor's view of virtual state `v` (`phys` is a scratch record, reused). */
export function enterPcpu(cpu: Cpu, v: CpuState, phys: CpuState, entry: PcpuEntry): void {
  const p = phys
  const user = entry.user
  p.eax = v.eax
  p.ecx = v.ecx
  p.edx = v.edx
  p.ebx = v.ebx
  p.esp = v.esp
  p.ebp = v.ebp
  p.esi = v.esi
  p.edi = v.edi
  p.eip = entry.eip >>> 0
  p.eflags = ((v.eflags & ~OWNED) | (user ? v.eflags & Flag.IF : 0) | 2) >>> 0
  const ring = user ? 3 : 1
  truncate(v.es, p.es, ring)
  truncate(v.ds, p.ds, ring)
  truncate(v.fs, p.fs, ring)
  truncate(v.gs, p.gs, ring)
  truncate(v.ss, p.ss, ring)
  // at CPL = ring, SS.DPL = SS.RPL = ring (SDM 3A 5.7): as a real deprivileged stack segment would be
  p.ss.access = (p.ss.access & ~0x60) | (ring << 5)
  p.ss.selector = (v.ss.selector & ~3) | ring
  if (!entry.translated) {
    truncate(v.cs, p.cs, ring)
    p.cs.selector = (v.cs.selector & ~3) | ring
  } else {
    p.cs.selector = TC_CODE_SELECTOR
    p.cs.base = 0
    p.cs.limit = 0xffffffff
    p.cs.access = TC_CODE_ACCESS
  }
  p.ldtr.selector = 0
  p.ldtr.base = 0
  p.ldtr.limit = 0
  p.ldtr.access = 0x10000
  p.tr.selector = TSS_SELECTOR_BASE
  p.tr.base = entry.tss
  p.tr.limit = 0x67
  p.tr.access = 0x8b
  p.gdtr.base = GDT_LINEAR
  p.gdtr.limit = GDT_LIMIT
  p.idtr.base = IDT_LINEAR
  p.idtr.limit = IDT_LIMIT
  p.cr0 = ((v.cr0 & CR0_GUEST) | CR0_PE | CR0_PG | CR0_WP) >>> 0
  p.cr2 = 0
  p.cr3 = entry.root >>> 0
  p.cr4 = v.cr4 & CR4_TSD
  p.msr.apicBase = v.msr.apicBase
  // SYSENTER would enter ring 0 with the guest's CS: a null CS makes it #GP into the monitor
  p.msr.sysenterCs = 0
  p.msr.sysenterEsp = 0
  p.msr.sysenterEip = 0
  p.halted = false
  p.a20 = true
  cpu.loadRegisters(p)
  cpu.hostTraps = true
  cpu.directSoftwareVector = -1 // every INT n comes to the monitor (a pv guest's direct gate is not ours)
  cpu.tscOffset = entry.tscOffset
  cpu.flushTlb(false)
}

/** The pCPU's general registers and guest-owned EFLAGS bits back into virtual state `v`. */
export function savePcpu(cpu: Cpu, v: CpuState): void {
  const r = cpu.r32
  v.eax = r[0]! >>> 0
  v.ecx = r[1]! >>> 0
  v.edx = r[2]! >>> 0
  v.ebx = r[3]! >>> 0
  v.esp = r[4]! >>> 0
  v.ebp = r[5]! >>> 0
  v.esi = r[6]! >>> 0
  v.edi = r[7]! >>> 0
  v.eflags = ((cpu.getFlags() & ~OWNED) | (v.eflags & OWNED) | 2) >>> 0
}

/**
 * The pCPU's copy of a guest segment at `ring`: the limit truncated so no
 * offset reaches the monitor region, DPL 0 raised to the ring. A segment
 * that cannot be truncated that way (expand-down, or based inside the
 * monitor region) is made unusable on the pCPU: every access through it
 * faults into the monitor, which emulates it against the guest's own
 * segment.
 */
export function truncate(from: SegmentState, to: SegmentState, ring: number): void {
  to.selector = from.selector
  to.base = from.base >>> 0
  to.access = from.access
  to.limit = from.limit >>> 0
  if ((from.access & 0x10000) !== 0) return
  const dpl = (from.access >> 5) & 3
  if (dpl < ring) to.access = (from.access & ~0x60) | (ring << 5)
  const expandDown = (from.access & 0x1c) === 0x14
  const top = GUEST_LINEAR_TOP - (from.base >>> 0)
  if (expandDown || top < 0) {
    to.access |= 0x10000
    to.limit = 0
  } else {
    to.limit = Math.min(to.limit, top)
  }
}
