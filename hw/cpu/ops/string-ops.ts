/**
 * String instructions with REP/REPE/REPNE (Intel SDM Vol. 2: MOVS CMPS STOS
 * LODS SCAS INS OUTS; Vol. 1 7.3.9.3 repeat prefixes).
 *
 * Source DS:(E)SI (segment overridable), destination ES:(E)DI (never
 * overridden); (E)SI/(E)DI/(E)CX by address size; DF picks the direction.
 * Each iteration updates the registers before the next one starts, so a
 * fault mid-way leaves a restartable state. A repeated instruction runs at
 * most `REP_CHUNK` iterations per dispatch, then re-executes itself from its
 * first byte, so interrupts and the scheduler's budget are honoured during
 * long copies (as real CPUs service interrupts between iterations).
 */
import type { AccessSize } from "../bus.ts"
import type { Cpu } from "../cpu.ts"
import { getZF } from "../flags.ts"
import { Access } from "../paging.ts"
import { DS, ECX, EDI, ES, ESI, F_DF } from "../regs.ts"
import { checkIoExit } from "../vmx/exits.ts"
import { alu, CMP } from "./alu.ts"
import { checkIoPermission } from "./io-ops.ts"
import type { Op } from "./types.ts"

const REP_CHUNK = 4096

const MOVS = 0
const CMPS = 1
const STOS = 2
const LODS = 3
const SCAS = 4
const INS = 5
const OUTS = 6

function advance(c: Cpu, reg: number, step: number): void {
  if (c.a32) c.r32[reg] = c.r32[reg]! + step
  else c.r16[reg << 1] = c.r16[reg << 1]! + step
}

const index = (c: Cpu, reg: number): number => (c.a32 ? c.r32[reg]! : c.r16[reg << 1]!)

/** One iteration of string operation `kind`; returns false when a REPE/REPNE condition ends the loop. */
function step(c: Cpu, kind: number, size: AccessSize, delta: number): void {
  const src = c.segOvr >= 0 ? c.segOvr : DS
  switch (kind) {
    case MOVS: {
      const v = c.ldSize(c.linR(src, index(c, ESI), size), size)
      c.stSize(c.linW(ES, index(c, EDI), size), size, v)
      advance(c, ESI, delta)
      advance(c, EDI, delta)
      return
    }
    case CMPS: {
      const a = c.ldSize(c.linR(src, index(c, ESI), size), size)
      const b = c.ldSize(c.linR(ES, index(c, EDI), size), size)
      alu(c, CMP, size, a, b)
      advance(c, ESI, delta)
      advance(c, EDI, delta)
      return
    }
    case STOS:
      c.stSize(c.linW(ES, index(c, EDI), size), size, c.getReg(size, 0))
      advance(c, EDI, delta)
      return
    case LODS:
      c.setReg(size, 0, c.ldSize(c.linR(src, index(c, ESI), size), size))
      advance(c, ESI, delta)
      return
    case SCAS: {
      const b = c.ldSize(c.linR(ES, index(c, EDI), size), size)
      alu(c, CMP, size, c.getReg(size, 0), b)
      advance(c, EDI, delta)
      return
    }
    case INS: {
      // the destination is checked before the port is read, so a fault does not lose input
      const lin = c.linW(ES, index(c, EDI), size)
      c.xlate(lin, Access.Write, c.cpl === 3)
      c.stSize(lin, size, c.io.in(c.r16[4]!, size))
      c.cycles += c.portLatency
      advance(c, EDI, delta)
      return
    }
    default: {
      const v = c.ldSize(c.linR(src, index(c, ESI), size), size)
      c.io.out(c.r16[4]!, size, size === 4 ? v >>> 0 : v)
      c.cycles += c.portLatency
      advance(c, ESI, delta)
    }
  }
}

function stringOp(opcode: number, kind: number, byte: boolean): Op {
  return (c) => {
    const size: AccessSize = byte ? 1 : c.o32 ? 4 : 2
    if (kind === INS || kind === OUTS) {
      checkIoPermission(c, c.r16[4]!, size)
      if (checkIoExit(c, c.r16[4]!, size, kind === INS, true, false)) return
    }
    const delta = (c.flags & F_DF) !== 0 ? -size : size
    if (c.rep === 0) {
      step(c, kind, size, delta)
      return
    }
    const conditional = kind === CMPS || kind === SCAS
    for (let n = 0; ; n++) {
      if ((c.a32 ? c.r32[ECX]! : c.r16[ECX << 1]!) === 0) return
      if (n === REP_CHUNK) {
        c.eip = c.startEip
        return
      }
      step(c, kind, size, delta)
      // every iteration costs one String class charge (the dispatch paid for the first)
      if (n > 0) c.cycles += c.opCycles[opcode]!
      if (c.a32) c.r32[ECX] = c.r32[ECX]! - 1
      else c.r16[ECX << 1] = c.r16[ECX << 1]! - 1
      if (conditional && getZF(c) !== (c.rep === 0xf3)) return
    }
  }
}

export function installString(one: Array<Op>): void {
  one[0xa4] = stringOp(0xa4, MOVS, true)
  one[0xa5] = stringOp(0xa5, MOVS, false)
  one[0xa6] = stringOp(0xa6, CMPS, true)
  one[0xa7] = stringOp(0xa7, CMPS, false)
  one[0xaa] = stringOp(0xaa, STOS, true)
  one[0xab] = stringOp(0xab, STOS, false)
  one[0xac] = stringOp(0xac, LODS, true)
  one[0xad] = stringOp(0xad, LODS, false)
  one[0xae] = stringOp(0xae, SCAS, true)
  one[0xaf] = stringOp(0xaf, SCAS, false)
  one[0x6c] = stringOp(0x6c, INS, true)
  one[0x6d] = stringOp(0x6d, INS, false)
  one[0x6e] = stringOp(0x6e, OUTS, true)
  one[0x6f] = stringOp(0x6f, OUTS, false)
}
