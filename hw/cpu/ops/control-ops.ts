import type { Cpu } from "../cpu.ts"
import { condition, getZF } from "../flags.ts"
import { iret, softwareInterrupt } from "../interrupts.ts"
import { BP, DB, F_CF, F_DF, F_IF, F_IOPL, F_OF, GP, OF, UD } from "../regs.ts"
import { farCall, farJump, farReturn } from "../segmentation.ts"
import { ExitReason } from "../vmx/exit-reasons.ts"
import { controlExits } from "../vmx/exits.ts"
import { ProcControls } from "../vmx/vmcs.ts"
import { dec, inc } from "./alu.ts"
import type { Op } from "./types.ts"

const vsize = (c: Cpu): 2 | 4 => (c.o32 ? 4 : 2)

/** Jump to a near target (already truncated for the operand size); #GP(0) outside CS. */
export function nearJump(c: Cpu, target: number): void {
  if (target >>> 0 > c.csLimit) c.fault(GP, 0)
  c.eip = target
}

const relTarget = (c: Cpu, disp: number): number => (c.o32 ? (c.eip + disp) | 0 : (c.eip + disp) & 0xffff)

/** CLI/STI/HLT-style IOPL check (SDM CLI "Operation"; VME/PVI not modelled). */
function requireIopl(c: Cpu): void {
  if (c.pe && c.cpl > (c.flags & F_IOPL) >> 12) c.fault(GP, 0)
}

export function installControl(one: Array<Op>): void {
  for (let cc = 0; cc < 16; cc++) {
    one[0x70 + cc] = (c) => {
      const disp = c.fetch8s()
      if (condition(c, cc)) nearJump(c, relTarget(c, disp))
    }
  }
  // the hottest loop-closing branch, written out
  one[0x75] = (c) => {
    const disp = c.fetch8s()
    if (!getZF(c)) nearJump(c, relTarget(c, disp))
  }
  one[0xeb] = (c) => {
    const disp = c.fetch8s()
    nearJump(c, relTarget(c, disp))
  }
  one[0xe9] = (c) => {
    const disp = c.o32 ? c.fetch32() : c.fetch16()
    nearJump(c, relTarget(c, disp))
  }
  one[0xe8] = (c) => {
    const disp = c.o32 ? c.fetch32() : c.fetch16()
    const target = relTarget(c, disp)
    if (target >>> 0 > c.csLimit) c.fault(GP, 0)
    c.pushV(c.eip)
    c.eip = target
  }
  one[0xc3] = (c) => {
    const size = vsize(c)
    const target = c.peek(0, size)
    nearJump(c, size === 4 ? target : target & 0xffff)
    c.setSp(c.spPlus(size))
  }
  one[0xc2] = (c) => {
    const release = c.fetch16()
    const size = vsize(c)
    const target = c.peek(0, size)
    nearJump(c, size === 4 ? target : target & 0xffff)
    c.setSp(c.spPlus(size + release))
  }
  one[0xca] = (c) => {
    const release = c.fetch16()
    farReturn(c, c.o32, release)
  }
  one[0xcb] = (c) => farReturn(c, c.o32, 0)
  one[0xea] = (c) => {
    const off = c.o32 ? c.fetch32() : c.fetch16()
    const sel = c.fetch16()
    farJump(c, sel, off)
  }
  one[0x9a] = (c) => {
    const off = c.o32 ? c.fetch32() : c.fetch16()
    const sel = c.fetch16()
    farCall(c, sel, off, c.o32)
  }
  // LOOP family: the counter is CX or ECX by address size
  const counter = (c: Cpu): number => (c.a32 ? c.r32[1]! : c.r16[2]!)
  const decCounter = (c: Cpu): number => {
    if (c.a32) {
      c.r32[1] = c.r32[1]! - 1
      return c.r32[1]!
    }
    c.r16[2] = c.r16[2]! - 1
    return c.r16[2]!
  }
  one[0xe0] = (c) => {
    const disp = c.fetch8s()
    if (decCounter(c) !== 0 && !getZF(c)) nearJump(c, relTarget(c, disp))
  }
  one[0xe1] = (c) => {
    const disp = c.fetch8s()
    if (decCounter(c) !== 0 && getZF(c)) nearJump(c, relTarget(c, disp))
  }
  one[0xe2] = (c) => {
    const disp = c.fetch8s()
    if (decCounter(c) !== 0) nearJump(c, relTarget(c, disp))
  }
  one[0xe3] = (c) => {
    const disp = c.fetch8s()
    if (counter(c) === 0) nearJump(c, relTarget(c, disp))
  }
  // interrupts
  one[0xcc] = (c) => softwareInterrupt(c, BP)
  one[0xcd] = (c) => softwareInterrupt(c, c.fetch8())
  one[0xce] = (c) => {
    if ((c.getFlags() & F_OF) !== 0) softwareInterrupt(c, OF)
  }
  one[0xf1] = (c) => softwareInterrupt(c, DB)
  one[0xcf] = (c) => iret(c, c.o32)
  one[0xf4] = (c) => {
    if (c.pe && c.cpl !== 0) c.fault(GP, 0)
    if (controlExits(c, ProcControls.HltExiting, ExitReason.Hlt)) return
    c.halted = true
    c.eventPending = true
  }
  // flags
  one[0xf5] = (c) => c.setArith(c.getFlags() ^ F_CF)
  one[0xf8] = (c) => c.setArith(c.getFlags() & ~F_CF)
  one[0xf9] = (c) => c.setArith(c.getFlags() | F_CF)
  one[0xfc] = (c) => {
    c.flags &= ~F_DF
  }
  one[0xfd] = (c) => {
    c.flags |= F_DF
  }
  one[0xfa] = (c) => {
    requireIopl(c)
    c.flags &= ~F_IF
  }
  one[0xfb] = (c) => {
    requireIopl(c)
    if ((c.flags & F_IF) === 0) {
      // STI: interrupts are recognized only after the next instruction (SDM STI)
      c.intShadow = true
    }
    c.flags |= F_IF
    c.eventPending = true
  }
  // group 5
  one[0xff] = (c) => {
    const m = c.fetch8()
    const k = (m >> 3) & 7
    const size = vsize(c)
    switch (k) {
      case 0:
        c.rmwEnd(size, inc(c, size, c.rmwBegin(m, size)))
        return
      case 1:
        c.rmwEnd(size, dec(c, size, c.rmwBegin(m, size)))
        return
      case 2: {
        const v = c.readRM(m, size)
        const target = size === 4 ? v : v & 0xffff
        if (target >>> 0 > c.csLimit) c.fault(GP, 0)
        c.pushV(c.eip)
        c.eip = target
        return
      }
      case 3:
      case 5: {
        if (m >= 0xc0) c.fault(UD)
        c.decodeEA(m)
        const off = size === 4 ? c.rd32(c.eaSeg, c.ea) : c.rd16(c.eaSeg, c.ea)
        const sel = c.rd16(c.eaSeg, (c.ea + size) | 0)
        if (k === 3) farCall(c, sel, off, c.o32)
        else farJump(c, sel, off)
        return
      }
      case 4: {
        const v = c.readRM(m, size)
        nearJump(c, size === 4 ? v : v & 0xffff)
        return
      }
      case 6:
        c.pushV(c.readRM(m, size))
        return
      default:
        c.fault(UD)
    }
  }
}
