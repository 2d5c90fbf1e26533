/**
 * One-byte opcodes that move data (Intel SDM Vol. 2): MOV in all its forms
 * (88-8C, 8E, A0-A3, B0-BF, C6, C7), LEA, XCHG, XLAT, LAHF/SAHF, the stack
 * (PUSH/POP of registers, segment registers, immediates and memory,
 * PUSHA/POPA, PUSHF/POPF, ENTER/LEAVE), far-pointer loads LDS/LES and BOUND.
 */
import type { AccessSize } from "../bus.ts"
import type { Cpu } from "../cpu.ts"
import { BR, CS, DS, EBP, ES, ESP, F_AC, F_ID, F_IF, F_IOPL, F_NT, F_RF, F_VM, GP, SS, UD } from "../regs.ts"
import { loadDataSegment } from "../segmentation.ts"
import type { Op } from "./types.ts"

const vsize = (c: Cpu): 2 | 4 => (c.o32 ? 4 : 2)

/** POPA reads all eight values before writing any (a fault leaves the registers untouched). */
const popaScratch = new Int32Array(8)

/** MOV Sreg / POP Sreg target: CS is not loadable this way (#UD); SS loads start an interrupt shadow. */
export function loadSegmentRegister(c: Cpu, seg: number, selector: number): void {
  if (seg === CS || seg > 5) c.fault(UD)
  loadDataSegment(c, seg, selector)
  if (seg === SS) {
    c.intShadow = true
    c.eventPending = true
  }
}

/** POPF / IRET flag rules outside real mode (SDM POPF "Operation"): IOPL only at CPL 0, IF only at CPL <= IOPL. */
export function popFlags(c: Cpu, value: number, size: AccessSize): void {
  const old = c.getFlags()
  let writable = 0x4dd5 | F_AC | F_ID | F_NT | F_IOPL | F_IF // CF PF AF ZF SF TF DF OF NT + AC ID
  if (c.pe) {
    if (c.cpl > 0) writable &= ~F_IOPL
    if (c.cpl > (old & F_IOPL) >> 12) writable &= ~F_IF
  }
  writable &= ~(F_RF | F_VM)
  if (size === 2) writable &= 0xffff
  c.setFlags((old & ~writable) | (value & writable))
}

/** LDS/LES (and LSS/LFS/LGS in 0F B2-B5): load a far pointer m16:16/32 into Sreg:reg (SDM Vol. 2 LDS...). */
export const loadFarPointer =
  (seg: number): Op =>
  (c) => {
    const m = c.fetch8()
    if (m >= 0xc0) c.fault(UD)
    c.decodeEA(m)
    const size = vsize(c)
    const off = size === 4 ? c.rd32(c.eaSeg, c.ea) : c.rd16(c.eaSeg, c.ea)
    const sel = c.rd16(c.eaSeg, (c.ea + size) | 0)
    loadSegmentRegister(c, seg, sel)
    c.setReg(size, (m >> 3) & 7, off)
  }

/** POP ES/SS/DS (and POP FS/GS in 0F A1/A9): the selector is loaded before the stack pointer moves. */
export const popSegment =
  (seg: number): Op =>
  (c) => {
    const size = vsize(c)
    loadSegmentRegister(c, seg, c.peek(0, size) & 0xffff)
    c.setSp(c.spPlus(size))
  }

