/**
 * A reference model of the IA-32 integer ALU, for the property tests in
 * alu.property.test.ts: deliberately slow, literal and independent of
 * hw/cpu. Every value is a BigInt, every loop is the SDM's own loop.
 *
 * Sources (Intel SDM Vol. 2, each instruction's "Operation" and "Flags
 * Affected" sections; Vol. 1 3.4.3.1 for the status flags):
 *   ADD ADC SUB SBB CMP NEG INC DEC: OF SF ZF AF CF PF set by the result
 *     (INC/DEC leave CF; NEG sets CF unless the source is 0);
 *   AND OR XOR: OF = CF = 0, SF ZF PF by the result, AF undefined;
 *   SAL SHL SAR SHR: count masked to 5 bits; count 0 changes no flag; else
 *     CF = last bit shifted out (undefined for SHL/SHR when count >= size),
 *     OF defined only for count 1, AF undefined, SF ZF PF by the result;
 *   ROL ROR RCL RCR: count masked to 5 bits (RCL/RCR then mod 9 / 17 at 8 / 16
 *     bits, ROL/ROR mod size); masked count 0 changes no flag; else CF set,
 *     OF defined only for masked count 1; SF ZF AF PF never affected;
 *   MUL, IMUL: CF = OF = "the upper half is significant"; SF ZF AF PF undefined;
 *   DIV, IDIV: #DE on a zero divisor or a quotient that does not fit;
 *     quotient truncated toward 0, remainder has the dividend's sign; every
 *     arithmetic flag undefined.
 *
 * The register file (Vol. 1 3.4.1.1): AL/AX/EAX alias the low bits of EAX,
 * and 8-bit register numbers 4-7 are AH CH DH BH, bits 8-15 of EAX..EBX.
 */

export type Bits = 8 | 16 | 32

// EFLAGS bits (SDM Vol. 1 3.4.3).
export const CF = 1 << 0
export const PF = 1 << 2
export const AF = 1 << 4
export const ZF = 1 << 6
export const SF = 1 << 7
export const OF = 1 << 11
export const ARITH = CF | PF | AF | ZF | SF | OF

/** What an instruction does to a destination and the status flags. */
export interface Outcome {
  /** The destination value (unsigned, `bits` wide), or undefined when none is written (CMP). */
  readonly result: number | undefined
  /** The six arithmetic flags afterwards (flags the instruction does not affect are copied from the input). */
  readonly flags: number
  /** Flags the SDM calls undefined for this instruction and operands: not compared. */
  readonly undefinedFlags: number
  /** Flags written at all ("Flags Affected"), defined or not: the rest keep their value. */
  readonly affectedFlags: number
}

const mask = (bits: Bits): bigint => (1n << BigInt(bits)) - 1n
const big = (v: number, bits: Bits): bigint => BigInt(v >>> 0) & mask(bits)
/** Two's complement reading of the low `bits` bits. */
export const signed = (v: bigint, bits: Bits): bigint => BigInt.asIntN(bits, v)
const unsigned = (v: bigint, bits: Bits): bigint => BigInt.asUintN(bits, v)
const msb = (v: bigint, bits: Bits): boolean => ((v >> BigInt(bits - 1)) & 1n) === 1n
const toNumber = (v: bigint, bits: Bits): number => Number(unsigned(v, bits))

/** PF: the low byte of the result has an even number of 1 bits (SDM Vol. 1 3.4.3.1). */
export function parity(v: bigint): boolean {
  let ones = 0
  for (let i = 0n; i < 8n; i++) if (((v >> i) & 1n) === 1n) ones++
  return ones % 2 === 0
}

const flag = (bit: number, on: boolean): number => (on ? bit : 0)

/** SF ZF PF of a result. */
function szp(r: bigint, bits: Bits): number {
  return flag(SF, msb(r, bits)) | flag(ZF, unsigned(r, bits) === 0n) | flag(PF, parity(r))
}

const fitsSigned = (v: bigint, bits: Bits): boolean => v >= -(1n << BigInt(bits - 1)) && v < 1n << BigInt(bits - 1)

// ---------------------------------------------------------------------------
// ADD ADC SUB SBB CMP AND OR XOR, NEG INC DEC NOT

