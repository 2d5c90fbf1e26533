/**
 * Instruction prefixes (Intel SDM Vol. 2A 2.1.1): segment overrides
 * 26 2E 36 3E 64 65, operand size 66, address size 67, LOCK F0,
 * REPNE F2 and REP/REPE F3, and the 0F two-byte escape. Each prefix
 * records itself and dispatches the next byte; an instruction longer than
 * 15 bytes raises #GP(0).
 *
 * LOCK is legal only before ADD ADC AND BTC BTR BTS CMPXCHG CMPXCHG8B DEC
 * INC NEG NOT OR SBB SUB XADD XCHG XOR with a memory destination (SDM
 * LOCK); anywhere else it raises #UD.
 */
import type { Cpu } from "../cpu.ts"
import { CS, DS, ES, FS, GP, GS, SS, UD } from "../regs.ts"
import type { Op } from "./types.ts"

const MAX_LENGTH = 15

/** Opcodes that accept LOCK with a memory destination; for groups, the allowed ModRM.reg values as a bit mask. */
const lockableOne = new Uint8Array(256)
const lockableTwo = new Uint8Array(256)
for (const base of [0x00, 0x08, 0x10, 0x18, 0x20, 0x28, 0x30]) {
  lockableOne[base] = 0xff
  lockableOne[base + 1] = 0xff
}
for (const op of [0x80, 0x81, 0x82, 0x83]) lockableOne[op] = 0x7f // not /7 (CMP)
lockableOne[0x86] = 0xff
lockableOne[0x87] = 0xff
lockableOne[0xf6] = 0x0c // NOT NEG
lockableOne[0xf7] = 0x0c
lockableOne[0xfe] = 0x03 // INC DEC
lockableOne[0xff] = 0x03
for (const op of [0xab, 0xb3, 0xbb, 0xb0, 0xb1, 0xc0, 0xc1]) lockableTwo[op] = 0xff
lockableTwo[0xba] = 0xe0 // BTS BTR BTC
lockableTwo[0xc7] = 0x02 // CMPXCHG8B

function checkLength(c: Cpu): void {
  if ((c.eip - c.startEip) >>> 0 >= MAX_LENGTH) c.fault(GP, 0)
}

/** Look past the remaining prefixes at the opcode and ModRM to decide whether LOCK is legal. */
function lockAllowed(c: Cpu): boolean {
  const start = c.eip
  try {
    let op = c.fetch8()
    while (
      op === 0x26 ||
      op === 0x2e ||
      op === 0x36 ||
      op === 0x3e ||
      (op >= 0x64 && op <= 0x67) ||
      op === 0xf0 ||
      op === 0xf2 ||
      op === 0xf3
    ) {
      checkLength(c)
      op = c.fetch8()
    }
    let table = lockableOne
    if (op === 0x0f) {
      table = lockableTwo
      op = c.fetch8()
    }
    const regs = table[op]!
    if (regs === 0) return false
    const m = c.fetch8()
    return m < 0xc0 && (regs & (1 << ((m >> 3) & 7))) !== 0
  } finally {
    c.eip = start
  }
}

export function installPrefixes(one: Array<Op>, two: Array<Op>): void {
  const next = (c: Cpu): void => {
    checkLength(c)
    const op = c.fetch8()
    c.cycles += c.opCycles[op]!
    one[op]!(c)
  }
  const segment =
    (seg: number): Op =>
    (c) => {
      c.segOvr = seg
      next(c)
      c.segOvr = -1
    }
  one[0x26] = segment(ES)
  one[0x2e] = segment(CS)
  one[0x36] = segment(SS)
  one[0x3e] = segment(DS)
  one[0x64] = segment(FS)
  one[0x65] = segment(GS)
  one[0x66] = (c) => {
    c.o32 = !c.csD
    next(c)
    c.o32 = c.csD
  }
  one[0x67] = (c) => {
    c.a32 = !c.csD
    next(c)
    c.a32 = c.csD
  }
  one[0xf0] = (c) => {
    if (!lockAllowed(c)) c.fault(UD)
    next(c)
  }
  one[0xf2] = (c) => {
    c.rep = 0xf2
    next(c)
    c.rep = 0
  }
  one[0xf3] = (c) => {
    c.rep = 0xf3
    next(c)
    c.rep = 0
  }
  one[0x0f] = (c) => {
    checkLength(c)
    const op = c.fetch8()
    c.cycles += c.opCycles[256 + op]!
    two[op]!(c)
  }
}
