/**
 * The dispatch tables: handler per one-byte opcode and per 0F-prefixed
 * opcode. Unassigned entries raise #UD. The opcode metadata (mnemonics,
 * operands, cost classes) lives in ../opcodes.ts, shared with the
 * disassembler; test/hw/cpu checks that both agree on which opcodes exist.
 */
import type { Cpu } from "../cpu.ts"
import { UD } from "../regs.ts"
import { installArith } from "./arith-ops.ts"
import { installControl } from "./control-ops.ts"
import { installIo } from "./io-ops.ts"
import { installMove } from "./move-ops.ts"
import { installPrefixes } from "./prefix.ts"
import { installString } from "./string-ops.ts"
import { installSystem } from "./system-ops.ts"
import { installTwoByte } from "./two-byte-ops.ts"
import type { Op } from "./types.ts"

const invalid: Op = (c: Cpu) => c.fault(UD)

export const oneByteOps: Array<Op> = new Array<Op>(256).fill(invalid)
export const twoByteOps: Array<Op> = new Array<Op>(256).fill(invalid)

installArith(oneByteOps)
installMove(oneByteOps)
installControl(oneByteOps)
installString(oneByteOps)
installIo(oneByteOps)
installTwoByte(twoByteOps)
installSystem(oneByteOps, twoByteOps)
installPrefixes(oneByteOps, twoByteOps)

export const isInvalid = (op: Op): boolean => op === invalid
