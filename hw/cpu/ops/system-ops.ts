/**
 * System instructions (Intel SDM Vol. 2, and Vol. 3A 2.7-2.8): descriptor
 * tables (LGDT LIDT SGDT SIDT LLDT SLDT LTR STR), LMSW SMSW CLTS, LAR LSL
 * VERR VERW ARPL, MOV to/from CRn and DRn, INVLPG INVD WBINVD, RDMSR WRMSR
 * RDTSC CPUID, SYSENTER SYSEXIT, UD2, and the x87 escapes D8-DF and WAIT
 * for a CPU without an FPU.
 *
 * Privileged instructions raise #GP(0) at CPL > 0 in protected mode; the
 * protected-mode-only ones raise #UD in real mode.
 */
import type { Cpu } from "../cpu.ts"
import {
  AR_ACCESSED,
  AR_DB,
  AR_G,
  AR_P,
  AR_S,
  AR_UNUSABLE,
  CR0_EM,
  CR0_ET,
  CR0_MP,
  CR0_NE,
  CR0_PE,
  CR0_PG,
  CR0_TS,
  CR0_WP,
  CR4_DE,
  CR4_PGE,
  CR4_PSE,
  CR4_TSD,
  CS,
  DB,
  ESP,
  F_IF,
  F_RF,
  F_VM,
  F_ZF,
  GP,
  NM,
  NP,
  SS,
  TYPE_CODE,
  TYPE_CONFORMING,
  TYPE_RW,
  UD
} from "../regs.ts"
import {
  desc,
  descAccess,
  descBase,
  descDpl,
  descIsSystem,
  descLimit,
  descPresent,
  descType,
  readDescriptor
} from "../segmentation.ts"
import { ExitReason } from "../vmx/exit-reasons.ts"
import {
  checkClts,
  checkControlExit,
  checkCr3Read,
  checkCr3Write,
  checkLmsw,
  checkMsrExit,
  checkUnconditionalExit,
  crReadValue,
  crWriteValue
} from "../vmx/exits.ts"
import { Proc2Controls, ProcControls } from "../vmx/vmcs.ts"
import { vmExitNow } from "../vmx/vmx.ts"
import { cpuid } from "./cpuid.ts"
import type { Op } from "./types.ts"

/** The TSC as this software sees it: simulated cycles plus IA32_TSC offset, plus the VMCS TSC offset in a guest (SDM 3C 26.3). */
function guestTsc(c: Cpu): number {
  const vmcs = c.vmcs
  const offset = vmcs !== null && (c.vmProc & ProcControls.UseTscOffsetting) !== 0 ? vmcs.controls.tscOffset : 0
  return Math.max(0, c.cycles + c.tscOffset + offset)
}

function requireCpl0(c: Cpu): void {
  if (c.pe && c.cpl !== 0) c.fault(GP, 0)
}

function requireProtected(c: Cpu): void {
  if (!c.pe) c.fault(UD)
}

/** The linear address of a ModRM memory operand (#UD for a register operand). */
function memoryOperand(c: Cpu, m: number): void {
  if (m >= 0xc0) c.fault(UD)
  c.decodeEA(m)
}

/** CR0 bits software can set (ET is hard-wired to 1 on 486+; reserved bits ignored). */
const CR0_WRITABLE = CR0_PE | CR0_MP | CR0_EM | CR0_TS | CR0_NE | CR0_WP | (1 << 18) | (1 << 29) | (1 << 30) | CR0_PG

export function writeCr0(c: Cpu, value: number): void {
  if ((value & CR0_PG) !== 0 && (value & CR0_PE) === 0) c.fault(GP, 0)
  if ((value & (1 << 29)) !== 0 && (value & (1 << 30)) === 0) c.fault(GP, 0) // NW without CD
  const old = c.cr0
  c.cr0 = (value & CR0_WRITABLE) | CR0_ET
  if (((old ^ c.cr0) & (CR0_PG | CR0_PE | CR0_WP)) !== 0) c.flushTlb(false)
  c.updateMode()
}

const CR4_SUPPORTED = CR4_TSD | CR4_DE | CR4_PSE | CR4_PGE | (1 << 13)

