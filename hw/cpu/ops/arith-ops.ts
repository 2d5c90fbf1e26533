/**
 * One-byte opcodes for integer arithmetic (Intel SDM Vol. 2 appendix A,
 * table A-2): the ALU rows 00-3F, INC/DEC 40-4F, the immediate groups
 * 80-83, TEST 84/85/A8/A9, IMUL 69/6B, shift groups C0/C1/D0-D3, the unary
 * groups F6/F7 and FE, BCD adjusts, CBW/CWD and SALC.
 */
import type { AccessSize } from "../bus.ts"
import type { Cpu } from "../cpu.ts"
import {
  CC_ADC,
  CC_ADD,
  CC_DEC,
  CC_INC,
  CC_LOGIC,
  CC_SBB,
  CC_SUB,
  getCF,
  setArithFlags,
  setLazy32,
  szp32
} from "../flags.ts"
import { F_CF, F_OF, UD } from "../regs.ts"
import {
  ADC,
  ADD,
  AND,
  aad,
  aam,
  alu,
  asciiAdjust,
  CMP,
  dec,
  decimalAdjust,
  divAcc,
  imulTrunc,
  inc,
  mulAcc,
  neg,
  OR,
  SBB,
  SUB,
  shift,
  test,
  XOR
} from "./alu.ts"
import type { Op } from "./types.ts"

const vsize = (c: Cpu): 2 | 4 => (c.o32 ? 4 : 2)

/** ALU op k with E as destination: 00 08 10 ... (Eb,Gb) and 01 09 ... (Ev,Gv). */
function aluEG(k: number, byte: boolean): Op {
  return (c) => {
    const m = c.fetch8()
    const size: AccessSize = byte ? 1 : vsize(c)
    const g = c.getReg(size, (m >> 3) & 7)
    if (k === CMP) alu(c, k, size, c.readRM(m, size), g)
    else c.rmwEnd(size, alu(c, k, size, c.rmwBegin(m, size), g))
  }
}

/** ALU op k with G as destination: 02 0A ... (Gb,Eb) and 03 0B ... (Gv,Ev). */
function aluGE(k: number, byte: boolean): Op {
  return (c) => {
    const m = c.fetch8()
    const size: AccessSize = byte ? 1 : vsize(c)
    const g = (m >> 3) & 7
    const r = alu(c, k, size, c.getReg(size, g), c.readRM(m, size))
    if (k !== CMP) c.setReg(size, g, r)
  }
}

/** ALU op k on the accumulator with an immediate: 04 0C ... (AL,Ib) and 05 0D ... (eAX,Iz). */
function aluAccImm(k: number, byte: boolean): Op {
  return (c) => {
    const size: AccessSize = byte ? 1 : vsize(c)
    const imm = size === 1 ? c.fetch8() : size === 2 ? c.fetch16() : c.fetch32()
    const r = alu(c, k, size, c.getReg(size, 0), imm)
    if (k !== CMP) c.setReg(size, 0, r)
  }
}

/** Groups 80 (Eb,Ib), 81 (Ev,Iz), 82 (= 80), 83 (Ev,Ib sign-extended). */
function aluGroup(byteOperand: boolean, byteImmediate: boolean, signExtend: boolean): Op {
  return (c) => {
    const m = c.fetch8()
    const k = (m >> 3) & 7
    const size: AccessSize = byteOperand ? 1 : vsize(c)
    if (k === CMP) {
      const a = c.readRM(m, size)
      alu(c, k, size, a, immediate(c, byteImmediate, signExtend, size))
    } else {
      const a = c.rmwBegin(m, size)
      c.rmwEnd(size, alu(c, k, size, a, immediate(c, byteImmediate, signExtend, size)))
    }
  }
}

