/**
 * Integer arithmetic and logic (Intel SDM Vol. 2: ADD OR ADC SBB AND SUB XOR
 * CMP, INC DEC NEG NOT TEST, MUL IMUL DIV IDIV, and the shift/rotate group
 * SAL SAR SHL SHR ROL ROR RCL RCR, SHLD SHRD). Width-generic helpers take
 * the operand size in bytes (1, 2, 4); 32-bit values are int32.
 *
 * ADD-like and logic results set lazy flags (flags.ts); shifts, rotates and
 * multiplies set flags eagerly. Where the SDM leaves a flag undefined this
 * model picks one documented choice (noted inline); the conformance masks
 * list exactly those flags.
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
  maskOf,
  setArithFlags,
  setLazy,
  signOf,
  szp
} from "../flags.ts"
import { DE, F_AF, F_CF, F_OF } from "../regs.ts"

/** ALU operation numbers, as in the opcode map rows 00-3F and the 80-83 group's ModRM.reg. */
export const ADD = 0
export const OR = 1
export const ADC = 2
export const SBB = 3
export const AND = 4
export const SUB = 5
export const XOR = 6
export const CMP = 7

/** Apply ALU operation `k` to a and b at `size`; sets lazy flags; returns the result (CMP: a). */
export function alu(c: Cpu, k: number, size: AccessSize, a: number, b: number): number {
  let r: number
  switch (k) {
    case ADD:
      r = (a + b) | 0
      setLazy(c, CC_ADD, r, a, b, size)
      return r
    case OR:
      r = a | b
      setLazy(c, CC_LOGIC, r, a, b, size)
      return r
    case ADC: {
      const cin = getCF(c) ? 1 : 0
      r = (a + b + cin) | 0
      setLazy(c, CC_ADC, r, a, b, size)
      c.ccCarry = cin
      return r
    }
    case SBB: {
      const cin = getCF(c) ? 1 : 0
      r = (a - b - cin) | 0
      setLazy(c, CC_SBB, r, a, b, size)
      c.ccCarry = cin
      return r
    }
    case AND:
      r = a & b
      setLazy(c, CC_LOGIC, r, a, b, size)
      return r
    case SUB:
      r = (a - b) | 0
      setLazy(c, CC_SUB, r, a, b, size)
      return r
    case XOR:
      r = a ^ b
      setLazy(c, CC_LOGIC, r, a, b, size)
      return r
    default:
      setLazy(c, CC_SUB, (a - b) | 0, a, b, size)
      return a
  }
}

export function inc(c: Cpu, size: AccessSize, v: number): number {
  const cf = getCF(c) ? 1 : 0
  const r = (v + 1) | 0
  setLazy(c, CC_INC, r, v, 1, size)
  c.ccCarry = cf
  return r
}

export function dec(c: Cpu, size: AccessSize, v: number): number {
  const cf = getCF(c) ? 1 : 0
  const r = (v - 1) | 0
  setLazy(c, CC_DEC, r, v, 1, size)
  c.ccCarry = cf
  return r
}

export function neg(c: Cpu, size: AccessSize, v: number): number {
  const r = (0 - v) | 0
  setLazy(c, CC_SUB, r, 0, v, size)
  return r
}

export function test(c: Cpu, size: AccessSize, a: number, b: number): void {
  setLazy(c, CC_LOGIC, a & b, a, b, size)
}

const bitsOf = (size: AccessSize): number => size * 8

/**
 * Shift/rotate group (C0 C1 D0-D3): operation `k` = ModRM.reg, count already
 * read (masked here to 5 bits, SDM "IA-32 Architecture Compatibility").
 * A masked count of 0 changes nothing, flags included.
 */