export function writeCr4(c: Cpu, value: number): void {
  if ((value & ~CR4_SUPPORTED) !== 0) c.fault(GP, 0)
  const old = c.cr4
  c.cr4 = value
  if (((old ^ value) & (CR4_PSE | CR4_PGE)) !== 0) c.flushTlb(false)
}

/** Model-specific registers this CPU has (SDM Vol. 4): TSC, APIC base, SYSENTER. */
function readMsr(c: Cpu, index: number): [number, number] {
  switch (index >>> 0) {
    case 0x10: {
      const tsc = guestTsc(c)
      return [(tsc % 2 ** 32) | 0, Math.floor(tsc / 2 ** 32) | 0]
    }
    case 0x1b:
      return [c.apicBase, 0]
    case 0x174:
      return [c.sysenterCs, 0]
    case 0x175:
      return [c.sysenterEsp, 0]
    case 0x176:
      return [c.sysenterEip, 0]
    default:
      return c.fault(GP, 0)
  }
}

function writeMsr(c: Cpu, index: number, lo: number, hi: number): void {
  switch (index >>> 0) {
    case 0x10:
      // P6 family (this CPU reports family 6): WRMSR writes the low 32 bits of the TSC and clears the high 32 (SDM 3B 17.17)
      void hi
      c.tscOffset = (lo >>> 0) - c.cycles
      return
    case 0x1b:
      c.apicBase = (lo & 0xfffff900) | 0
      return
    case 0x174:
      c.sysenterCs = lo & 0xffff
      return
    case 0x175:
      c.sysenterEsp = lo
      return
    case 0x176:
      c.sysenterEip = lo
      return
    default:
      c.fault(GP, 0)
  }
}

/** Group 6 (0F 00): SLDT STR LLDT LTR VERR VERW. */
function group6(c: Cpu): void {
  const m = c.fetch8()
  const k = (m >> 3) & 7
  requireProtected(c)
  switch (k) {
    case 0:
    case 1: {
      const sel = k === 0 ? c.ldtr.selector : c.tr.selector
      if (m >= 0xc0) c.setReg(c.o32 ? 4 : 2, m & 7, sel)
      else c.writeRM(m, 2, sel)
      return
    }
    case 2: {
      requireCpl0(c)
      const sel = c.readRM(m, 2)
      if ((sel & 0xfffc) === 0) {
        c.ldtr = { selector: sel, base: 0, limit: 0, access: AR_UNUSABLE }
        return
      }
      if ((sel & 4) !== 0) c.fault(GP, sel & 0xfffc)
      readDescriptor(c, sel, GP)
      if (!descIsSystem(desc.hi) || descType(desc.hi) !== 2) c.fault(GP, sel & 0xfffc)
      if (!descPresent(desc.hi)) c.fault(NP, sel & 0xfffc)
      c.ldtr = {
        selector: sel,
        base: descBase(desc.lo, desc.hi) >>> 0,
        limit: descLimit(desc.lo, desc.hi),
        access: descAccess(desc.hi)
      }
      return
    }
    case 3: {
      requireCpl0(c)
      const sel = c.readRM(m, 2)
      if ((sel & 0xfffc) === 0 || (sel & 4) !== 0) c.fault(GP, sel & 0xfffc)
      readDescriptor(c, sel, GP)
      const type = descType(desc.hi)
      if (!descIsSystem(desc.hi) || (type !== 1 && type !== 9)) c.fault(GP, sel & 0xfffc)
      if (!descPresent(desc.hi)) c.fault(NP, sel & 0xfffc)
      // mark the TSS busy (type 1 -> 3, 9 -> 11)
      c.sysSt8(desc.addr + 5, ((desc.hi >>> 8) & 0xff) | 2)
      c.tr = {
        selector: sel,
        base: descBase(desc.lo, desc.hi) >>> 0,
        limit: descLimit(desc.lo, desc.hi),
        access: descAccess(desc.hi) | 2
      }
      return
    }
    case 4:
    case 5: {
      const sel = c.readRM(m, 2)
      c.flags = c.getFlags() & ~F_ZF
      if ((sel & 0xfffc) === 0 || !visibleDescriptor(c, sel)) return
      const hi = desc.hi
      const type = descType(hi)
      if (descIsSystem(hi)) return
      const conformingCode = (type & (TYPE_CODE | TYPE_CONFORMING)) === (TYPE_CODE | TYPE_CONFORMING)
      if (!conformingCode && (descDpl(hi) < c.cpl || descDpl(hi) < (sel & 3))) return
      const ok =
        k === 4
          ? (type & TYPE_CODE) === 0 || (type & TYPE_RW) !== 0
          : (type & TYPE_CODE) === 0 && (type & TYPE_RW) !== 0
      if (ok) c.flags |= F_ZF
      return
    }
    default:
      c.fault(UD)
  }
}