/** The immediate after the ModRM operand: Ib (zero- or sign-extended) or Iz (16/32 by operand size). */
function immediate(c: Cpu, byte: boolean, signExtend: boolean, size: AccessSize): number {
  if (byte) return signExtend ? c.fetch8s() : c.fetch8()
  return size === 4 ? c.fetch32() : c.fetch16()
}

/** Shift groups: C0 (Eb,Ib) C1 (Ev,Ib) D0 (Eb,1) D1 (Ev,1) D2 (Eb,CL) D3 (Ev,CL). */
function shiftGroup(byte: boolean, count: "imm" | "one" | "cl"): Op {
  return (c) => {
    const m = c.fetch8()
    const size: AccessSize = byte ? 1 : vsize(c)
    const v = c.rmwBegin(m, size)
    const n = count === "imm" ? c.fetch8() : count === "one" ? 1 : c.r8[4]!
    c.rmwEnd(size, shift(c, (m >> 3) & 7, size, v, n))
  }
}

/** Group 3: F6 (Eb) / F7 (Ev): TEST NOT NEG MUL IMUL DIV IDIV. */
function unaryGroup(byte: boolean): Op {
  return (c) => {
    const m = c.fetch8()
    const size: AccessSize = byte ? 1 : vsize(c)
    switch ((m >> 3) & 7) {
      case 0:
      case 1: {
        // TEST E, I (/1 is an undocumented alias of /0)
        const a = c.readRM(m, size)
        test(c, size, a, size === 1 ? c.fetch8() : size === 2 ? c.fetch16() : c.fetch32())
        break
      }
      case 2:
        c.rmwEnd(size, ~c.rmwBegin(m, size))
        break
      case 3:
        c.rmwEnd(size, neg(c, size, c.rmwBegin(m, size)))
        break
      case 4:
        mulAcc(c, false, size, c.readRM(m, size))
        break
      case 5:
        mulAcc(c, true, size, c.readRM(m, size))
        break
      case 6:
        divAcc(c, false, size, c.readRM(m, size))
        break
      default:
        divAcc(c, true, size, c.readRM(m, size))
    }
  }
}

