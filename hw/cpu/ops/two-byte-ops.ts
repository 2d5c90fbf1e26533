/**
 * General-purpose two-byte opcodes, 0F xx (Intel SDM Vol. 2 appendix A table
 * Jcc rel16/32, SETcc, CMOVcc, MOVZX/MOVSX, BT/BTS/BTR/BTC, BSF/BSR,
 * SHLD/SHRD, IMUL Gv,Ev, XADD, CMPXCHG, CMPXCHG8B, BSWAP, PUSH/POP FS/GS,
 * LSS/LFS/LGS. System instructions are in system-ops.ts.
 */
import type { AccessSize } from "../bus.ts"
import type { Cpu } from "../cpu.ts"
import { condition, getZF, setArithFlags, szp } from "../flags.ts"
import { F_CF, F_ZF, FS, GP, GS, SS, UD } from "../regs.ts"
import { ExitReason } from "../vmx/exit-reasons.ts"
import { checkControlExit } from "../vmx/exits.ts"
import { ProcControls } from "../vmx/vmcs.ts"
import { alu, CMP, doubleShift, imulTrunc } from "./alu.ts"
import { nearJump } from "./control-ops.ts"
import { loadFarPointer, popSegment } from "./move-ops.ts"
import type { Op } from "./types.ts"

const vsize = (c: Cpu): 2 | 4 => (c.o32 ? 4 : 2)

/**
 * BT/BTS/BTR/BTC: `k` 0 test, 1 set, 2 reset, 3 complement. A register bit
 * offset with a memory operand addresses any bit relative to the operand
 * (signed, SDM BT "Operation"); an immediate offset is taken modulo the size.
 */
function bitOp(c: Cpu, m: number, k: number, offset: number, fromRegister: boolean): void {
  const size = vsize(c)
  const bits = size * 8
  let v: number
  let bit: number
  if (m >= 0xc0) {
    bit = offset & (bits - 1)
    v = c.getReg(size, m & 7)
    c.rmwReg = m & 7
  } else {
    c.decodeEA(m)
    let ea = c.ea
    if (fromRegister) {
      const signed = size === 4 ? offset | 0 : (offset << 16) >> 16
      const wordIndex = Math.floor(signed / bits)
      ea = c.a32 ? (ea + wordIndex * size) | 0 : (ea + wordIndex * size) & 0xffff
      bit = signed - wordIndex * bits
    } else {
      bit = offset & (bits - 1)
    }
    c.rmwReg = -1
    c.rmwLin = k === 0 ? c.linR(c.eaSeg, ea, size) : c.linW(c.eaSeg, ea, size)
    v = c.ldSize(c.rmwLin, size)
  }
  const mask = 1 << bit
  const flags = c.getFlags()
  c.flags = (v & mask) !== 0 ? flags | F_CF : flags & ~F_CF
  if (k === 0) return
  const r = k === 1 ? v | mask : k === 2 ? v & ~mask : v ^ mask
  c.rmwEnd(size, r)
}