/** Read `sel`'s descriptor if it is inside its table (LAR/LSL/VERR/VERW never fault on that). */
function visibleDescriptor(c: Cpu, sel: number): boolean {
  const table = (sel & 4) !== 0 ? c.ldtr : { base: c.gdtrBase, limit: c.gdtrLimit, access: 0, selector: 1 }
  if ((table.access & AR_UNUSABLE) !== 0 || (sel & 0xfff8) + 7 > table.limit) return false
  readDescriptor(c, sel, GP)
  return true
}

/** Group 7 (0F 01): SGDT SIDT LGDT LIDT SMSW LMSW INVLPG. */
function group7(c: Cpu): void {
  const m = c.fetch8()
  const k = (m >> 3) & 7
  if (m === 0xc1) {
    // VMCALL (0F 01 C1): always a VM exit in non-root operation, #UD outside VMX operation (SDM 3C 31 VMCALL)
    checkUnconditionalExit(c, ExitReason.Vmcall)
    c.fault(UD)
  }
  switch (k) {
    case 0:
    case 1: {
      memoryOperand(c, m)
      const base = k === 0 ? c.gdtrBase : c.idtrBase
      const limit = k === 0 ? c.gdtrLimit : c.idtrLimit
      c.wr16(c.eaSeg, c.ea, limit)
      // with a 16-bit operand the 386 stores the top base byte as 0 (SDM SGDT)
      c.wr32(c.eaSeg, (c.ea + 2) | 0, c.o32 ? base : base & 0xffffff)
      return
    }
    case 2:
    case 3: {
      memoryOperand(c, m)
      requireCpl0(c)
      const limit = c.rd16(c.eaSeg, c.ea)
      let base = c.rd32(c.eaSeg, (c.ea + 2) | 0)
      if (!c.o32) base &= 0xffffff
      if (k === 2) {
        c.gdtrBase = base
        c.gdtrLimit = limit
      } else {
        c.idtrBase = base
        c.idtrLimit = limit
      }
      return
    }
    case 4: {
      const cr0 = crReadValue(c, 0, c.cr0)
      if (m >= 0xc0) c.setReg(c.o32 ? 4 : 2, m & 7, cr0 & (c.o32 ? -1 : 0xffff))
      else c.writeRM(m, 2, cr0 & 0xffff)
      return
    }
    case 6: {
      requireCpl0(c)
      // LMSW: loads PE MP EM TS; cannot clear PE. In a guest, host-owned bits keep their value (SDM 3C 26.3).
      let v: number
      let linear = -1
      if (m >= 0xc0) v = c.getReg(2, m & 7)
      else {
        c.decodeEA(m)
        linear = (c.segBase[c.eaSeg]! + c.ea) | 0
        v = c.rd16(c.eaSeg, c.ea)
      }
      checkLmsw(c, v, linear)
      const owned = c.vmcs === null ? 0 : c.vmcs.controls.cr0GuestHostMask & 0xf
      const loaded = (c.cr0 & ~0xe) | (v & 0xf) | (c.cr0 & CR0_PE)
      writeCr0(c, (loaded & ~owned) | (c.cr0 & owned))
      return
    }
    case 7:
      memoryOperand(c, m)
      requireCpl0(c)
      checkControlExit(c, ProcControls.InvlpgExiting, ExitReason.Invlpg, (c.segBase[c.eaSeg]! + c.ea) | 0)
      c.flushTlbPage((c.segBase[c.eaSeg]! + c.ea) | 0)
      return
    default:
      c.fault(UD)
  }
}

