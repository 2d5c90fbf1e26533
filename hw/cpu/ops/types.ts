/** An instruction handler: called with EIP past the opcode byte(s); decodes the rest itself. */
import type { Cpu } from "../cpu.ts"

export type Op = (c: Cpu) => void
