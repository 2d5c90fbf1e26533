/**
 * One-byte opcodes for integer arithmetic (Intel SDM Vol. 2 appendix A,
 * table A-2): the ALU rows 00-3F, INC/DEC 40-4F, the immediate groups
 * 80-83, TEST 84/85/A8/A9, IMUL 69/6B, shift groups C0/C1/D0-D3, the unary
 * groups F6/F7 and FE, BCD adjusts, CBW/CWD and SALC.
 */
import type { AccessSize } from "../bus.ts"
import type { Cpu } from "../cpu.ts"
import { getCF } from "../flags.ts"
import { UD } from "../regs.ts"
import {
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
  shift,
  test
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
  // the hottest forms, written out: ADD/SUB/XOR/CMP Ev,Gv with register operands
  one[0x01] = fastEvGv(aluEG(0, false), 0)
  one[0x29] = fastEvGv(aluEG(5, false), 5)
  one[0x31] = fastEvGv(aluEG(6, false), 6)
  one[0x39] = fastEvGv(aluEG(7, false), 7)
  for (let r = 0; r < 8; r++) {
    one[0x40 + r] = (c) => {
      const size = vsize(c)
      c.setReg(size, r, inc(c, size, c.getReg(size, r)))
    }
    one[0x48 + r] = (c) => {
      const size = vsize(c)
      c.setReg(size, r, dec(c, size, c.getReg(size, r)))
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
}

/** A register-register fast path for a hot 32-bit ALU form; memory operands use the generic handler. */
function fastEvGv(generic: Op, k: number): Op {
  return (c) => {
    const eip = c.eip
    const m = c.fetch8()
    if (m >= 0xc0 && c.o32) {
      const r32 = c.r32
      const d = m & 7
      const r = alu(c, k, 4, r32[d]!, r32[(m >> 3) & 7]!)
      if (k !== CMP) r32[d] = r
      return
    }
    c.eip = eip
    generic(c)
  }
}