export type BinaryOp = "add" | "or" | "adc" | "sbb" | "and" | "sub" | "xor" | "cmp"
/** In opcode-map order: the ALU rows 00-3F and the 80-83 ModRM.reg field. */
export const binaryOps: ReadonlyArray<BinaryOp> = ["add", "or", "adc", "sbb", "and", "sub", "xor", "cmp"]

/** dest + (src + carryIn): SDM ADD/ADC "Operation" and "Flags Affected". */
function addWithCarry(a: bigint, b: bigint, carryIn: bigint, bits: Bits): { r: bigint; flags: number } {
  const full = a + b + carryIn
  const r = unsigned(full, bits)
  const cf = full > mask(bits)
  const of = !fitsSigned(signed(a, bits) + signed(b, bits) + carryIn, bits)
  const af = (a & 0xfn) + (b & 0xfn) + carryIn > 0xfn
  return { r, flags: szp(r, bits) | flag(CF, cf) | flag(OF, of) | flag(AF, af) }
}

/** dest - (src + borrowIn): SDM SUB/SBB/CMP "Operation" and "Flags Affected". */
function subWithBorrow(a: bigint, b: bigint, borrowIn: bigint, bits: Bits): { r: bigint; flags: number } {
  const r = unsigned(a - b - borrowIn, bits)
  const cf = a < b + borrowIn
  const of = !fitsSigned(signed(a, bits) - signed(b, bits) - borrowIn, bits)
  const af = (a & 0xfn) < (b & 0xfn) + borrowIn
  return { r, flags: szp(r, bits) | flag(CF, cf) | flag(OF, of) | flag(AF, af) }
}

export function binary(op: BinaryOp, dest: number, src: number, flagsIn: number, bits: Bits): Outcome {
  const a = big(dest, bits)
  const b = big(src, bits)
  const carry = (flagsIn & CF) !== 0 ? 1n : 0n
  switch (op) {
    case "add":
    case "adc": {
      const { r, flags } = addWithCarry(a, b, op === "adc" ? carry : 0n, bits)
      return { result: Number(r), flags, undefinedFlags: 0, affectedFlags: ARITH }
    }
    case "sub":
    case "sbb":
    case "cmp": {
      const { r, flags } = subWithBorrow(a, b, op === "sbb" ? carry : 0n, bits)
      return { result: op === "cmp" ? undefined : Number(r), flags, undefinedFlags: 0, affectedFlags: ARITH }
    }
    default: {
      // AND OR XOR: "The OF and CF flags are cleared; the SF, ZF, and PF flags are set according to
      // the result. The state of the AF flag is undefined."
      const r = op === "and" ? a & b : op === "or" ? a | b : a ^ b
      return { result: Number(r), flags: szp(r, bits), undefinedFlags: AF, affectedFlags: ARITH }
    }
  }
}

/** NEG: DEST = 0 - DEST; "CF set to 0 if the source operand is 0; otherwise it is set to 1". */
export function neg(dest: number, bits: Bits): Outcome {
  const { r, flags } = subWithBorrow(0n, big(dest, bits), 0n, bits)
  return {
    result: Number(r),
    flags: (flags & ~CF) | flag(CF, big(dest, bits) !== 0n),
    undefinedFlags: 0,
    affectedFlags: ARITH
  }
}

/** INC / DEC: "The CF flag is not affected. The OF, SF, ZF, AF, and PF flags are set according to the result." */
export function incDec(dec: boolean, dest: number, flagsIn: number, bits: Bits): Outcome {
  const a = big(dest, bits)
  const { r, flags } = dec ? subWithBorrow(a, 1n, 0n, bits) : addWithCarry(a, 1n, 0n, bits)
  return { result: Number(r), flags: (flags & ~CF) | (flagsIn & CF), undefinedFlags: 0, affectedFlags: ARITH & ~CF }
}

/** NOT: "None" flags affected. */
export function not(dest: number, flagsIn: number, bits: Bits): Outcome {
  return { result: toNumber(~big(dest, bits), bits), flags: flagsIn & ARITH, undefinedFlags: 0, affectedFlags: 0 }
}

// ---------------------------------------------------------------------------
// Shifts and rotates: the SDM's WHILE loops, one bit per iteration