export function shift(c: Cpu, k: number, size: AccessSize, v: number, count: number): number {
  count &= 0x1f
  if (count === 0) return v
  const bits = bitsOf(size)
  const mask = maskOf(size)
  const sign = signOf(size)
  v &= mask
  let r: number
  let cf: number
  let of: number
  switch (k) {
    case 0: {
      // ROL: CF = LSB(result); OF = MSB(result) ^ CF (defined for count 1; same formula otherwise)
      const n = count % bits
      r = n === 0 ? v : ((v << n) | (v >>> (bits - n))) & mask
      cf = r & 1
      of = ((r & sign) !== 0 ? 1 : 0) ^ cf
      setCfOf(c, cf, of)
      return r
    }
    case 1: {
      // ROR: CF = MSB(result); OF = MSB ^ MSB-1 of the result
      const n = count % bits
      r = n === 0 ? v : ((v >>> n) | (v << (bits - n))) & mask
      cf = (r & sign) !== 0 ? 1 : 0
      of = cf ^ ((r & (sign >>> 1)) !== 0 ? 1 : 0)
      setCfOf(c, cf, of)
      return r
    }
    case 2: {
      // RCL: rotate through CF, count mod (bits + 1)
      const n = size === 4 ? count : count % (bits + 1)
      cf = getCF(c) ? 1 : 0
      r = v
      for (let i = 0; i < n; i++) {
        const out = (r & sign) !== 0 ? 1 : 0
        r = ((r << 1) | cf) & mask
        cf = out
      }
      of = ((r & sign) !== 0 ? 1 : 0) ^ cf
      setCfOf(c, cf, of)
      return r
    }
    case 3: {
      // RCR: OF = MSB(dest) ^ CF before rotating (SDM RCR "Operation")
      const n = size === 4 ? count : count % (bits + 1)
      cf = getCF(c) ? 1 : 0
      of = ((v & sign) !== 0 ? 1 : 0) ^ cf
      r = v
      for (let i = 0; i < n; i++) {
        const out = r & 1
        r = ((r >>> 1) | (cf !== 0 ? sign : 0)) & mask
        cf = out
      }
      setCfOf(c, cf, of)
      return r
    }
    case 4:
    case 6: {
      // SHL/SAL: CF = last bit out; OF = MSB(result) ^ CF; AF left clear (undefined)
      cf = count <= bits ? (v >>> (bits - count)) & 1 : 0
      r = count < 32 ? (v << count) & mask : 0
      of = ((r & sign) !== 0 ? 1 : 0) ^ cf
      break
    }
    case 5: {
      // SHR: CF = last bit out; OF = MSB(original)
      cf = count <= bits ? (v >>> (count - 1)) & 1 : 0
      r = count < 32 ? v >>> count : 0
      of = (v & sign) !== 0 ? 1 : 0
      break
    }
    default: {
      // SAR: sign fills; OF = 0
      const sv = size === 4 ? v | 0 : size === 2 ? (v << 16) >> 16 : (v << 24) >> 24
      cf = (sv >> Math.min(count - 1, 31)) & 1
      r = (sv >> Math.min(count, 31)) & mask
      of = 0
    }
  }
  setArithFlags(c, szp(r, size) | (cf !== 0 ? F_CF : 0) | (of !== 0 ? F_OF : 0))
  return size === 4 ? r | 0 : r
}

function setCfOf(c: Cpu, cf: number, of: number): void {
  c.flags = (c.getFlags() & ~(F_CF | F_OF)) | (cf !== 0 ? F_CF : 0) | (of !== 0 ? F_OF : 0)
}

/**
 * SHLD / SHRD (SDM Vol. 2): shift `dst` by `count` (mod 32), filling from
 * `src`. For 16-bit operands a count above 16 is undefined; this model
 * shifts through the 32-bit concatenation as 386-class parts do.
 */
export function doubleShift(c: Cpu, left: boolean, size: AccessSize, dst: number, src: number, count: number): number {
  count &= 0x1f
  if (count === 0) return dst
  const sign = signOf(size)
  let r: number
  let cf: number
  if (size === 4) {
    if (left) {
      r = (dst << count) | (src >>> (32 - count))
      cf = (dst >>> (32 - count)) & 1
    } else {
      r = (dst >>> count) | (src << (32 - count))
      cf = (dst >>> (count - 1)) & 1
    }
  } else {
    // 16-bit: shift through the 48-bit pattern dst:src:dst, as 386-class parts do for counts above 16
    const d = dst & 0xffff
    const pattern = d * 2 ** 32 + (src & 0xffff) * 2 ** 16 + d
    const bit = (n: number) => Math.floor(pattern / 2 ** n) % 2
    if (left) {
      r = Math.floor(pattern / 2 ** (32 - count)) % 0x10000
      cf = bit(48 - count)
    } else {
      r = Math.floor(pattern / 2 ** count) % 0x10000
      cf = bit(count - 1)
    }
  }
  const of = ((r ^ dst) & sign) !== 0 ? 1 : 0
  setArithFlags(c, szp(r, size) | (cf !== 0 ? F_CF : 0) | (of !== 0 ? F_OF : 0))
  return size === 4 ? r | 0 : r
}

