/**
 * What the binary translator needs to know of one guest instruction in
 * 32-bit code (Intel SDM Vol. 2 ch. 2 "Instruction Format", Appendix A
 * opcode map): its length -- prefixes (2.1.1), opcode, ModRM and SIB with
 * their displacement (tables 2-1, 2-2, 2-3; 16-bit addressing under a 67
 * prefix), immediates by the operand codes of the opcode table the
 * interpreter and the disassembler use (hw/cpu/opcodes.ts); at most 15
 * bytes (2.3.11) -- and how it must be translated:
 *
 *   ident     copied unchanged into the translation cache
 *   jmp/jcc/call/loop   direct (PC-relative) control flow: rewritten
 *   ret       near RET: a lookup callout (the return address is a guest EIP)
 *   emulate   a sensitive or privileged instruction, an indirect or far
 *             control transfer, anything that reads CS or loads a segment
 *             register: a callout to the monitor, which carries it out on
 *             the virtual CPU (Adams & Agesen 2006 section 3.1; Robin &
 *             Irvine, "Analysis of the Intel Pentium's ability to support a
 *             secure VMM", 2000, for the sensitive-but-unprivileged list)
 *
 * Every instruction the translator does not positively know to be safe to
 * run at ring 1 is `emulate`: an unknown opcode costs a callout, never a
 * hole in the monitor.
 */
import { entryFor, isEscape, isGroup, isPrefix, type OpcodeEntry, oneByte, twoByte } from "../../../hw/cpu/opcodes.ts"

export type InstructionKind = "ident" | "jmp" | "jcc" | "call" | "loop" | "ret" | "emulate"

export interface DecodedInstruction {
  readonly length: number
  readonly kind: InstructionKind
  /** Mnemonic from the opcode map (the callout kind for `emulate`), or "invalid". */
  readonly mnemonic: string
  /** Direct branches: the target EIP; `ret`: the bytes released after the return address (RET imm16). */
  readonly target: number
  /** Direct branches: the condition nibble (jcc) or the opcode (loop E0-E3). */
  readonly condition: number
  /** The instruction ends a translated block (control flow, callouts). */
  readonly endsBlock: boolean
}

/** Opcodes (one-byte) that always go to the monitor. */
const EMULATE_ONE_BYTE = new Set([
  0x07, // pop es
  0x0e, // push cs
  0x16, // push ss
  0x17, // pop ss
  0x1f, // pop ds
  0x2e, // cs: override (would read through the translation cache's CS)
  0x63, // arpl: compares RPLs (sensitive at a deprivileged CPL)
  0x6c,
  0x6d,
  0x6e,
  0x6f, // ins/outs
  0x8c, // mov r/m, sreg
  0x8e, // mov sreg, r/m
  0x9a, // call far
  0x9c, // pushf
  0x9d, // popf
  0xc4,
  0xc5, // les, lds
  0xca,
  0xcb, // retf
  0xcc,
  0xcd,
  0xce, // int3, int n, into
  0xcf, // iret
  0xe4,
  0xe5,
  0xe6,
  0xe7, // in/out imm8
  0xea, // jmp far
  0xec,
  0xed,
  0xee,
  0xef, // in/out dx
  0xf1, // int1
  0xf4, // hlt
  0xfa, // cli
  0xfb // sti
])

/** Two-byte opcodes (0F xx) that are safe to copy; every other 0F opcode goes to the monitor. */
const IDENT_TWO_BYTE = new Set<number>([
  0x31, // rdtsc (the pCPU's TSC offset is the guest's)
  ...range(0x40, 0x4f), // cmovcc
  ...range(0x90, 0x9f), // setcc
  0xa0, // push fs
  0xa3,
  0xa4,
  0xa5, // bt, shld
  0xa8, // push gs
  0xab,
  0xac,
  0xad,
  0xaf, // bts, shrd, imul
  0xb0,
  0xb1, // cmpxchg
  0xb3, // btr
  0xb6,
  0xb7, // movzx
  0xba,
  0xbb,
  0xbc,
  0xbd,
  0xbe,
  0xbf, // bt group, btc, bsf, bsr, movsx
  0xc0,
  0xc1, // xadd
  0xc7, // cmpxchg8b
  ...range(0xc8, 0xcf) // bswap
])

function range(from: number, to: number): Array<number> {
  const out: Array<number> = []
  for (let i = from; i <= to; i++) out.push(i)
  return out
}

const INVALID: DecodedInstruction = {
  length: 1,
  kind: "emulate",
  mnemonic: "invalid",
  target: 0,
  condition: 0,
  endsBlock: true
}

const s8 = (b: number): number => (b << 24) >> 24
const s32 = (bytes: Uint8Array, i: number): number =>
  bytes[i]! | (bytes[i + 1]! << 8) | (bytes[i + 2]! << 16) | (bytes[i + 3]! << 24) | 0

/**
 * Decode the instruction in `bytes` (up to 15 bytes from its first byte)
 * at guest EIP `eip`, in 32-bit code.
 */