export function installArith(one: Array<Op>): void {
  for (let k = 0; k < 8; k++) {
    const base = k * 8
    one[base] = aluEG(k, true)
    one[base + 1] = aluEG(k, false)
    one[base + 2] = aluGE(k, true)
    one[base + 3] = aluGE(k, false)
    one[base + 4] = aluAccImm(k, true)
    one[base + 5] = aluAccImm(k, false)
  }
  for (let r = 0; r < 8; r++) {
    one[0x40 + r] = (c) => {
      if (c.o32) {
        const r32 = c.r32
        const v = r32[r]!
        const cf = getCF(c) ? 1 : 0
        const res = (v + 1) | 0
        r32[r] = res
        setLazy32(c, CC_INC, res, v, 1)
        c.ccCarry = cf
      } else {
        c.r16[r << 1] = inc(c, 2, c.r16[r << 1]!)
      }
    }
    one[0x48 + r] = (c) => {
      if (c.o32) {
        const r32 = c.r32
        const v = r32[r]!
        const cf = getCF(c) ? 1 : 0
        const res = (v - 1) | 0
        r32[r] = res
        setLazy32(c, CC_DEC, res, v, 1)
        c.ccCarry = cf
      } else {
        c.r16[r << 1] = dec(c, 2, c.r16[r << 1]!)
      }
    }
  }
  one[0x80] = aluGroup(true, true, false)
  one[0x81] = aluGroup(false, false, false)
  one[0x82] = aluGroup(true, true, false)
  one[0x83] = aluGroup(false, true, true)
  one[0x84] = (c) => {
    const m = c.fetch8()
    test(c, 1, c.readRM(m, 1), c.getReg(1, (m >> 3) & 7))
  }
  one[0x85] = (c) => {
    const m = c.fetch8()
    const size = vsize(c)
    test(c, size, c.readRM(m, size), c.getReg(size, (m >> 3) & 7))
  }
  one[0xa8] = (c) => test(c, 1, c.r8[0]!, c.fetch8())
  one[0xa9] = (c) => {
    const size = vsize(c)
    test(c, size, c.getReg(size, 0), size === 4 ? c.fetch32() : c.fetch16())
  }
  one[0x69] = (c) => {
    const m = c.fetch8()
    const size = vsize(c)
    const a = c.readRM(m, size)
    const b = size === 4 ? c.fetch32() : c.fetch16()
    c.setReg(size, (m >> 3) & 7, imulTrunc(c, size, a, b))
  }
  one[0x6b] = (c) => {
    const m = c.fetch8()
    const size = vsize(c)
    const a = c.readRM(m, size)
    c.setReg(size, (m >> 3) & 7, imulTrunc(c, size, a, c.fetch8s()))
  }
  one[0xc0] = shiftGroup(true, "imm")
  one[0xc1] = shiftGroup(false, "imm")
  one[0xd0] = shiftGroup(true, "one")
  one[0xd1] = shiftGroup(false, "one")
  one[0xd2] = shiftGroup(true, "cl")
  one[0xd3] = shiftGroup(false, "cl")
  one[0xf6] = unaryGroup(true)
  one[0xf7] = unaryGroup(false)
  one[0xfe] = (c) => {
    const m = c.fetch8()
    const k = (m >> 3) & 7
    if (k > 1) c.fault(UD)
    const v = c.rmwBegin(m, 1)
    c.rmwEnd(1, k === 0 ? inc(c, 1, v) : dec(c, 1, v))
  }
  one[0x27] = (c) => decimalAdjust(c, false)
  one[0x2f] = (c) => decimalAdjust(c, true)
  one[0x37] = (c) => asciiAdjust(c, false)
  one[0x3f] = (c) => asciiAdjust(c, true)
  one[0xd4] = (c) => aam(c, c.fetch8())
  one[0xd5] = (c) => aad(c, c.fetch8())
  one[0xd6] = (c) => {
    // SALC (undocumented): AL = CF ? FF : 00
    c.r8[0] = getCF(c) ? 0xff : 0
  }
  one[0x98] = (c) => {
    // CBW / CWDE
    if (c.o32) c.r32[0] = (c.r16[0]! << 16) >> 16
    else c.r16[0] = (c.r8[0]! << 24) >> 24
  }
  one[0x99] = (c) => {
    // CWD / CDQ
    if (c.o32) c.r32[2] = c.r32[0]! >> 31
    else c.r16[4] = (c.r16[0]! << 16) >> 31
  }
  installFast32(one)
}

// ---- 32-bit fast paths ----
// Each hot opcode gets its own function literal calling a small helper with a literal ALU operation, so V8
// inlines the helper per opcode with the operation constant-folded (closures made in a loop share one
// compiled body and would dispatch on the operation at run time). 16-bit operands and the rarer operand
// forms go to the width-generic handlers.

/** 32-bit ALU operation k on a and b: sets the lazy flags; returns the result (CMP: unused). */
function alu32(c: Cpu, k: number, a: number, b: number): number {
  let r: number
  let op: number
  switch (k) {
    case ADD:
      r = (a + b) | 0
      op = CC_ADD
      break
    case OR:
      r = a | b
      op = CC_LOGIC
      break
    case ADC: {
      const cin = getCF(c) ? 1 : 0
      r = (a + b + cin) | 0
      c.ccCarry = cin
      op = CC_ADC
      break
    }
    case SBB: {
      const cin = getCF(c) ? 1 : 0
      r = (a - b - cin) | 0
      c.ccCarry = cin
      op = CC_SBB
      break
    }
    case AND:
      r = a & b
      op = CC_LOGIC
      break
    case XOR:
      r = a ^ b
      op = CC_LOGIC
      break
    default:
      // SUB, CMP
      r = (a - b) | 0
      op = CC_SUB
  }
  setLazy32(c, op, r, a, b)
  return r
}