/** High 32 bits of the unsigned 64-bit product a*b. */
function mulHigh32(a: number, b: number): number {
  const al = a & 0xffff
  const ah = a >>> 16
  const bl = b & 0xffff
  const bh = b >>> 16
  const lo = al * bl
  const mid1 = ah * bl + (lo >>> 16)
  const mid2 = al * bh + (mid1 & 0xffff)
  return (ah * bh + (mid1 >>> 16) + (mid2 >>> 16)) | 0
}

/** MUL / IMUL with one operand (F6/F7 /4 /5): AX, DX:AX or EDX:EAX = accumulator * src. */
export function mulAcc(c: Cpu, signed: boolean, size: AccessSize, src: number): void {
  const r32 = c.r32
  let overflow: boolean
  let low: number
  if (size === 1) {
    const a = signed ? (c.r8[0]! << 24) >> 24 : c.r8[0]!
    const b = signed ? (src << 24) >> 24 : src & 0xff
    const p = a * b
    c.r16[0] = p
    low = p & 0xff
    overflow = signed ? p !== (p << 24) >> 24 : (p & 0xff00) !== 0
  } else if (size === 2) {
    const a = signed ? (c.r16[0]! << 16) >> 16 : c.r16[0]!
    const b = signed ? (src << 16) >> 16 : src & 0xffff
    const p = a * b
    c.r16[0] = p
    c.r16[4] = p >> 16
    low = p & 0xffff
    overflow = signed ? p !== (p << 16) >> 16 : (p & 0xffff0000) !== 0
  } else {
    const a = r32[0]!
    low = Math.imul(a, src)
    let hi = mulHigh32(a, src)
    if (signed) {
      if (a < 0) hi = (hi - src) | 0
      if (src < 0) hi = (hi - a) | 0
      overflow = hi !== low >> 31
    } else {
      overflow = hi !== 0
    }
    r32[0] = low
    r32[2] = hi
  }
  // SF ZF AF PF are undefined: this model sets SF/ZF/PF from the low half, AF clear
  setArithFlags(c, szp(low, size) | (overflow ? F_CF | F_OF : 0))
}

/** IMUL r, r/m [, imm] (0F AF, 69, 6B): truncated signed product; CF = OF = it did not fit. */
export function imulTrunc(c: Cpu, size: AccessSize, a: number, b: number): number {
  let r: number
  let overflow: boolean
  if (size === 2) {
    const p = ((a << 16) >> 16) * ((b << 16) >> 16)
    r = p & 0xffff
    overflow = p !== (p << 16) >> 16
  } else {
    r = Math.imul(a, b)
    let hi = mulHigh32(a, b)
    if (a < 0) hi = (hi - b) | 0
    if (b < 0) hi = (hi - a) | 0
    overflow = hi !== r >> 31
  }
  setArithFlags(c, szp(r, size) | (overflow ? F_CF | F_OF : 0))
  return r
}

