/**
 * The interpreter's inner loop: fetch, charge, dispatch, one instruction at a
 * time, until the budget is spent or an event is pending (cpu.ts `run`
 * handles the events and calls this again).
 *
 * Every opcode has a handler in the 256-entry table (ops/table.ts), and that
 * table alone defines what an instruction does. Calling through it is one
 * megamorphic call per instruction, which costs more than the commonest
 * instructions' own work, so the hottest forms of the commonest opcodes
 * (32-bit code, register operands or a plain memory operand, the bytes all
 * in the fetch window) are also written out here, in one switch, and run
 * without a call; any other form breaks out of the switch to its table
 * handler, and 16-bit code goes straight to the table. The written-out forms must do exactly what their handlers do
 * (test/hw/cpu/exec.property.test.ts runs random streams both ways and compares).
 *
 * EIP lives in a local between instructions and is written back before
 * anything that can read it (a handler, a memory access that can fault or
 * exit, the end of the loop). A fault unwinds to the catch here: the faulting
 * instruction is not retired (SDM: it did not complete), so it is taken off
 * `instructions` (which `run` credits with every instruction it started)
 * before the fault is delivered or the VM exit reported; it still counts
 * against the budget, which bounds instructions started.
 */
import type { Cpu } from "./cpu.ts"
import { CC_ADD, CC_DEC, CC_INC, CC_LOGIC, CC_SUB, condition, getCF, getZF, setLazy32 } from "./flags.ts"
import { shift32 } from "./ops/arith-ops.ts"
import { oneByteOps, twoByteOps } from "./ops/table.ts"
import { F_CF, F_OF } from "./regs.ts"

/**
 * Bytes after the opcode that a written-out form may read straight from RAM
 * (the longest: 81 /r id and 0F 8x cd, 5 bytes past the opcode); nearer the end
 * of the fetch window the table handler fetches byte by byte.
 */
const INLINE_TAIL = 5