export function installTwoByte(two: Array<Op>): void {
  for (let cc = 0; cc < 16; cc++) {
    two[0x80 + cc] = (c) => {
      const disp = c.o32 ? c.fetch32() : c.fetch16()
      if (condition(c, cc)) nearJump(c, c.o32 ? (c.eip + disp) | 0 : (c.eip + disp) & 0xffff)
    }
    two[0x90 + cc] = (c) => {
      const m = c.fetch8()
      c.writeRM(m, 1, condition(c, cc) ? 1 : 0)
    }
    two[0x40 + cc] = (c) => {
      // CMOVcc: the source is read (and may fault) whether or not the move happens
      const m = c.fetch8()
      const size = vsize(c)
      const v = c.readRM(m, size)
      if (condition(c, cc)) c.setReg(size, (m >> 3) & 7, v)
    }
  }
  two[0xb6] = (c) => {
    const m = c.fetch8()
    c.setReg(vsize(c), (m >> 3) & 7, c.readRM(m, 1))
  }
  two[0xb7] = (c) => {
    const m = c.fetch8()
    c.setReg(vsize(c), (m >> 3) & 7, c.readRM(m, 2))
  }
  two[0xbe] = (c) => {
    const m = c.fetch8()
    c.setReg(vsize(c), (m >> 3) & 7, (c.readRM(m, 1) << 24) >> 24)
  }
  two[0xbf] = (c) => {
    const m = c.fetch8()
    c.setReg(vsize(c), (m >> 3) & 7, (c.readRM(m, 2) << 16) >> 16)
  }
  two[0xa3] = (c) => {
    const m = c.fetch8()
    bitOp(c, m, 0, c.getReg(vsize(c), (m >> 3) & 7), true)
  }
  two[0xab] = (c) => {
    const m = c.fetch8()
    bitOp(c, m, 1, c.getReg(vsize(c), (m >> 3) & 7), true)
  }
  two[0xb3] = (c) => {
    const m = c.fetch8()
    bitOp(c, m, 2, c.getReg(vsize(c), (m >> 3) & 7), true)
  }
  two[0xbb] = (c) => {
    const m = c.fetch8()
    bitOp(c, m, 3, c.getReg(vsize(c), (m >> 3) & 7), true)
  }
  two[0xba] = (c) => {
    const m = c.fetch8()
    const k = (m >> 3) & 7
    if (k < 4) c.fault(UD)
    // the immediate follows the ModRM displacement: decode the address first
    if (m >= 0xc0) bitOp(c, m, k - 4, c.fetch8(), false)
    else {
      const start = c.eip
      c.decodeEA(m)
      const imm = c.fetch8()
      c.eip = start
      bitOp(c, m, k - 4, imm, false)
      c.eip = (c.eip + 1) | 0
    }
  }
  const bitScan =
    (reverse: boolean): Op =>
    (c) => {
      // BSF/BSR: ZF=1 and the destination unchanged when the source is 0 (SDM; Intel leaves it unchanged)
      const m = c.fetch8()
      const size = vsize(c)
      const v = c.readRM(m, size) & (size === 4 ? -1 : 0xffff)
      if (v === 0) {
        setArithFlags(c, F_ZF)
        return
      }
      const index = reverse ? 31 - Math.clz32(v) : 31 - Math.clz32(v & -v)
      c.setReg(size, (m >> 3) & 7, index)
      setArithFlags(c, szp(index, size) & ~F_ZF)
    }
  two[0xbc] = bitScan(false)
  two[0xbd] = bitScan(true)
  const shiftDouble =
    (left: boolean, byCl: boolean): Op =>
    (c) => {
      const m = c.fetch8()
      const size = vsize(c)
      const v = c.rmwBegin(m, size)
      const count = byCl ? c.r8[4]! : c.fetch8()
      c.rmwEnd(size, doubleShift(c, left, size, v, c.getReg(size, (m >> 3) & 7), count))
    }
  two[0xa4] = shiftDouble(true, false)
  two[0xa5] = shiftDouble(true, true)
  two[0xac] = shiftDouble(false, false)
  two[0xad] = shiftDouble(false, true)
  two[0xaf] = (c) => {
    const m = c.fetch8()
    const size = vsize(c)
    const g = (m >> 3) & 7
    c.setReg(size, g, imulTrunc(c, size, c.getReg(size, g), c.readRM(m, size)))
  }
  const xadd =
    (byte: boolean): Op =>
    (c) => {
      const m = c.fetch8()
      const size: AccessSize = byte ? 1 : vsize(c)
      const g = (m >> 3) & 7
      const d = c.rmwBegin(m, size)
      const s = c.getReg(size, g)
      const sum = alu(c, 0, size, d, s)
      c.setReg(size, g, d)
      c.rmwEnd(size, sum)
    }
  two[0xc0] = xadd(true)
  two[0xc1] = xadd(false)
  const cmpxchg =
    (byte: boolean): Op =>
    (c) => {
      // CMPXCHG: compare accumulator with E; equal: E = G, else accumulator = E (E is written either way)
      const m = c.fetch8()
      const size: AccessSize = byte ? 1 : vsize(c)
      const d = c.rmwBegin(m, size)
      const acc = c.getReg(size, 0)
      alu(c, CMP, size, acc, d)
      if (getZF(c)) c.rmwEnd(size, c.getReg(size, (m >> 3) & 7))
      else {
        c.rmwEnd(size, d)
        c.setReg(size, 0, d)
      }
    }
  two[0xb0] = cmpxchg(true)
  two[0xb1] = cmpxchg(false)
  two[0xc7] = (c) => {
    // CMPXCHG8B m64 (group 9 /1)
    const m = c.fetch8()
    if (((m >> 3) & 7) !== 1 || m >= 0xc0) c.fault(UD)
    c.decodeEA(m)
    const lo = c.linW(c.eaSeg, c.ea, 8)
    const a = c.ld32(lo)
    const b = c.ld32((lo + 4) | 0)
    if (a === c.r32[0] && b === c.r32[2]) {
      c.st32(lo, c.r32[3]!)
      c.st32((lo + 4) | 0, c.r32[1]!)
      c.flags = c.getFlags() | F_ZF
    } else {
      c.st32(lo, a)
      c.st32((lo + 4) | 0, b)
      c.r32[0] = a
      c.r32[2] = b
      c.flags = c.getFlags() & ~F_ZF
    }
  }
  for (let r = 0; r < 8; r++) {
    two[0xc8 + r] = (c) => {
      // BSWAP (16-bit operand size is undefined: this model clears the low word, as Intel parts do)
      const v = c.r32[r]!
      if (c.o32) c.r32[r] = ((v & 0xff) << 24) | ((v & 0xff00) << 8) | ((v >>> 8) & 0xff00) | (v >>> 24)
      else c.r16[r << 1] = 0
    }
  }
  two[0x1f] = (c) => {
    // NOP Ev (P6 multi-byte NOP): decodes its operand, touches nothing
    const m = c.fetch8()
    if (m < 0xc0) c.decodeEA(m)
  }
  two[0x33] = (c) => {
    // RDPMC: exits with RDPMC exiting; otherwise this CPU has no counters, so every ECX is invalid: #GP(0)
    checkControlExit(c, ProcControls.RdpmcExiting, ExitReason.Rdpmc)
    c.fault(GP, 0)
  }
  two[0xa0] = (c) => c.pushV(c.segSel[FS]!)
  two[0xa8] = (c) => c.pushV(c.segSel[GS]!)
  two[0xa1] = popSegment(FS)
  two[0xa9] = popSegment(GS)
  two[0xb2] = loadFarPointer(SS)
  two[0xb4] = loadFarPointer(FS)
  two[0xb5] = loadFarPointer(GS)
}