/** ALU Ev,Gv (01 09 11 19 21 29 31 39). */
function aluEvGv(c: Cpu, k: number, generic: Op): void {
  const eip = c.eip
  const m = c.fetch8()
  if (c.o32) {
    const r32 = c.r32
    const g = r32[(m >> 3) & 7]!
    if (m >= 0xc0) {
      const d = m & 7
      const r = alu32(c, k, r32[d]!, g)
      if (k !== CMP) r32[d] = r
    } else if (k === CMP) {
      alu32(c, k, c.readMem32(m), g)
    } else {
      const lin = c.eaLinW32(m)
      c.st32(lin, alu32(c, k, c.ld32(lin), g))
    }
    return
  }
  c.eip = eip
  generic(c)
}

/** ALU Gv,Ev (03 0B 13 1B 23 2B 33 3B). */
function aluGvEv(c: Cpu, k: number, generic: Op): void {
  const eip = c.eip
  const m = c.fetch8()
  if (c.o32) {
    const r32 = c.r32
    const b = m >= 0xc0 ? r32[m & 7]! : c.readMem32(m)
    const g = (m >> 3) & 7
    const r = alu32(c, k, r32[g]!, b)
    if (k !== CMP) r32[g] = r
    return
  }
  c.eip = eip
  generic(c)
}

/** ALU eAX,Iz (05 0D 15 1D 25 2D 35 3D). */
function aluEaxIz(c: Cpu, k: number, generic: Op): void {
  if (c.o32) {
    const imm = c.fetch32()
    const r32 = c.r32
    const r = alu32(c, k, r32[0]!, imm)
    if (k !== CMP) r32[0] = r
    return
  }
  generic(c)
}

/** Groups 81 (Ev,Iz) and 83 (Ev,Ib sign-extended) with 32-bit operands. */
function aluGroup32(c: Cpu, byteImmediate: boolean, generic: Op): void {
  const eip = c.eip
  const m = c.fetch8()
  if (c.o32) {
    const k = (m >> 3) & 7
    if (m >= 0xc0) {
      const r32 = c.r32
      const d = m & 7
      const r = alu32(c, k, r32[d]!, byteImmediate ? c.fetch8s() : c.fetch32())
      if (k !== CMP) r32[d] = r
    } else if (k === CMP) {
      const a = c.readMem32(m)
      alu32(c, k, a, byteImmediate ? c.fetch8s() : c.fetch32())
    } else {
      const lin = c.eaLinW32(m)
      const a = c.ld32(lin)
      c.st32(lin, alu32(c, k, a, byteImmediate ? c.fetch8s() : c.fetch32()))
    }
    return
  }
  c.eip = eip
  generic(c)
}

/** Shift groups C1 (Ev,Ib), D1 (Ev,1), D3 (Ev,CL) with a 32-bit register operand. */
function shiftGroup32(c: Cpu, count: number, generic: Op): void {
  const eip = c.eip
  const m = c.fetch8()
  if (m >= 0xc0 && c.o32) {
    const n = (count === COUNT_IMM ? c.fetch8() : count === COUNT_ONE ? 1 : c.r8[4]!) & 0x1f
    if (n === 0) return
    const r32 = c.r32
    const d = m & 7
    r32[d] = shift32(c, (m >> 3) & 7, r32[d]!, n)
    return
  }
  c.eip = eip
  generic(c)
}

const COUNT_IMM = 0
const COUNT_ONE = 1
const COUNT_CL = 2