/** DIV / IDIV (F6/F7 /6 /7): #DE on a zero divisor or a quotient that does not fit. */
export function divAcc(c: Cpu, signed: boolean, size: AccessSize, src: number): void {
  if (size === 1) {
    const d = signed ? (src << 24) >> 24 : src & 0xff
    if (d === 0) c.fault(DE)
    const n = signed ? (c.r16[0]! << 16) >> 16 : c.r16[0]!
    const q = Math.trunc(n / d)
    if (signed ? q > 127 || q < -128 : q > 0xff) c.fault(DE)
    c.r8[0] = q
    c.r8[1] = n - q * d
  } else if (size === 2) {
    const d = signed ? (src << 16) >> 16 : src & 0xffff
    if (d === 0) c.fault(DE)
    const raw = ((c.r16[4]! << 16) | c.r16[0]!) >>> 0
    const n = signed ? raw | 0 : raw
    const q = Math.trunc(n / d)
    if (signed ? q > 32767 || q < -32768 : q > 0xffff) c.fault(DE)
    c.r16[0] = q
    c.r16[4] = n - q * d
  } else {
    const d = signed ? src | 0 : src >>> 0
    if (d === 0) c.fault(DE)
    const hi = c.r32[2]!
    const lo = c.r32[0]! >>> 0
    let q: number
    let rem: number
    if (!signed && hi === 0) {
      q = Math.floor(lo / d)
      rem = lo - q * d
    } else if (signed && hi === lo >> 31 && ((lo | 0) !== -0x80000000 || d !== -1)) {
      const n = lo | 0
      q = Math.trunc(n / d)
      rem = n - q * d
    } else {
      const n = signed ? (BigInt(hi) << 32n) | BigInt(lo) : (BigInt(hi >>> 0) << 32n) | BigInt(lo)
      const bq = n / BigInt(d)
      if (signed ? bq > 0x7fffffffn || bq < -0x80000000n : bq > 0xffffffffn) c.fault(DE)
      q = Number(bq)
      rem = Number(n - bq * BigInt(d))
    }
    if (signed ? q > 0x7fffffff || q < -0x80000000 : q > 0xffffffff) c.fault(DE)
    c.r32[0] = q
    c.r32[2] = rem
  }
  // flags are undefined after DIV/IDIV: left unchanged
}

/** Decimal adjust (DAA 27, DAS 2F; SDM Vol. 2 "Operation"). OF undefined: left clear. */
export function decimalAdjust(c: Cpu, subtract: boolean): void {
  const old = c.r8[0]!
  const oldCf = getCF(c)
  const flags = c.getFlags()
  let al = old
  let cf = false
  let af = false
  if ((al & 0x0f) > 9 || (flags & F_AF) !== 0) {
    const t = subtract ? al - 6 : al + 6
    cf = oldCf || t < 0 || t > 0xff
    al = t & 0xff
    af = true
  }
  if (old > 0x99 || oldCf) {
    al = (subtract ? al - 0x60 : al + 0x60) & 0xff
    cf = true
  }
  c.r8[0] = al
  setArithFlags(c, szp(al, 1) | (cf ? F_CF : 0) | (af ? F_AF : 0))
}

/** ASCII adjust after addition/subtraction (AAA 37, AAS 3F; SDM Vol. 2). */
export function asciiAdjust(c: Cpu, subtract: boolean): void {
  const flags = c.getFlags()
  let adjust = false
  if ((c.r8[0]! & 0x0f) > 9 || (flags & F_AF) !== 0) {
    if (subtract) {
      c.r16[0] = c.r16[0]! - 6
      c.r8[1] = c.r8[1]! - 1
    } else {
      c.r16[0] = c.r16[0]! + 0x106
    }
    adjust = true
  }
  c.r8[0] = c.r8[0]! & 0x0f
  // OF SF ZF PF undefined: set SF/ZF/PF from AL
  setArithFlags(c, szp(c.r8[0]!, 1) | (adjust ? F_AF | F_CF : 0))
}

/** AAM imm8 (D4): AH = AL / imm, AL = AL mod imm; #DE on 0. */
export function aam(c: Cpu, base: number): void {
  if (base === 0) c.fault(DE)
  const al = c.r8[0]!
  c.r8[1] = Math.floor(al / base)
  c.r8[0] = al % base
  setArithFlags(c, szp(c.r8[0]!, 1))
}

/** AAD imm8 (D5): AL = AL + AH * imm, AH = 0. */
export function aad(c: Cpu, base: number): void {
  const al = (c.r8[0]! + c.r8[1]! * base) & 0xff
  c.r16[0] = al
  setArithFlags(c, szp(al, 1))
}