/** In ModRM.reg order for C0 C1 D0-D3 (/6 is not used: the SDM does not list it). */
export type ShiftOp = "rol" | "ror" | "rcl" | "rcr" | "shl" | "shr" | "sar"
export const shiftOps: ReadonlyArray<ShiftOp> = ["rol", "ror", "rcl", "rcr", "shl", "shr", "sar"]
export const shiftReg: Record<ShiftOp, number> = { rol: 0, ror: 1, rcl: 2, rcr: 3, shl: 4, shr: 5, sar: 7 }

export function shift(op: ShiftOp, dest: number, count: number, flagsIn: number, bits: Bits): Outcome {
  const masked = count & 0x1f // COUNTMASK = 1FH outside 64-bit mode
  const flagsOut = flagsIn & ARITH
  if (masked === 0) return { result: Number(big(dest, bits)), flags: flagsOut, undefinedFlags: 0, affectedFlags: 0 }
  let d = big(dest, bits)
  const top = BigInt(bits - 1)
  let cf = (flagsIn & CF) !== 0 ? 1n : 0n
  let of: bigint | undefined
  switch (op) {
    case "shl":
    case "shr":
    case "sar": {
      // SAL/SAR/SHL/SHR "Operation"
      const original = d
      for (let t = masked; t !== 0; t--) {
        if (op === "shl") {
          cf = (d >> top) & 1n
          d = unsigned(d * 2n, bits)
        } else {
          cf = d & 1n
          // SAR: "signed divide, rounding toward negative infinity"; SHR: unsigned divide
          d = op === "sar" ? unsigned(signed(d, bits) >> 1n, bits) : d / 2n
        }
      }
      if (masked === 1) of = op === "shl" ? ((d >> top) & 1n) ^ cf : op === "sar" ? 0n : (original >> top) & 1n
      // "CF ... is undefined for SHL and SHR instructions where the count is greater than or equal to
      // the size (in bits) of the destination operand"; "For a non-zero count, the AF flag is undefined."
      const undef = AF | (masked === 1 ? 0 : OF) | (op !== "sar" && masked >= bits ? CF : 0)
      const flags = szp(d, bits) | flag(CF, cf === 1n) | flag(OF, of === 1n)
      return { result: Number(d), flags, undefinedFlags: undef, affectedFlags: ARITH }
    }
    case "rol":
    case "ror": {
      // ROL/ROR "Operation": tempCOUNT = (COUNT & COUNTMASK) MOD SIZE
      for (let t = masked % bits; t !== 0; t--) {
        if (op === "rol") d = unsigned(d * 2n + ((d >> top) & 1n), bits)
        else d = d / 2n + ((d & 1n) << top)
      }
      // "IF (COUNT & COUNTMASK) != 0 THEN CF <- LSB(DEST)" (ROL) / "MSB(DEST)" (ROR)
      cf = op === "rol" ? d & 1n : (d >> top) & 1n
      // ROL: OF = MSB(DEST) XOR CF; ROR: OF = MSB(DEST) XOR MSB-1(DEST); only for masked count 1
      of = op === "rol" ? ((d >> top) & 1n) ^ cf : ((d >> top) ^ (d >> (top - 1n))) & 1n
      break
    }
    default: {
      // RCL/RCR "Operation": tempCOUNT = (COUNT AND 1FH) MOD 9 / MOD 17 / unchanged at 32 bits
      const temp = bits === 32 ? masked : masked % (bits + 1)
      // RCR computes OF before rotating: "OF <- MSB(DEST) XOR CF"
      if (op === "rcr") of = ((d >> top) & 1n) ^ cf
      for (let t = temp; t !== 0; t--) {
        if (op === "rcl") {
          const out = (d >> top) & 1n
          d = unsigned(d * 2n + cf, bits)
          cf = out
        } else {
          const out = d & 1n
          d = d / 2n + (cf << top)
          cf = out
        }
      }
      if (op === "rcl") of = ((d >> top) & 1n) ^ cf
    }
  }
  // rotates: SF ZF AF PF unaffected; OF undefined unless the masked count is 1
  const flags = (flagsOut & ~(CF | OF)) | flag(CF, cf === 1n) | flag(OF, of === 1n)
  return { result: Number(d), flags, undefinedFlags: masked === 1 ? 0 : OF, affectedFlags: CF | OF }
}

