/**
 * Protected-mode segmentation and far control transfers (Intel SDM Vol. 3A
 * 3.4-3.5 segment selectors and descriptors, 5.3-5.8 protection checks,
 * call gates and privilege-level changes; Vol. 2 JMP, CALL, RET, MOV/POP
 * Sreg, LDS..LGS "Operation" sections).
 *
 * Every check here raises the exception and error code the SDM lists
 * (#GP(selector), #NP(selector), #SS(selector), #TS(selector)); state is
 * committed only after every check and every stack write has succeeded.
 * Not modelled yet: hardware task switching (task gates and TSS
 * descriptors as JMP/CALL targets raise #GP(selector)), virtual-8086 mode.
 */
import type { Cpu } from "./cpu.ts"
import {
  AR_ACCESSED,
  AR_DB,
  AR_UNUSABLE,
  CS,
  DS,
  ES,
  ESP,
  FS,
  GP,
  GS,
  NP,
  SS,
  SSF,
  TS,
  TYPE_CODE,
  TYPE_CONFORMING,
  TYPE_EXPAND_DOWN,
  TYPE_RW
} from "./regs.ts"

/** The descriptor most recently read (scratch: copy the fields before reading another). */
export const desc = { lo: 0, hi: 0, addr: 0 }

export const descBase = (lo: number, hi: number): number => (lo >>> 16) | ((hi & 0xff) << 16) | (hi & 0xff000000) | 0
export const descLimit = (lo: number, hi: number): number => {
  const raw = (lo & 0xffff) | (hi & 0xf0000)
  return (hi & (1 << 23)) !== 0 ? ((raw << 12) | 0xfff) >>> 0 : raw
}
/** Descriptor bits 40-47 and 52-55 in the VMX access-rights layout. */
export const descAccess = (hi: number): number => (hi >> 8) & 0xf0ff
export const descDpl = (hi: number): number => (hi >> 13) & 3
export const descPresent = (hi: number): boolean => (hi & 0x8000) !== 0
export const descIsSystem = (hi: number): boolean => (hi & 0x1000) === 0
export const descType = (hi: number): number => (hi >> 8) & 0xf

/**
 * Read the descriptor for `selector` from the GDT or LDT into `desc`.
 * A selector past the table limit raises `vector`(selector).
 */
export function readDescriptor(c: Cpu, selector: number, vector: number, ext = 0): void {
  const index = selector & 0xfff8
  let base: number
  let limit: number
  if ((selector & 4) !== 0) {
    if ((c.ldtr.access & AR_UNUSABLE) !== 0 || (c.ldtr.selector & 0xfffc) === 0)
      c.fault(vector, (selector & 0xfffc) | ext)
    base = c.ldtr.base
    limit = c.ldtr.limit
  } else {
    base = c.gdtrBase
    limit = c.gdtrLimit
  }
  if (index + 7 > limit) c.fault(vector, (selector & 0xfffc) | ext)
  desc.addr = (base + index) | 0
  desc.lo = c.sysLd32(desc.addr)
  desc.hi = c.sysLd32(desc.addr + 4)
}

/** Set the accessed bit of the descriptor in `desc` (a locked read-modify-write on real hardware). */
export function markAccessed(c: Cpu): void {
  if ((desc.hi & 0x100) === 0) {
    desc.hi |= 0x100
    c.sysSt8(desc.addr + 5, (desc.hi >>> 8) & 0xff)
  }
}