export function decodeInstruction(bytes: Uint8Array, eip: number): DecodedInstruction {
  const length = instructionLength(bytes)
  if (length < 0) return INVALID
  let i = 0
  let opsize = false
  let addrsize = false
  let segCs = false
  for (; i < length; i++) {
    const slot = oneByte[bytes[i]!]
    if (!isPrefix(slot)) break
    if (slot.prefix === "opsize") opsize = true
    else if (slot.prefix === "addrsize") addrsize = true
    else if (slot.prefix === "cs") segCs = true
  }
  const op = bytes[i]!
  const emulate = (mnemonic: string): DecodedInstruction => ({
    length,
    kind: "emulate",
    mnemonic,
    target: 0,
    condition: 0,
    endsBlock: true
  })
  const next = (eip + length) >>> 0
  if (op === 0x0f) {
    const op2 = bytes[i + 1]!
    const reg = (bytes[i + 2]! >> 3) & 7
    const mnemonic = entryFor(op2, true, reg)?.mnemonic ?? "invalid"
    if (segCs) return emulate(mnemonic)
    if (op2 >= 0x80 && op2 <= 0x8f) {
      if (opsize) return emulate(mnemonic)
      const target = (next + s32(bytes, i + 2)) >>> 0
      return { length, kind: "jcc", mnemonic, target, condition: op2 & 15, endsBlock: true }
    }
    if (IDENT_TWO_BYTE.has(op2)) return { length, kind: "ident", mnemonic, target: 0, condition: 0, endsBlock: false }
    return emulate(mnemonic)
  }
  const reg = (bytes[i + 1]! >> 3) & 7
  const mnemonic = entryFor(op, false, reg)?.mnemonic ?? "invalid"
  if (segCs || EMULATE_ONE_BYTE.has(op)) return emulate(mnemonic)
  if (op >= 0x70 && op <= 0x7f) {
    if (opsize) return emulate(mnemonic)
    return {
      length,
      kind: "jcc",
      mnemonic,
      target: (next + s8(bytes[i + 1]!)) >>> 0,
      condition: op & 15,
      endsBlock: true
    }
  }
  if (op === 0xeb || op === 0xe9) {
    if (opsize) return emulate(mnemonic)
    const disp = op === 0xeb ? s8(bytes[i + 1]!) : s32(bytes, i + 1)
    return { length, kind: "jmp", mnemonic, target: (next + disp) >>> 0, condition: 0, endsBlock: true }
  }
  if (op === 0xe8) {
    if (opsize) return emulate(mnemonic)
    return { length, kind: "call", mnemonic, target: (next + s32(bytes, i + 1)) >>> 0, condition: 0, endsBlock: true }
  }
  if (op >= 0xe0 && op <= 0xe3) {
    // loopne/loope/loop/jecxz count ECX (CX with a 67 prefix, which the translation would lose: emulated)
    if (opsize || addrsize || i !== 0) return emulate(mnemonic)
    return { length, kind: "loop", mnemonic, target: (next + s8(bytes[i + 1]!)) >>> 0, condition: op, endsBlock: true }
  }
  if (op === 0xc3 || op === 0xc2) {
    // near RET: an indirect jump to a guest EIP popped from the stack, looked up by the monitor (RET with an
    // operand-size prefix pops IP: emulated)
    if (i !== 0) return emulate(mnemonic)
    const release = op === 0xc2 ? bytes[1]! | (bytes[2]! << 8) : 0
    return { length, kind: "ret", mnemonic, target: release, condition: 0, endsBlock: true }
  }
  if (op === 0xff && (reg === 2 || reg === 3 || reg === 4 || reg === 5)) return emulate(mnemonic) // indirect/far call, jmp
  return { length, kind: "ident", mnemonic, target: 0, condition: 0, endsBlock: false }
}

/**
 * The length of the 32-bit-code instruction at `bytes[0]`, or -1 when the
 * opcode is undefined or the bytes end (or pass 15) before it does.
 */
export function instructionLength(bytes: Uint8Array): number {
  const end = Math.min(bytes.length, 15)
  let i = 0
  let opsize = 4
  let addrsize = 4
  for (; ; i++) {
    if (i >= end) return -1
    const slot = oneByte[bytes[i]!]
    if (!isPrefix(slot)) break
    if (slot.prefix === "opsize") opsize = 2
    else if (slot.prefix === "addrsize") addrsize = 2
  }
  let slot = oneByte[bytes[i]!] as (typeof oneByte)[number] | (typeof twoByte)[number]
  if (isEscape(slot as (typeof oneByte)[number])) {
    i++
    if (i >= end) return -1
    slot = twoByte[bytes[i]!]
  }
  i++
  if (slot === undefined) return -1
  let entry: OpcodeEntry | undefined
  let modrm = false
  if (isGroup(slot as (typeof oneByte)[number])) {
    if (i >= end) return -1
    entry = (slot as { readonly group: ReadonlyArray<OpcodeEntry | undefined> }).group[(bytes[i]! >> 3) & 7]
    modrm = true
  } else {
    entry = slot as OpcodeEntry
    modrm = entry.modrm
  }
  if (entry === undefined) return -1
  if (modrm) {
    if (i >= end) return -1
    const m = bytes[i++]!
    // R operands (MOV CRn/DRn) ignore mod: always a register, no displacement (SDM Vol. 2 "MOV--Move to/from Control Registers")
    const mod = entry.operands.some((o) => o.length === 2 && o[0] === "R") ? 3 : m >> 6
    const rm = m & 7
    if (mod !== 3) {
      if (addrsize === 4) {
        if (rm === 4) {
          if (i >= end) return -1
          const sib = bytes[i++]!
          if (mod === 0 && (sib & 7) === 5) i += 4
        } else if (mod === 0 && rm === 5) {
          i += 4
        }
        if (mod === 1) i += 1
        else if (mod === 2) i += 4
      } else if (mod === 0 && rm === 6) i += 2
      else if (mod === 1) i += 1
      else if (mod === 2) i += 2
    }
  }
  for (const operand of entry.operands) {
    switch (operand) {
      case "Ib":
      case "Jb":
        i += 1
        break
      case "Iw":
        i += 2
        break
      case "Iz":
      case "Jz":
      case "Iv":
        i += opsize
        break
      case "Ap":
        i += opsize + 2
        break
      case "Ob":
      case "Ov":
        i += addrsize
        break
    }
  }
  return i <= end ? i : -1
}