// ---------------------------------------------------------------------------
// MUL IMUL DIV IDIV

export interface Product {
  /** The low `bits` of the product (AL/AX/EAX, or the two/three-operand destination). */
  readonly low: number
  /** The high `bits` (AH/DX/EDX); one-operand forms only. */
  readonly high: number
  readonly flags: number
  readonly undefinedFlags: number
  readonly affectedFlags: number
}

/**
 * MUL / IMUL: the full product of a and b (unsigned for MUL, two's
 * complement for IMUL). CF = OF = 1 iff the high half is significant: for
 * MUL "set to 0 if the upper half of the result is 0"; for IMUL "set when
 * significant bits are carried into the upper half" / "when the result must
 * be truncated". SF ZF AF PF undefined; the other arithmetic flags are kept
 * in `flags` so the mask leaves nothing to compare there.
 */
export function multiply(isSigned: boolean, a: number, b: number, flagsIn: number, bits: Bits): Product {
  const x = isSigned ? signed(big(a, bits), bits) : big(a, bits)
  const y = isSigned ? signed(big(b, bits), bits) : big(b, bits)
  const p = x * y
  const significant = isSigned ? !fitsSigned(p, bits) : p > mask(bits)
  return {
    low: toNumber(p, bits),
    high: toNumber(p >> BigInt(bits), bits),
    flags: (flagsIn & ARITH & ~(CF | OF)) | flag(CF | OF, significant),
    undefinedFlags: SF | ZF | AF | PF,
    affectedFlags: ARITH
  }
}

export type Quotient =
  | { readonly fault: false; readonly quotient: number; readonly remainder: number }
  | { readonly fault: true }

/**
 * DIV / IDIV of the double-width dividend high:low by `divisor`: "IF SRC = 0
 * THEN #DE"; "IF temp > FFH (unsigned) / temp > 7FH or temp < 80H (signed)
 * THEN #DE". "Non-integral results are truncated (chopped) towards 0"; the
 * remainder is the dividend minus quotient times divisor (sign of the
 * dividend). BigInt `/` truncates toward zero, as the SDM does.
 */
export function divide(isSigned: boolean, high: number, low: number, divisor: number, bits: Bits): Quotient {
  const wide = (big(high, bits) << BigInt(bits)) | big(low, bits)
  const n = isSigned ? BigInt.asIntN(2 * bits, wide) : wide
  const d = isSigned ? signed(big(divisor, bits), bits) : big(divisor, bits)
  if (d === 0n) return { fault: true }
  const q = n / d
  const fits = isSigned ? fitsSigned(q, bits) : q <= mask(bits)
  if (!fits) return { fault: true }
  return { fault: false, quotient: toNumber(q, bits), remainder: toNumber(n - q * d, bits) }
}

/** DIV / IDIV: "The CF, OF, SF, ZF, AF, and PF flags are undefined." */
export const DIVIDE_UNDEFINED_FLAGS = ARITH

// ---------------------------------------------------------------------------
// The register file

/** Register `i` (ModRM encoding) at `bits`, from eight 32-bit registers EAX..EDI. */
export function getReg(regs: ReadonlyArray<number>, bits: Bits, i: number): number {
  if (bits === 32) return regs[i]! >>> 0
  if (bits === 16) return regs[i]! & 0xffff
  return i < 4 ? regs[i]! & 0xff : (regs[i - 4]! >>> 8) & 0xff
}

/** Write register `i` at `bits`; the other bits of the 32-bit register are kept. */
export function setReg(regs: Array<number>, bits: Bits, i: number, v: number): void {
  if (bits === 32) regs[i] = v >>> 0
  else if (bits === 16) regs[i] = ((regs[i]! & 0xffff0000) | (v & 0xffff)) >>> 0
  else if (i < 4) regs[i] = ((regs[i]! & 0xffffff00) | (v & 0xff)) >>> 0
  else regs[i - 4] = ((regs[i - 4]! & 0xffff00ff) | ((v & 0xff) << 8)) >>> 0
}