/** 32-bit shift or rotate `k` of v by n (1-31); flags as `shift` (alu.ts) sets them. */
export function shift32(c: Cpu, k: number, v: number, n: number): number {
  switch (k) {
    case 0: {
      // ROL: CF = LSB(result); OF = MSB(result) ^ CF
      const r = (v << n) | (v >>> (32 - n))
      const cf = r & 1
      setCfOf(c, cf, (r >>> 31) ^ cf)
      return r
    }
    case 1: {
      // ROR: CF = MSB(result); OF = MSB ^ MSB-1 of the result
      const r = (v >>> n) | (v << (32 - n))
      const cf = r >>> 31
      setCfOf(c, cf, cf ^ ((r >>> 30) & 1))
      return r
    }
    case 4:
    case 6: {
      const cf = (v >>> (32 - n)) & 1
      const r = v << n
      setArithFlags(c, szp32(r) | cf | (((r >>> 31) ^ cf) << 11))
      return r
    }
    case 5: {
      const cf = (v >>> (n - 1)) & 1
      const r = v >>> n
      setArithFlags(c, szp32(r) | cf | ((v >>> 31) << 11))
      return r | 0
    }
    case 7: {
      const cf = (v >> (n - 1)) & 1
      const r = v >> n
      setArithFlags(c, szp32(r) | cf)
      return r
    }
    default:
      return shift(c, k, 4, v, n)
  }
}

/** CF and OF (0 or 1 each) replace the current ones; the other flags are kept. */
function setCfOf(c: Cpu, cf: number, of: number): void {
  c.flags = (c.getFlags() & ~(F_CF | F_OF)) | cf | (of << 11)
}

function installFast32(one: Array<Op>): void {
  const g = one.slice()
  one[0x01] = (c) => aluEvGv(c, ADD, g[0x01]!)
  one[0x09] = (c) => aluEvGv(c, OR, g[0x09]!)
  one[0x11] = (c) => aluEvGv(c, ADC, g[0x11]!)
  one[0x19] = (c) => aluEvGv(c, SBB, g[0x19]!)
  one[0x21] = (c) => aluEvGv(c, AND, g[0x21]!)
  one[0x29] = (c) => aluEvGv(c, SUB, g[0x29]!)
  one[0x31] = (c) => aluEvGv(c, XOR, g[0x31]!)
  one[0x39] = (c) => aluEvGv(c, CMP, g[0x39]!)
  one[0x03] = (c) => aluGvEv(c, ADD, g[0x03]!)
  one[0x0b] = (c) => aluGvEv(c, OR, g[0x0b]!)
  one[0x13] = (c) => aluGvEv(c, ADC, g[0x13]!)
  one[0x1b] = (c) => aluGvEv(c, SBB, g[0x1b]!)
  one[0x23] = (c) => aluGvEv(c, AND, g[0x23]!)
  one[0x2b] = (c) => aluGvEv(c, SUB, g[0x2b]!)
  one[0x33] = (c) => aluGvEv(c, XOR, g[0x33]!)
  one[0x3b] = (c) => aluGvEv(c, CMP, g[0x3b]!)
  one[0x05] = (c) => aluEaxIz(c, ADD, g[0x05]!)
  one[0x0d] = (c) => aluEaxIz(c, OR, g[0x0d]!)
  one[0x15] = (c) => aluEaxIz(c, ADC, g[0x15]!)
  one[0x1d] = (c) => aluEaxIz(c, SBB, g[0x1d]!)
  one[0x25] = (c) => aluEaxIz(c, AND, g[0x25]!)
  one[0x2d] = (c) => aluEaxIz(c, SUB, g[0x2d]!)
  one[0x35] = (c) => aluEaxIz(c, XOR, g[0x35]!)
  one[0x3d] = (c) => aluEaxIz(c, CMP, g[0x3d]!)
  one[0x81] = (c) => aluGroup32(c, false, g[0x81]!)
  one[0x83] = (c) => aluGroup32(c, true, g[0x83]!)
  one[0xc1] = (c) => shiftGroup32(c, COUNT_IMM, g[0xc1]!)
  one[0xd1] = (c) => shiftGroup32(c, COUNT_ONE, g[0xd1]!)
  one[0xd3] = (c) => shiftGroup32(c, COUNT_CL, g[0xd3]!)
}