/** LAR / LSL (0F 02 / 0F 03): ZF=1 and the access rights / limit when the descriptor is visible at CPL/RPL. */
function larLsl(lsl: boolean): Op {
  return (c) => {
    const m = c.fetch8()
    requireProtected(c)
    const sel = c.readRM(m, 2)
    c.flags = c.getFlags() & ~F_ZF
    if ((sel & 0xfffc) === 0 || !visibleDescriptor(c, sel)) return
    const hi = desc.hi
    const type = descType(hi)
    if (descIsSystem(hi)) {
      const allowed = lsl ? [1, 2, 3, 9, 11] : [1, 2, 3, 4, 5, 9, 11, 12]
      if (!allowed.includes(type)) return
    }
    const conformingCode = !descIsSystem(hi) && (type & (TYPE_CODE | TYPE_CONFORMING)) === (TYPE_CODE | TYPE_CONFORMING)
    if (!conformingCode && (descDpl(hi) < c.cpl || descDpl(hi) < (sel & 3))) return
    const size = c.o32 ? 4 : 2
    const g = (m >> 3) & 7
    if (lsl) c.setReg(size, g, descLimit(desc.lo, hi))
    else c.setReg(size, g, hi & (c.o32 ? 0x00f0ff00 : 0xff00))
    c.flags |= F_ZF
  }
}