/** Load a data segment register or SS (MOV/POP Sreg, LDS...): SDM Vol. 2 MOV "Operation". */
export function loadDataSegment(c: Cpu, seg: number, selector: number): void {
  selector &= 0xffff
  if (!c.pe) {
    c.loadSegReal(seg, selector)
    return
  }
  const rpl = selector & 3
  const error = selector & 0xfffc
  if (error === 0) {
    if (seg === SS) c.fault(GP, 0)
    c.loadSegCache(seg, selector, 0, 0, AR_UNUSABLE)
    return
  }
  readDescriptor(c, selector, GP)
  const { lo, hi } = desc
  const type = descType(hi)
  const dpl = descDpl(hi)
  if (seg === SS) {
    if (rpl !== c.cpl || dpl !== c.cpl || descIsSystem(hi) || (type & TYPE_CODE) !== 0 || (type & TYPE_RW) === 0) {
      c.fault(GP, error)
    }
    if (!descPresent(hi)) c.fault(SSF, error)
  } else {
    if (descIsSystem(hi) || ((type & TYPE_CODE) !== 0 && (type & TYPE_RW) === 0)) c.fault(GP, error)
    const conformingCode = (type & (TYPE_CODE | TYPE_CONFORMING)) === (TYPE_CODE | TYPE_CONFORMING)
    if (!conformingCode && (rpl > dpl || c.cpl > dpl)) c.fault(GP, error)
    if (!descPresent(hi)) c.fault(NP, error)
  }
  markAccessed(c)
  c.loadSegCache(seg, selector, descBase(lo, hi), descLimit(lo, hi), descAccess(desc.hi) | AR_ACCESSED)
}

/** Is `offset..offset+size-1` inside a segment with this limit and access rights? */
export function inLimit(access: number, limit: number, offset: number, size: number): boolean {
  const first = offset >>> 0
  const last = first + size - 1
  if ((access & TYPE_CODE) === 0 && (access & TYPE_EXPAND_DOWN) !== 0) {
    return first > limit && last <= ((access & AR_DB) !== 0 ? 0xffffffff : 0xffff)
  }
  return last <= limit
}

/** Values to push on a stack being switched to, written before anything is committed. */
const scratch = new Int32Array(40)

/**
 * Write `count` values from `scratch` downward onto the stack described by
 * base/limit/access, starting just below `sp` (each `size` bytes).
 * Returns the new stack pointer. Faults with #SS(`error`) if a push leaves the segment.
 */
function writeStack(
  c: Cpu,
  base: number,
  limit: number,
  access: number,
  sp: number,
  count: number,
  size: 2 | 4,
  error: number
): number {
  const b32 = (access & AR_DB) !== 0
  let p = sp
  for (let i = 0; i < count; i++) {
    p = b32 ? (p - size) | 0 : (p - size) & 0xffff
    if (!inLimit(access, limit, p, size)) c.fault(SSF, error)
  }
  // The pushes are made at the privilege of the stack being written (its DPL, which equals
  // the new CPL), not the CPL being left: a switch from ring 3 writes the ring-0 stack with
  // supervisor-mode accesses (SDM Vol. 3A 4.6: accesses at CPL < 3 are supervisor-mode;
  // 6.12.1 and 5.8.5: the processor switches to the inner stack, then pushes).
  const user = ((access >> 5) & 3) === 3
  p = sp
  for (let i = 0; i < count; i++) {
    p = b32 ? (p - size) | 0 : (p - size) & 0xffff
    const lin = (base + p) | 0
    if (size === 4) c.stSlow(lin, 4, scratch[i]!, user)
    else c.stSlow(lin, 2, scratch[i]! & 0xffff, user)
  }
  return p
}

export const stackScratch = scratch
export { writeStack }

/** Read the TSS's SS:ESP for privilege level `dpl` (SDM 7.2.1 figure 7-2, 16-bit TSS figure 7-11). */
export function tssStack(c: Cpu, dpl: number, ext: number): { ss: number; esp: number } {
  const type = c.tr.access & 0xf
  const is32 = (type & 8) !== 0
  const off = is32 ? 4 + dpl * 8 : 2 + dpl * 4
  const last = off + (is32 ? 5 : 3)
  if (last > c.tr.limit) c.fault(TS, (c.tr.selector & 0xfffc) | ext)
  if (is32) return { esp: c.sysLd32(c.tr.base + off), ss: c.sysLd16(c.tr.base + off + 4) }
  return { esp: c.sysLd16(c.tr.base + off), ss: c.sysLd16(c.tr.base + off + 2) }
}