export function installMove(one: Array<Op>): void {
  one[0x88] = (c) => {
    const m = c.fetch8()
    c.writeRM(m, 1, c.getReg(1, (m >> 3) & 7))
  }
  one[0x89] = (c) => {
    const m = c.fetch8()
    if (m >= 0xc0 && c.o32) {
      c.r32[m & 7] = c.r32[(m >> 3) & 7]!
      return
    }
    const size = vsize(c)
    c.writeRM(m, size, c.getReg(size, (m >> 3) & 7))
  }
  one[0x8a] = (c) => {
    const m = c.fetch8()
    c.setReg(1, (m >> 3) & 7, c.readRM(m, 1))
  }
  one[0x8b] = (c) => {
    const m = c.fetch8()
    const size = vsize(c)
    c.setReg(size, (m >> 3) & 7, c.readRM(m, size))
  }
  one[0x8c] = (c) => {
    // MOV Ev, Sreg: a register destination gets the zero-extended selector with 32-bit operands
    const m = c.fetch8()
    const seg = (m >> 3) & 7
    if (seg > 5) c.fault(UD)
    const sel = c.segSel[seg]!
    if (m >= 0xc0) c.setReg(vsize(c), m & 7, sel)
    else c.writeRM(m, 2, sel)
  }
  one[0x8e] = (c) => {
    const m = c.fetch8()
    const seg = (m >> 3) & 7
    if (seg === CS || seg > 5) c.fault(UD)
    loadSegmentRegister(c, seg, c.readRM(m, 2))
  }
  one[0x8d] = (c) => {
    const m = c.fetch8()
    if (m >= 0xc0) c.fault(UD)
    c.decodeEA(m)
    c.setReg(vsize(c), (m >> 3) & 7, c.ea)
  }
  one[0x8f] = (c) => {
    // POP Ev: the address is computed with ESP already incremented (SDM POP)
    const m = c.fetch8()
    if ((m & 0x38) !== 0) c.fault(UD)
    const size = vsize(c)
    const v = c.peek(0, size)
    const oldSp = c.r32[ESP]!
    c.setSp(c.spPlus(size))
    try {
      c.writeRM(m, size, v)
    } catch (e) {
      c.r32[ESP] = oldSp
      throw e
    }
  }
  const moffs = (c: Cpu): number => (c.a32 ? c.fetch32() : c.fetch16())
  const moffsSeg = (c: Cpu): number => (c.segOvr >= 0 ? c.segOvr : DS)
  one[0xa0] = (c) => {
    const off = moffs(c)
    c.r8[0] = c.rd8(moffsSeg(c), off)
  }
  one[0xa1] = (c) => {
    const off = moffs(c)
    if (c.o32) c.r32[0] = c.rd32(moffsSeg(c), off)
    else c.r16[0] = c.rd16(moffsSeg(c), off)
  }
  one[0xa2] = (c) => {
    const off = moffs(c)
    c.wr8(moffsSeg(c), off, c.r8[0]!)
  }
  one[0xa3] = (c) => {
    const off = moffs(c)
    if (c.o32) c.wr32(moffsSeg(c), off, c.r32[0]!)
    else c.wr16(moffsSeg(c), off, c.r16[0]!)
  }
  for (let r = 0; r < 8; r++) {
    one[0xb0 + r] = (c) => c.setReg(1, r, c.fetch8())
    one[0xb8 + r] = (c) => {
      if (c.o32) c.r32[r] = c.fetch32()
      else c.r16[r << 1] = c.fetch16()
    }
  }
  one[0xc6] = (c) => {
    const m = c.fetch8()
    if ((m & 0x38) !== 0) c.fault(UD)
    if (m >= 0xc0) c.setReg(1, m & 7, c.fetch8())
    else {
      c.decodeEA(m)
      const lin = c.linW(c.eaSeg, c.ea, 1)
      c.st8(lin, c.fetch8())
    }
  }
  one[0xc7] = (c) => {
    const m = c.fetch8()
    if ((m & 0x38) !== 0) c.fault(UD)
    const size = vsize(c)
    if (m >= 0xc0) c.setReg(size, m & 7, size === 4 ? c.fetch32() : c.fetch16())
    else {
      c.decodeEA(m)
      const imm = size === 4 ? c.fetch32() : c.fetch16()
      c.stSize(c.linW(c.eaSeg, c.ea, size), size, imm)
    }
  }
  // XCHG
  one[0x86] = (c) => {
    const m = c.fetch8()
    const g = (m >> 3) & 7
    const v = c.rmwBegin(m, 1)
    const r = c.getReg(1, g)
    c.rmwEnd(1, r)
    c.setReg(1, g, v)
  }
  one[0x87] = (c) => {
    const m = c.fetch8()
    const size = vsize(c)
    const g = (m >> 3) & 7
    const v = c.rmwBegin(m, size)
    const r = c.getReg(size, g)
    c.rmwEnd(size, r)
    c.setReg(size, g, v)
  }
  one[0x90] = () => {}
  for (let r = 1; r < 8; r++) {
    one[0x90 + r] = (c) => {
      const size = vsize(c)
      const t = c.getReg(size, 0)
      c.setReg(size, 0, c.getReg(size, r))
      c.setReg(size, r, t)
    }
  }
  one[0xd7] = (c) => {
    // XLAT: AL = [seg:(E)BX + AL]
    const base = c.a32 ? c.r32[3]! + c.r8[0]! : (c.r16[6]! + c.r8[0]!) & 0xffff
    c.r8[0] = c.rd8(c.segOvr >= 0 ? c.segOvr : DS, base)
  }
  one[0x9e] = (c) => {
    // SAHF: SF ZF AF PF CF from AH
    c.setArith((c.getFlags() & ~0xd5) | (c.r8[1]! & 0xd5))
  }
  one[0x9f] = (c) => {
    c.r8[1] = (c.getFlags() & 0xd7) | 2
  }
  // stack: general registers
  for (let r = 0; r < 8; r++) {
    one[0x50 + r] = (c) => {
      if (c.o32) c.push32(c.r32[r]!)
      else c.push16(c.r16[r << 1]!)
    }
    one[0x58 + r] = (c) => {
      if (c.o32) {
        const v = c.pop32()
        c.r32[r] = v
      } else {
        const v = c.pop16()
        c.r16[r << 1] = v
      }
    }
  }
  one[0x68] = (c) => c.pushV(c.o32 ? c.fetch32() : c.fetch16())
  one[0x6a] = (c) => c.pushV(c.fetch8s())
  // segment registers: PUSH ES/CS/SS/DS, POP ES/SS/DS (a 32-bit push writes the selector zero-extended)
  const pushSeg =
    (seg: number): Op =>
    (c) =>
      c.pushV(c.segSel[seg]!)
  one[0x06] = pushSeg(ES)
  one[0x07] = popSegment(ES)
  one[0x0e] = pushSeg(CS)
  one[0x16] = pushSeg(SS)
  one[0x17] = popSegment(SS)
  one[0x1e] = pushSeg(DS)
  one[0x1f] = popSegment(DS)
  one[0x60] = (c) => {
    // PUSHA/PUSHAD: all eight, the ESP pushed is the value before the first push
    const size = vsize(c)
    const sp0 = c.sp
    for (let i = 1; i <= 8; i++) c.linW(SS, c.spPlus(-size * i), size)
    for (let r = 0; r < 8; r++) {
      const off = c.spPlus(-size * (r + 1))
      const v = r === ESP ? sp0 : c.getReg(size, r)
      c.stSize(c.linW(SS, off, size), size, v)
    }
    c.setSp(c.spPlus(-size * 8))
  }
  one[0x61] = (c) => {
    // POPA/POPAD: the stored ESP is skipped
    const size = vsize(c)
    for (let r = 7; r >= 0; r--) popaScratch[r] = c.peek((7 - r) * size, size)
    for (let r = 0; r < 8; r++) if (r !== ESP) c.setReg(size, r, popaScratch[r]!)
    c.setSp(c.spPlus(size * 8))
  }
  one[0x9c] = (c) => {
    // PUSHF/PUSHFD: VM and RF read as 0 in the image pushed
    if (c.pe && (c.getFlags() & F_VM) !== 0 && (c.flags & F_IOPL) !== F_IOPL) c.fault(GP, 0)
    const f = c.getFlags() & ~(F_VM | F_RF)
    if (c.o32) c.push32(f)
    else c.push16(f & 0xffff)
  }
  one[0x9d] = (c) => {
    const size = vsize(c)
    const v = c.peek(0, size)
    popFlags(c, v, size)
    c.setSp(c.spPlus(size))
  }
  one[0xc8] = enter
  one[0xc9] = (c) => {
    // LEAVE: (E)SP = (E)BP, then POP (E)BP
    const bp = c.ssB ? c.r32[EBP]! : c.r16[EBP << 1]!
    const size = vsize(c)
    const v = size === 4 ? c.ld32(c.linR(SS, bp, 4)) : c.ld16(c.linR(SS, bp, 2))
    c.setSp(bp)
    c.setSp(c.spPlus(size))
    c.setReg(size, EBP, v)
  }
  one[0xc4] = loadFarPointer(ES)
  one[0xc5] = loadFarPointer(DS)
  one[0x62] = (c) => {
    // BOUND: #BR when the index is outside [lower, upper] (signed)
    const m = c.fetch8()
    if (m >= 0xc0) c.fault(UD)
    c.decodeEA(m)
    const size = vsize(c)
    const index = c.getReg(size, (m >> 3) & 7)
    let lower: number
    let upper: number
    let idx: number
    if (size === 4) {
      lower = c.rd32(c.eaSeg, c.ea)
      upper = c.rd32(c.eaSeg, (c.ea + 4) | 0)
      idx = index | 0
    } else {
      lower = (c.rd16(c.eaSeg, c.ea) << 16) >> 16
      upper = (c.rd16(c.eaSeg, (c.ea + 2) | 0) << 16) >> 16
      idx = (index << 16) >> 16
    }
    if (idx < lower || idx > upper) c.fault(BR)
  }
}

/** ENTER imm16, imm8 (SDM Vol. 2 ENTER "Operation"): nested frames up to level 31. */
function enter(c: Cpu): void {
  const frameSize = c.fetch16()
  const level = c.fetch8() & 31
  const size = vsize(c)
  const oldSp = c.r32[ESP]!
  const oldBp = c.r32[EBP]!
  try {
    c.pushV(c.getReg(size, EBP))
    const frameTemp = c.sp
    if (level > 0) {
      let bp = c.ssB ? c.r32[EBP]! : c.r16[EBP << 1]!
      for (let i = 1; i < level; i++) {
        bp = c.ssB ? (bp - size) | 0 : (bp - size) & 0xffff
        c.pushV(size === 4 ? c.ld32(c.linR(SS, bp, 4)) : c.ld16(c.linR(SS, bp, 2)))
      }
      c.pushV(frameTemp)
    }
    const newSp = c.spPlus(-frameSize)
    // the new stack top must be writable (SDM: #SS if it does not fit)
    if (frameSize > 0) c.linW(SS, newSp, 1)
    c.setReg(size, EBP, frameTemp)
    c.setSp(newSp)
  } catch (e) {
    c.r32[ESP] = oldSp
    c.r32[EBP] = oldBp
    throw e
  }
}