/** Start instructions until `budget` have been started (counting from `n`) or an event is pending; returns the count. */
export function execute(c: Cpu, n: number, budget: number): number {
  const one = oneByteOps
  const two = twoByteOps
  const opCycles = c.opCycles
  const ram = c.ram
  const dv = c.dv
  const r32 = c.r32
  let eip = c.eip
  try {
    while (n < budget && !c.eventPending) {
      n++
      c.startEip = eip
      if (eip < c.fetchLo || eip > c.fetchHi - INLINE_TAIL || !c.o32) {
        // no fetch window here, or too near its end, or 16-bit code: the table handler, fetching byte by byte
        c.eip = eip
        const op = c.fetch8()
        c.cycles += opCycles[op]!
        one[op]!(c)
        eip = c.eip
        continue
      }
      const p = c.fetchDelta + eip
      const op = ram[p]!
      c.cycles += opCycles[op]!
      switch (op) {
        // ---- ALU Ev,Gv and Gv,Ev, register operands (Gv,Ev also from memory) ----
        case 0x01: {
          const m = ram[p + 1]!
          if (m < 0xc0) break
          const d = m & 7
          const a = r32[d]!
          const b = r32[(m >> 3) & 7]!
          const r = (a + b) | 0
          r32[d] = r
          setLazy32(c, CC_ADD, r, a, b)
          eip += 2
          continue
        }
        case 0x09: {
          const m = ram[p + 1]!
          if (m < 0xc0) break
          const d = m & 7
          const a = r32[d]!
          const b = r32[(m >> 3) & 7]!
          const r = a | b
          r32[d] = r
          setLazy32(c, CC_LOGIC, r, a, b)
          eip += 2
          continue
        }
        case 0x21: {
          const m = ram[p + 1]!
          if (m < 0xc0) break
          const d = m & 7
          const a = r32[d]!
          const b = r32[(m >> 3) & 7]!
          const r = a & b
          r32[d] = r
          setLazy32(c, CC_LOGIC, r, a, b)
          eip += 2
          continue
        }
        case 0x29: {
          const m = ram[p + 1]!
          if (m < 0xc0) break
          const d = m & 7
          const a = r32[d]!
          const b = r32[(m >> 3) & 7]!
          const r = (a - b) | 0
          r32[d] = r
          setLazy32(c, CC_SUB, r, a, b)
          eip += 2
          continue
        }
        case 0x31: {
          const m = ram[p + 1]!
          if (m < 0xc0) break
          const d = m & 7
          const a = r32[d]!
          const b = r32[(m >> 3) & 7]!
          const r = a ^ b
          r32[d] = r
          setLazy32(c, CC_LOGIC, r, a, b)
          eip += 2
          continue
        }
        case 0x39: {
          const m = ram[p + 1]!
          if (m < 0xc0) break
          const a = r32[m & 7]!
          const b = r32[(m >> 3) & 7]!
          setLazy32(c, CC_SUB, (a - b) | 0, a, b)
          eip += 2
          continue
        }
        case 0x85: {
          // TEST Ev,Gv
          const m = ram[p + 1]!
          if (m < 0xc0) break
          const a = r32[m & 7]!
          const b = r32[(m >> 3) & 7]!
          setLazy32(c, CC_LOGIC, a & b, a, b)
          eip += 2
          continue
        }
        case 0x03:
        case 0x0b:
        case 0x23:
        case 0x2b:
        case 0x33:
        case 0x3b: {
          const m = ram[p + 1]!
          let b: number
          if (m >= 0xc0) {
            b = r32[m & 7]!
            eip += 2
          } else {
            c.eip = eip + 2
            b = c.readMem32(m)
            eip = c.eip
          }
          const g = (m >> 3) & 7
          const a = r32[g]!
          switch (op) {
            case 0x03: {
              const r = (a + b) | 0
              r32[g] = r
              setLazy32(c, CC_ADD, r, a, b)
              break
            }
            case 0x0b: {
              const r = a | b
              r32[g] = r
              setLazy32(c, CC_LOGIC, r, a, b)
              break
            }
            case 0x23: {
              const r = a & b
              r32[g] = r
              setLazy32(c, CC_LOGIC, r, a, b)
              break
            }
            case 0x2b: {
              const r = (a - b) | 0
              r32[g] = r
              setLazy32(c, CC_SUB, r, a, b)
              break
            }
            case 0x33: {
              const r = a ^ b
              r32[g] = r
              setLazy32(c, CC_LOGIC, r, a, b)
              break
            }
            default:
              setLazy32(c, CC_SUB, (a - b) | 0, a, b)
          }
          continue
        }
        // ---- group 1 with a register operand: 81 /r id, 83 /r ib ----
        case 0x81:
        case 0x83: {
          const m = ram[p + 1]!
          if (m < 0xc0) break
          const k = (m >> 3) & 7
          if (k === 2 || k === 3) break // ADC, SBB
          const d = m & 7
          const a = r32[d]!
          let b: number
          if (op === 0x83) {
            b = (ram[p + 2]! << 24) >> 24
            eip += 3
          } else {
            b = dv.getInt32(p + 2, true)
            eip += 6
          }
          switch (k) {
            case 0: {
              const r = (a + b) | 0
              r32[d] = r
              setLazy32(c, CC_ADD, r, a, b)
              break
            }
            case 1: {
              const r = a | b
              r32[d] = r
              setLazy32(c, CC_LOGIC, r, a, b)
              break
            }
            case 4: {
              const r = a & b
              r32[d] = r
              setLazy32(c, CC_LOGIC, r, a, b)
              break
            }
            case 5: {
              const r = (a - b) | 0
              r32[d] = r
              setLazy32(c, CC_SUB, r, a, b)
              break
            }
            case 6: {
              const r = a ^ b
              r32[d] = r
              setLazy32(c, CC_LOGIC, r, a, b)
              break
            }
            default:
              setLazy32(c, CC_SUB, (a - b) | 0, a, b)
          }
          continue
        }
        // ---- INC r32, DEC r32 (CF is kept) ----
        case 0x40:
        case 0x41:
        case 0x42:
        case 0x43:
        case 0x44:
        case 0x45:
        case 0x46:
        case 0x47: {
          const i = op & 7
          const v = r32[i]!
          const cf = getCF(c) ? 1 : 0
          const r = (v + 1) | 0
          r32[i] = r
          setLazy32(c, CC_INC, r, v, 1)
          c.ccCarry = cf
          eip += 1
          continue
        }
        case 0x48:
        case 0x49:
        case 0x4a:
        case 0x4b:
        case 0x4c:
        case 0x4d:
        case 0x4e:
        case 0x4f: {
          const i = op & 7
          const v = r32[i]!
          const cf = getCF(c) ? 1 : 0
          const r = (v - 1) | 0
          r32[i] = r
          setLazy32(c, CC_DEC, r, v, 1)
          c.ccCarry = cf
          eip += 1
          continue
        }
        // ---- shifts and rotates of a 32-bit register: C1 /r ib, D1 /r ----
        case 0xc1:
        case 0xd1: {
          const m = ram[p + 1]!
          if (m < 0xc0) break
          const k = (m >> 3) & 7
          if (k === 2 || k === 3) break // RCL, RCR
          let count = 1
          if (op === 0xc1) {
            count = ram[p + 2]! & 0x1f
            eip += 3
          } else {
            eip += 2
          }
          if (count !== 0) {
            const d = m & 7
            const v = r32[d]!
            if (k === 0) {
              // ROL: CF = LSB(result), OF = MSB(result) ^ CF; the other flags are kept
              const r = (v << count) | (v >>> (32 - count))
              const cf = r & 1
              c.flags = (c.getFlags() & ~(F_CF | F_OF)) | cf | (((r >>> 31) ^ cf) << 11)
              r32[d] = r
            } else if (k === 1) {
              // ROR: CF = MSB(result), OF = MSB ^ MSB-1 of the result
              const r = (v >>> count) | (v << (32 - count))
              const cf = r >>> 31
              c.flags = (c.getFlags() & ~(F_CF | F_OF)) | cf | ((cf ^ ((r >>> 30) & 1)) << 11)
              r32[d] = r
            } else {
              r32[d] = shift32(c, k, v, count)
            }
          }
          continue
        }
        // ---- moves ----
        case 0x89: {
          // MOV Ev,Gv
          const m = ram[p + 1]!
          const v = r32[(m >> 3) & 7]!
          if (m >= 0xc0) {
            r32[m & 7] = v
            eip += 2
          } else {
            c.eip = eip + 2
            c.writeMem32(m, v)
            eip = c.eip
          }
          continue
        }
        case 0x8b: {
          // MOV Gv,Ev
          const m = ram[p + 1]!
          if (m >= 0xc0) {
            r32[(m >> 3) & 7] = r32[m & 7]!
            eip += 2
          } else {
            c.eip = eip + 2
            const v = c.readMem32(m)
            r32[(m >> 3) & 7] = v
            eip = c.eip
          }
          continue
        }
        case 0x8d: {
          // LEA Gv,M
          const m = ram[p + 1]!
          if (m >= 0xc0) break
          c.eip = eip + 2
          c.decodeEA(m)
          r32[(m >> 3) & 7] = c.ea
          eip = c.eip
          continue
        }
        case 0xb8:
        case 0xb9:
        case 0xba:
        case 0xbb:
        case 0xbc:
        case 0xbd:
        case 0xbe:
        case 0xbf: {
          r32[op & 7] = dv.getInt32(p + 1, true)
          eip += 5
          continue
        }
        case 0x90:
          eip += 1
          continue
        // ---- stack ----
        case 0x50:
        case 0x51:
        case 0x52:
        case 0x53:
        case 0x54:
        case 0x55:
        case 0x56:
        case 0x57: {
          c.eip = eip + 1
          c.push32(r32[op & 7]!)
          eip += 1
          continue
        }
        case 0x58:
        case 0x59:
        case 0x5a:
        case 0x5b:
        case 0x5c:
        case 0x5d:
        case 0x5e:
        case 0x5f: {
          c.eip = eip + 1
          const v = c.pop32()
          r32[op & 7] = v
          eip += 1
          continue
        }
        // ---- near branches (a target outside CS goes to the handler, which raises #GP) ----
        case 0x70:
        case 0x71:
        case 0x72:
        case 0x73:
        case 0x74:
        case 0x75:
        case 0x76:
        case 0x77:
        case 0x78:
        case 0x79:
        case 0x7a:
        case 0x7b:
        case 0x7c:
        case 0x7d:
        case 0x7e:
        case 0x7f: {
          const taken = op === 0x75 ? !getZF(c) : op === 0x74 ? getZF(c) : condition(c, op & 15)
          if (!taken) {
            eip += 2
            continue
          }
          const target = (eip + 2 + ((ram[p + 1]! << 24) >> 24)) | 0
          if (target >>> 0 > c.csLimit) break
          eip = target
          continue
        }
        case 0xeb: {
          const target = (eip + 2 + ((ram[p + 1]! << 24) >> 24)) | 0
          if (target >>> 0 > c.csLimit) break
          eip = target
          continue
        }
        case 0xe9: {
          const target = (eip + 5 + dv.getInt32(p + 1, true)) | 0
          if (target >>> 0 > c.csLimit) break
          eip = target
          continue
        }
        case 0xe8: {
          // CALL rel32
          const next = eip + 5
          const target = (next + dv.getInt32(p + 1, true)) | 0
          if (target >>> 0 > c.csLimit) break
          c.eip = next
          c.push32(next)
          eip = target
          continue
        }
        case 0xc3: {
          // RET
          c.eip = eip + 1
          const target = c.peek(0, 4)
          if (target >>> 0 > c.csLimit) break
          c.setSp(c.spPlus(4))
          eip = target
          continue
        }
        // ---- two-byte: Jcc rel32, MOVZX ----
        case 0x0f: {
          const op2 = ram[p + 1]!
          if (op2 >= 0x80 && op2 <= 0x8f) {
            c.cycles += opCycles[256 + op2]!
            if (!condition(c, op2 & 15)) {
              eip += 6
              continue
            }
            const target = (eip + 6 + dv.getInt32(p + 2, true)) | 0
            if (target >>> 0 <= c.csLimit) {
              eip = target
              continue
            }
            c.eip = eip + 2
            two[op2]!(c)
            eip = c.eip
            continue
          }
          if (op2 === 0xb6 || op2 === 0xb7) {
            const m = ram[p + 2]!
            c.cycles += opCycles[256 + op2]!
            let v: number
            if (m >= 0xc0) {
              v = op2 === 0xb6 ? c.getReg(1, m & 7) : r32[m & 7]! & 0xffff
              eip += 3
            } else {
              c.eip = eip + 3
              c.decodeEA(m)
              v = op2 === 0xb6 ? c.rd8(c.eaSeg, c.ea) : c.rd16(c.eaSeg, c.ea)
              eip = c.eip
            }
            r32[(m >> 3) & 7] = v
            continue
          }
          break
        }
      }
      // every other form: the table handler, EIP past the opcode
      c.eip = eip + 1
      one[op]!(c)
      eip = c.eip
    }
    c.eip = eip
  } catch (e) {
    // the instruction faulted (or exited): it counts against the budget (so a fault loop cannot hold the
    // loop forever) but did not retire
    c.instructions--
    c.onFault(e)
  }
  return n
}