export function installSystem(one: Array<Op>, two: Array<Op>): void {
  two[0x00] = group6
  two[0x01] = group7
  two[0x02] = larLsl(false)
  two[0x03] = larLsl(true)
  two[0x06] = (c) => {
    requireCpl0(c)
    checkClts(c)
    // a host-owned TS that did not exit (shadow TS clear) is left alone (SDM 3C 26.3)
    if (c.vmcs === null || (c.vmcs.controls.cr0GuestHostMask & CR0_TS) === 0) c.cr0 &= ~CR0_TS
  }
  two[0x08] = (c) => {
    // INVD always exits in non-root operation (SDM 3C 26.1.2)
    requireCpl0(c)
    checkUnconditionalExit(c, ExitReason.Invd)
  }
  two[0x09] = (c) => {
    requireCpl0(c)
    if (c.vmcs !== null && (c.vmProc2 & Proc2Controls.WbinvdExiting) !== 0) vmExitNow(c, ExitReason.Wbinvd)
  }
  two[0x0b] = (c) => c.fault(UD)
  two[0x20] = (c) => {
    const m = c.fetch8()
    requireCpl0(c)
    const n = (m >> 3) & 7
    if (n === 1 || n > 4) c.fault(UD)
    if (n === 3) checkCr3Read(c, m & 7)
    c.r32[m & 7] = n === 0 ? crReadValue(c, 0, c.cr0) : n === 2 ? c.cr2 : n === 3 ? c.cr3 : crReadValue(c, 4, c.cr4)
  }
  two[0x22] = (c) => {
    const m = c.fetch8()
    requireCpl0(c)
    const v = c.r32[m & 7]!
    switch ((m >> 3) & 7) {
      case 0:
        writeCr0(c, crWriteValue(c, 0, v, m & 7))
        return
      case 2:
        c.cr2 = v
        return
      case 3:
        checkCr3Write(c, v, m & 7)
        c.cr3 = v & ~0xfe7
        c.flushTlb(true)
        return
      case 4:
        writeCr4(c, crWriteValue(c, 4, v, m & 7))
        return
      default:
        c.fault(UD)
    }
  }
  const debugIndex = (c: Cpu, n: number): number => {
    if (n === 4 || n === 5) {
      if ((c.cr4 & CR4_DE) !== 0) c.fault(UD)
      return n + 2
    }
    return n
  }
  // MOV DR: exits with MOV-DR exiting; qualification = DR number | direction (bit 4: 1 = MOV from DR) | GPR << 8 (SDM table 28-4)
  two[0x21] = (c) => {
    const m = c.fetch8()
    requireCpl0(c)
    checkControlExit(c, ProcControls.MovDrExiting, ExitReason.DrAccess, ((m >> 3) & 7) | 0x10 | ((m & 7) << 8))
    c.r32[m & 7] = c.dr[debugIndex(c, (m >> 3) & 7)]!
  }
  two[0x23] = (c) => {
    const m = c.fetch8()
    requireCpl0(c)
    checkControlExit(c, ProcControls.MovDrExiting, ExitReason.DrAccess, ((m >> 3) & 7) | ((m & 7) << 8))
    const n = debugIndex(c, (m >> 3) & 7)
    const v = c.r32[m & 7]!
    c.dr[n] = n === 6 ? (v | 0xffff0ff0) & ~0x1000 : n === 7 ? (v | 0x400) & ~0xd000 : v
  }
  two[0x30] = (c) => {
    requireCpl0(c)
    checkMsrExit(c, c.r32[1]!, true)
    writeMsr(c, c.r32[1]!, c.r32[0]!, c.r32[2]!)
  }
  two[0x32] = (c) => {
    requireCpl0(c)
    checkMsrExit(c, c.r32[1]!, false)
    const [lo, hi] = readMsr(c, c.r32[1]!)
    c.r32[0] = lo
    c.r32[2] = hi
  }
  two[0x31] = (c) => {
    if ((c.cr4 & CR4_TSD) !== 0 && c.pe && c.cpl !== 0) c.fault(GP, 0)
    checkControlExit(c, ProcControls.RdtscExiting, ExitReason.Rdtsc)
    const tsc = guestTsc(c)
    c.r32[0] = (tsc % 2 ** 32) | 0
    c.r32[2] = Math.floor(tsc / 2 ** 32) | 0
  }
  two[0xa2] = cpuid
  two[0x34] = (c) => {
    // SYSENTER (SDM Vol. 2): flat ring-0 CS/SS derived from IA32_SYSENTER_CS
    if (!c.pe || (c.sysenterCs & 0xfffc) === 0) c.fault(GP, 0)
    c.flags = c.getFlags() & ~(F_VM | F_IF | F_RF)
    c.setCpl(0)
    c.loadSegCache(CS, c.sysenterCs & 0xfffc, 0, 0xffffffff, 0x9b | AR_S | AR_P | AR_DB | AR_G)
    c.loadSegCache(SS, (c.sysenterCs + 8) & 0xfffc, 0, 0xffffffff, 0x93 | AR_S | AR_P | AR_DB | AR_G)
    c.r32[ESP] = c.sysenterEsp
    c.eip = c.sysenterEip
  }
  two[0x35] = (c) => {
    // SYSEXIT: back to flat ring 3, ESP = ECX, EIP = EDX
    if (!c.pe || c.cpl !== 0 || (c.sysenterCs & 0xfffc) === 0) c.fault(GP, 0)
    c.setCpl(3)
    c.loadSegCache(CS, ((c.sysenterCs + 16) & 0xfffc) | 3, 0, 0xffffffff, 0xfb | AR_S | AR_P | AR_DB | AR_G)
    c.loadSegCache(SS, ((c.sysenterCs + 24) & 0xfffc) | 3, 0, 0xffffffff, 0xf3 | AR_S | AR_P | AR_DB | AR_G)
    c.r32[ESP] = c.r32[1]!
    c.eip = c.r32[2]!
  }
  one[0x63] = (c) => {
    // ARPL Ew, Gw: protected mode only
    const m = c.fetch8()
    requireProtected(c)
    const d = c.rmwBegin(m, 2)
    const s = c.getReg(2, (m >> 3) & 7)
    if ((d & 3) < (s & 3)) {
      c.rmwEnd(2, (d & ~3) | (s & 3))
      c.flags = c.getFlags() | F_ZF
    } else {
      c.rmwEnd(2, d)
      c.flags = c.getFlags() & ~F_ZF
    }
  }
  // x87 escapes: no FPU. CR0.EM or CR0.TS -> #NM (SDM Vol. 3A table 2-2); otherwise #UD (the opcode does not exist here)
  for (let op = 0xd8; op <= 0xdf; op++) {
    one[op] = (c) => {
      const m = c.fetch8()
      if (m < 0xc0) c.decodeEA(m)
      if ((c.cr0 & (CR0_EM | CR0_TS)) !== 0) c.fault(NM)
      c.fault(UD)
    }
  }
  one[0x9b] = (c) => {
    // WAIT/FWAIT: #NM when TS and MP are both set, else no pending x87 exception: a no-op
    if ((c.cr0 & (CR0_TS | CR0_MP)) === (CR0_TS | CR0_MP)) c.fault(NM)
  }
  void AR_ACCESSED
  void DB
}