/**
 * Validate the SS selector taken from a TSS for a switch to privilege
 * level `dpl` (SDM Vol. 3A 6.12.1 "stack switching", #TS conditions) and
 * leave its descriptor in the returned record.
 */
export const checkTssStackSegment = (c: Cpu, ss: number, dpl: number, ext: number) =>
  checkStackSegment(c, ss, dpl, TS, ext)

/**
 * The checks every stack-segment switch makes (SDM 6.12.1 for a TSS stack,
 * RET/IRET "Operation" for a return to an outer level): a non-null selector,
 * RPL = DPL = the new privilege, a writable data segment (else `vector`, #TS
 * or #GP, with the selector), present (else #SS). Leaves the descriptor in
 * `desc` and returns its cache values.
 */
function checkStackSegment(c: Cpu, selector: number, privilege: number, vector: number, ext: number) {
  const error = (selector & 0xfffc) | ext
  if ((selector & 0xfffc) === 0) c.fault(vector, ext)
  readDescriptor(c, selector, vector, ext)
  const { lo, hi } = desc
  const type = descType(hi)
  if (
    (selector & 3) !== privilege ||
    descDpl(hi) !== privilege ||
    descIsSystem(hi) ||
    (type & TYPE_CODE) !== 0 ||
    (type & TYPE_RW) === 0
  ) {
    c.fault(vector, error)
  }
  if (!descPresent(hi)) c.fault(SSF, error)
  markAccessed(c)
  return { base: descBase(lo, hi), limit: descLimit(lo, hi), access: descAccess(desc.hi) | AR_ACCESSED }
}

/** Check a code-segment descriptor in `desc` as a far JMP/CALL target (SDM 5.8.1). */
function checkDirectCode(c: Cpu, selector: number): void {
  const hi = desc.hi
  const type = descType(hi)
  const error = selector & 0xfffc
  if ((type & TYPE_CONFORMING) !== 0) {
    if (descDpl(hi) > c.cpl) c.fault(GP, error)
  } else if ((selector & 3) > c.cpl || descDpl(hi) !== c.cpl) {
    c.fault(GP, error)
  }
  if (!descPresent(hi)) c.fault(NP, error)
}

function loadCode(c: Cpu, selector: number, rpl: number, offset: number): void {
  const { lo, hi } = desc
  const limit = descLimit(lo, hi)
  if (offset >>> 0 > limit) c.fault(GP, 0)
  markAccessed(c)
  c.loadSegCache(CS, (selector & 0xfffc) | rpl, descBase(lo, hi), limit, descAccess(desc.hi) | AR_ACCESSED)
  c.eip = offset | 0
}

/** JMP ptr16:16/32 and JMP m16:16/32 (SDM Vol. 2 JMP). */
export function farJump(c: Cpu, selector: number, offset: number): void {
  if (!c.pe) {
    c.loadSegReal(CS, selector)
    c.eip = offset | 0
    return
  }
  const error = selector & 0xfffc
  if (error === 0) c.fault(GP, 0)
  readDescriptor(c, selector, GP)
  const hi = desc.hi
  if (!descIsSystem(hi)) {
    if ((descType(hi) & TYPE_CODE) === 0) c.fault(GP, error)
    checkDirectCode(c, selector)
    loadCode(c, selector, c.cpl, offset)
    return
  }
  const type = descType(hi)
  if (type !== 4 && type !== 12) c.fault(GP, error) // task gates and TSSs: task switching not modelled
  const gate = gateTarget(c, selector)
  const th = desc.hi
  const conforming = (descType(th) & TYPE_CONFORMING) !== 0
  if (conforming ? descDpl(th) > c.cpl : descDpl(th) !== c.cpl) c.fault(GP, gate.selector & 0xfffc)
  if (!descPresent(th)) c.fault(NP, gate.selector & 0xfffc)
  loadCode(c, gate.selector, c.cpl, gate.offset)
}

