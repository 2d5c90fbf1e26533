/**
 * Lazy arithmetic flags (the technique of Bochs, QEMU's cc_op and v86).
 *
 * An ALU instruction records *what* it did (kind, operands and result,
 * sign-extended from the operand size: see setLazy) instead of computing
 * CF PF AF ZF SF OF; a flag is derived only when an instruction reads it
 * (Jcc, SETcc, PUSHF, ADC...). Definitions follow the Intel SDM Vol. 1
 * 3.4.3.1 and each instruction's "Flags Affected".
 *
 * Kinds: 0 = none (flags live in cpu.flags), ADD, ADC, SUB (also CMP, NEG),
 * SBB, LOGIC (AND OR XOR TEST: CF=OF=0, AF left 0), INC and DEC (CF is the
 * value before the instruction, kept in ccCarry).
 */
import type { AccessSize } from "./bus.ts"
import type { Cpu } from "./cpu.ts"
import { F_AF, F_CF, F_OF, F_PF, F_SF, F_ZF } from "./regs.ts"

export const CC_NONE = 0
export const CC_ADD = 1
export const CC_ADC = 2
export const CC_SUB = 3
export const CC_SBB = 4
export const CC_LOGIC = 5
export const CC_INC = 6
export const CC_DEC = 7

/** PF: set when the low byte of the result has an even number of 1 bits. */
export const PARITY = new Uint8Array(256)
for (let i = 0; i < 256; i++) {
  let bits = 0
  for (let b = i; b !== 0; b >>= 1) bits += b & 1
  PARITY[i] = (bits & 1) === 0 ? F_PF : 0
}

export const maskOf = (size: AccessSize): number => (size === 4 ? -1 : size === 2 ? 0xffff : 0xff)
export const signOf = (size: AccessSize): number => (size === 4 ? -0x80000000 : size === 2 ? 0x8000 : 0x80)

/**
 * Record a lazy operation. The operands and the result are kept sign-extended
 * from the operand size to 32 bits, so every flag is read at bit 31 whatever
 * the size: ZF is dst == 0, SF dst < 0, OF the sign of the overflow term, and
 * CF an unsigned compare (sign extension preserves unsigned order).
 */
export function setLazy(c: Cpu, op: number, dst: number, src1: number, src2: number, size: AccessSize): void {
  const shift = size === 4 ? 0 : size === 2 ? 16 : 24
  c.ccOp = op
  c.ccDst = (dst << shift) >> shift
  c.ccSrc1 = (src1 << shift) >> shift
  c.ccSrc2 = (src2 << shift) >> shift
}

/** setLazy for a 32-bit operation (operands already int32). */
export function setLazy32(c: Cpu, op: number, dst: number, src1: number, src2: number): void {
  c.ccOp = op
  c.ccDst = dst
  c.ccSrc1 = src1
  c.ccSrc2 = src2
}

export function getCF(c: Cpu): boolean {
  switch (c.ccOp) {
    case CC_NONE:
      return (c.flags & F_CF) !== 0
    case CC_ADD:
      return c.ccDst >>> 0 < c.ccSrc1 >>> 0
    case CC_ADC:
      return c.ccCarry !== 0 ? c.ccDst >>> 0 <= c.ccSrc1 >>> 0 : c.ccDst >>> 0 < c.ccSrc1 >>> 0
    case CC_SUB:
      return c.ccSrc1 >>> 0 < c.ccSrc2 >>> 0
    case CC_SBB:
      return c.ccCarry !== 0 ? c.ccSrc1 >>> 0 <= c.ccSrc2 >>> 0 : c.ccSrc1 >>> 0 < c.ccSrc2 >>> 0
    case CC_LOGIC:
      return false
    default:
      return c.ccCarry !== 0
  }
}

export function getZF(c: Cpu): boolean {
  return c.ccOp === CC_NONE ? (c.flags & F_ZF) !== 0 : c.ccDst === 0
}

export function getSF(c: Cpu): boolean {
  return c.ccOp === CC_NONE ? (c.flags & F_SF) !== 0 : c.ccDst < 0
}

export function getPF(c: Cpu): boolean {
  return c.ccOp === CC_NONE ? (c.flags & F_PF) !== 0 : PARITY[c.ccDst & 0xff] !== 0
}

export function getOF(c: Cpu): boolean {
  const op = c.ccOp
  if (op === CC_NONE) return (c.flags & F_OF) !== 0
  if (op === CC_LOGIC) return false
  const d = c.ccDst
  const a = c.ccSrc1
  const b = c.ccSrc2
  if (op === CC_ADD || op === CC_ADC || op === CC_INC) return ((a ^ d) & (b ^ d)) < 0
  return ((a ^ b) & (a ^ d)) < 0
}

export function getAF(c: Cpu): boolean {
  const op = c.ccOp
  if (op === CC_NONE) return (c.flags & F_AF) !== 0
  if (op === CC_LOGIC) return false
  return ((c.ccSrc1 ^ c.ccSrc2 ^ c.ccDst) & 0x10) !== 0
}

/** All six arithmetic flags of the pending lazy operation (SZP from the result; logic ops need nothing else). */
export function lazyFlags(c: Cpu): number {
  const d = c.ccDst
  const f = (d === 0 ? F_ZF : 0) | (d < 0 ? F_SF : 0) | PARITY[d & 0xff]!
  if (c.ccOp === CC_LOGIC) return f
  return f | (getCF(c) ? F_CF : 0) | (getAF(c) ? F_AF : 0) | (getOF(c) ? F_OF : 0)
}

/** Condition code `cc` (0-15, the low nibble of Jcc/SETcc/CMOVcc; SDM Vol. 1 appendix B). */
export function condition(c: Cpu, cc: number): boolean {
  let r: boolean
  switch (cc >> 1) {
    case 0:
      r = getOF(c)
      break
    case 1:
      r = getCF(c)
      break
    case 2:
      r = getZF(c)
      break
    case 3:
      r = getCF(c) || getZF(c)
      break
    case 4:
      r = getSF(c)
      break
    case 5:
      r = getPF(c)
      break
    case 6:
      r = getSF(c) !== getOF(c)
      break
    default:
      r = getZF(c) || getSF(c) !== getOF(c)
  }
  return (cc & 1) !== 0 ? !r : r
}

/** Set arithmetic flags eagerly (shifts, multiplies, BCD...): `bits` replaces all six. */
export function setArithFlags(c: Cpu, bits: number): void {
  c.flags = (c.getFlags() & ~(F_CF | F_PF | F_AF | F_ZF | F_SF | F_OF)) | bits
}

/** SF, ZF and PF of an int32 result, as EFLAGS bits. */
export function szp32(v: number): number {
  return (v === 0 ? F_ZF : 0) | (v < 0 ? F_SF : 0) | PARITY[v & 0xff]!
}

/** SF, ZF and PF of a result of `size` bytes, as EFLAGS bits. */
export function szp(v: number, size: AccessSize): number {
  const m = maskOf(size)
  return ((v & m) === 0 ? F_ZF : 0) | ((v & signOf(size)) !== 0 ? F_SF : 0) | PARITY[v & 0xff]!
}