/** Validate a call gate in `desc` and read its target code descriptor into `desc` (SDM 5.8.4). */
function gateTarget(c: Cpu, selector: number) {
  const { lo, hi } = desc
  const error = selector & 0xfffc
  if (descDpl(hi) < c.cpl || descDpl(hi) < (selector & 3)) c.fault(GP, error)
  if (!descPresent(hi)) c.fault(NP, error)
  const is32 = descType(hi) === 12
  const target = lo >>> 16
  const offset = is32 ? (lo & 0xffff) | (hi & 0xffff0000) : lo & 0xffff
  const params = hi & 0x1f
  if ((target & 0xfffc) === 0) c.fault(GP, 0)
  readDescriptor(c, target, GP)
  const th = desc.hi
  if (descIsSystem(th) || (descType(th) & TYPE_CODE) === 0 || descDpl(th) > c.cpl) c.fault(GP, target & 0xfffc)
  return { selector: target, offset, is32, params }
}

/** CALL ptr16:16/32 and CALL m16:16/32 (SDM Vol. 2 CALL), with call gates to more privilege. */
export function farCall(c: Cpu, selector: number, offset: number, o32: boolean): void {
  const size = o32 ? 4 : 2
  const oldCs = c.segSel[CS]!
  const oldEip = c.eip
  if (!c.pe) {
    pushPair(c, oldCs, oldEip, size)
    c.loadSegReal(CS, selector)
    c.eip = o32 ? offset | 0 : offset & 0xffff
    return
  }
  const error = selector & 0xfffc
  if (error === 0) c.fault(GP, 0)
  readDescriptor(c, selector, GP)
  const hi = desc.hi
  if (!descIsSystem(hi)) {
    if ((descType(hi) & TYPE_CODE) === 0) c.fault(GP, error)
    checkDirectCode(c, selector)
    const target = o32 ? offset | 0 : offset & 0xffff
    if (target >>> 0 > descLimit(desc.lo, desc.hi)) c.fault(GP, 0)
    const saved = { ...desc }
    pushPair(c, oldCs, oldEip, size)
    Object.assign(desc, saved)
    loadCode(c, selector, c.cpl, target)
    return
  }
  const type = descType(hi)
  if (type !== 4 && type !== 12) c.fault(GP, error)
  const gate = gateTarget(c, selector)
  const th = desc.hi
  const target = { ...desc }
  if (!descPresent(th)) c.fault(NP, gate.selector & 0xfffc)
  const gsize = gate.is32 ? 4 : 2
  const dpl = descDpl(th)
  if ((descType(th) & TYPE_CONFORMING) === 0 && dpl < c.cpl) {
    // more privilege: switch to the inner stack from the TSS, copy parameters (SDM 5.8.5)
    const { ss, esp } = tssStack(c, dpl, 0)
    const stack = checkTssStackSegment(c, ss, dpl, 0)
    const oldSs = c.segSel[SS]!
    const oldEsp = c.r32[ESP]!
    scratch[0] = oldSs
    scratch[1] = gsize === 4 ? oldEsp : oldEsp & 0xffff
    for (let i = 0; i < gate.params; i++) scratch[2 + i] = c.peek((gate.params - 1 - i) * gsize, gsize)
    scratch[2 + gate.params] = oldCs
    scratch[3 + gate.params] = oldEip
    const newSp = writeStack(c, stack.base, stack.limit, stack.access, esp, 4 + gate.params, gsize, ss & 0xfffc)
    if (gate.offset >>> 0 > descLimit(target.lo, target.hi)) c.fault(GP, 0)
    Object.assign(desc, target)
    c.setCpl(dpl)
    c.loadSegCache(SS, ss, stack.base, stack.limit, stack.access)
    if ((stack.access & AR_DB) !== 0) c.r32[ESP] = newSp
    else c.r16[ESP << 1] = newSp
    loadCode(c, gate.selector, dpl, gate.offset)
    return
  }
  if (gate.offset >>> 0 > descLimit(target.lo, target.hi)) c.fault(GP, 0)
  pushPair(c, oldCs, oldEip, gsize)
  Object.assign(desc, target)
  loadCode(c, gate.selector, c.cpl, gate.offset)
}

/** Push CS then EIP on the current stack, both or neither. */
function pushPair(c: Cpu, cs: number, eip: number, size: 2 | 4): void {
  const sp1 = c.spPlus(-size)
  const sp2 = c.spPlus(-2 * size)
  const a = c.linW(SS, sp1, size)
  const b = c.linW(SS, sp2, size)
  if (size === 4) {
    c.st32(a, cs)
    c.st32(b, eip)
  } else {
    c.st16(a, cs)
    c.st16(b, eip & 0xffff)
  }
  c.setSp(sp2)
}

/** After a return to an outer level: null DS/ES/FS/GS that the new CPL may not use (SDM RET "Operation"). */
export function dropInaccessibleSegments(c: Cpu): void {
  for (const seg of [ES, DS, FS, GS]) {
    const ar = c.segAccess[seg]!
    if ((ar & AR_UNUSABLE) !== 0) continue
    const dpl = (ar >> 5) & 3
    const conformingCode = (ar & (TYPE_CODE | TYPE_CONFORMING)) === (TYPE_CODE | TYPE_CONFORMING)
    if (!conformingCode && dpl < c.cpl) c.loadSegCache(seg, 0, 0, 0, AR_UNUSABLE)
  }
}

/**
 * Validate the CS selector popped by RETF/IRET in protected mode (SDM RET,
 * IRET "Operation"); leaves the descriptor in `desc`.
 */
export function checkReturnCode(c: Cpu, selector: number): void {
  const error = selector & 0xfffc
  if (error === 0) c.fault(GP, 0)
  readDescriptor(c, selector, GP)
  const hi = desc.hi
  const rpl = selector & 3
  if (descIsSystem(hi) || (descType(hi) & TYPE_CODE) === 0 || rpl < c.cpl) c.fault(GP, error)
  if ((descType(hi) & TYPE_CONFORMING) !== 0 ? descDpl(hi) > rpl : descDpl(hi) !== rpl) c.fault(GP, error)
  if (!descPresent(hi)) c.fault(NP, error)
}

/** Validate the SS popped when returning to outer level `rpl`; returns its cache values. */
export const checkReturnStack = (c: Cpu, selector: number, rpl: number) => checkStackSegment(c, selector, rpl, GP, 0)

/** RETF [imm16] (SDM Vol. 2 RET, far return). */
export function farReturn(c: Cpu, o32: boolean, release: number): void {
  const size = o32 ? 4 : 2
  const eip = c.peek(0, size)
  const cs = c.peek(size, size) & 0xffff
  if (!c.pe) {
    c.loadSegReal(CS, cs)
    c.eip = o32 ? eip : eip & 0xffff
    c.setSp(c.spPlus(2 * size + release))
    return
  }
  checkReturnCode(c, cs)
  const code = { ...desc }
  const rpl = cs & 3
  if (rpl > c.cpl) {
    const esp = c.peek(2 * size + release, size)
    const ss = c.peek(3 * size + release, size) & 0xffff
    const stack = checkReturnStack(c, ss, rpl)
    Object.assign(desc, code)
    if (eip >>> 0 > descLimit(code.lo, code.hi)) c.fault(GP, 0)
    loadCode(c, cs, rpl, o32 ? eip : eip & 0xffff)
    c.setCpl(rpl)
    c.loadSegCache(SS, ss, stack.base, stack.limit, stack.access)
    c.setSp(c.ssB ? (esp + release) | 0 : (esp + release) & 0xffff)
    dropInaccessibleSegments(c)
    return
  }
  Object.assign(desc, code)
  loadCode(c, cs, c.cpl, o32 ? eip : eip & 0xffff)
  c.setSp(c.spPlus(2 * size + release))
}
