/**
 * An Intel-syntax disassembler for the 16- and 32-bit IA-32 integer ISA,
 * driven by the opcode table (opcodes.ts): debug listings, trace output and
 * test failure messages. Never on the hot path.
 *
 * Decoding follows Intel SDM Vol. 2 ch. 2 "Instruction Format": prefixes
 * (2.1.1), opcode, ModRM and SIB (2.1.3; 16-bit addressing Table 2-1, 32-bit
 * Table 2-2, SIB Table 2-3), displacement, immediate; at most 15 bytes (2.3.11).
 * Operand size is 32 when the mode is 32-bit xor a 66 prefix is present, and
 * address size likewise with 67.
 *
 * The text is NASM syntax wherever NASM can express the encoding, so a listing
 * reassembles to the same bytes: a size keyword on a memory operand unless a
 * data register gives the size (`mov dword [eax], 0x1`, `mov [eax], ecx`), and
 * a prefix that the operands do not show is written as a word (`o16 pushf`,
 * `a16 movsb`, `fs lodsb`). Branch targets are absolute, wrapped to 16 bits at
 * operand size 16. Direct far pointers read `call far 0x1234:0x5678` (NASM
 * itself wants `call 0x1234:0x5678`); D8-DF read `esc 0xNN, operand` with the
 * 6-bit ESC number, as the 8086 manual wrote them.
 *
 * Invariant: never throws. Undefined opcodes, a register form where only
 * memory is allowed, and input that ends (or passes 15 bytes) mid-instruction
 * all give `db 0xNN` with length 1, so a listing resynchronises on the next byte.
 */
import { CostClass } from "./cost-class.ts"
import { isEscape, isGroup, isPrefix, type OneByteSlot, type OpcodeEntry, oneByte, twoByte } from "./opcodes.ts"

export interface Disassembly {
  readonly text: string
  /** Bytes consumed: 1..15. */
  readonly length: number
}

type Size = 1 | 2 | 4

const maxLength = 15
const registers: Record<Size, ReadonlyArray<string>> = {
  1: ["al", "cl", "dl", "bl", "ah", "ch", "dh", "bh"],
  2: ["ax", "cx", "dx", "bx", "sp", "bp", "si", "di"],
  4: ["eax", "ecx", "edx", "ebx", "esp", "ebp", "esi", "edi"]
}
const segments = ["es", "cs", "ss", "ds", "fs", "gs"]
/** ModRM.rm with 16-bit addressing (SDM Vol. 2 Table 2-1). */
const base16 = ["bx+si", "bx+di", "bp+si", "bp+di", "si", "di", "bp", "bx"]
const sizeKeyword: Record<Size, string> = { 1: "byte", 2: "word", 4: "dword" }
/** Mnemonics that assemblers read as "default operand size", so a 66 prefix must still be written. */
const defaultSizeNames = new Set(["pusha", "popa", "pushf", "popf", "iret"])
/** F3 90: PAUSE, which a P6 runs as NOP (REP is ignored); NASM assembles it to the same bytes. */
const pause: OpcodeEntry = { mnemonic: "pause", operands: [], cost: CostClass.Nop, modrm: false }
/** Opcodes whose Ib is sign-extended to the operand size. */
const signExtendedIb = new Set([0x6a, 0x6b, 0x83])

const hex = (n: number): string => `0x${n.toString(16)}`
const byteHex = (n: number): string => n.toString(16).padStart(2, "0")
const signed = (value: number, size: Size): number =>
  size === 4 ? value | 0 : (value << (32 - 8 * size)) >> (32 - 8 * size)
const truncate = (value: number, size: Size): number => (size === 4 ? value >>> 0 : value & ((1 << (8 * size)) - 1))

/** One instruction being decoded: a bounded cursor plus what the prefixes and ModRM said. */
interface Decoder {
  readonly bytes: Uint8Array
  readonly start: number
  readonly address: number
  readonly defaultSize: 2 | 4
  pos: number
  /** Min(input end, start + 15). */
  end: number
  /** A read went past `end`. */
  short: boolean
  opcode: number
  osize: 2 | 4
  asize: 2 | 4
  /** Segment override (index into `segments`), or -1. */
  segment: number
  modrm: number
  /** Memory operand text inside the brackets, once decoded. */
  memory: string
  /** The text already shows operand size / address size / the segment override. */
  osShown: boolean
  asShown: boolean
  segShown: boolean
}

/** Little-endian read; past the end it yields 0 and marks the instruction short. */
const read = (d: Decoder, size: Size): number => {
  if (d.pos + size > d.end) {
    d.short = true
    d.pos = d.end
    return 0
  }
  let value = 0
  for (let i = size - 1; i >= 0; i--) value = value * 256 + (d.bytes[d.pos + i] ?? 0)
  d.pos += size
  return value
}

const displacement = (value: number): string => (value < 0 ? `-${hex(-value)}` : `+${hex(value)}`)

/** The inside of the brackets for a ModRM memory operand (mod != 3), reading SIB and displacement. */
const decodeMemory = (d: Decoder): string => {
  const mod = d.modrm >> 6
  const rm = d.modrm & 7
  if (d.asize === 2) {
    if (mod === 0 && rm === 6) return hex(read(d, 2))
    d.asShown = true
    const base = base16[rm] ?? ""
    return mod === 0 ? base : base + displacement(mod === 1 ? signed(read(d, 1), 1) : signed(read(d, 2), 2))
  }
  let base = rm
  let index = ""
  if (rm === 4) {
    const sib = read(d, 1)
    const scale = 1 << (sib >> 6)
    const indexReg = (sib >> 3) & 7
    if (indexReg !== 4) index = `${registers[4][indexReg]}${scale > 1 ? `*${scale}` : ""}`
    base = sib & 7
    if (mod === 0 && base === 5) base = -1
  } else if (mod === 0 && rm === 5) base = -1
  const regs = [base < 0 ? "" : (registers[4][base] ?? ""), index].filter((r) => r !== "").join("+")
  if (regs !== "") d.asShown = true
  if (base < 0) return regs === "" ? hex(read(d, 4)) : `${regs}+${hex(read(d, 4))}`
  if (mod === 0) return regs
  return regs + displacement(mod === 1 ? signed(read(d, 1), 1) : signed(read(d, 4), 4))
}

/** A formatted operand: `memSize` > 0 asks for a size keyword; `regSize` is a data register's size. */
interface Operand {
  readonly text: string
  readonly memSize: number
  readonly regSize: number
}

const register = (text: string, regSize: number): Operand => ({ text, memSize: 0, regSize })
const memoryOperand = (d: Decoder, memSize: number): Operand => {
  d.segShown = true
  const segment = d.segment < 0 ? "" : `${segments[d.segment]}:`
  return { text: `[${segment}${d.memory}]`, memSize, regSize: 0 }
}
/** An immediate or branch whose width only the operand size sets: `word`/`dword` when not the mode's default. */
const sizedByOperandSize = (d: Decoder, text: string): Operand => {
  d.osShown = true
  return register(d.osize === d.defaultSize ? text : `${sizeKeyword[d.osize]} ${text}`, 0)
}

/** The size a code's second letter gives (b w d; v and z follow the operand size). */
const sizeOf = (d: Decoder, letter: string | undefined): Size => {
  if (letter === "b") return 1
  if (letter === "w") return 2
  if (letter === "d") return 4
  d.osShown = true
  return d.osize
}

/** Format one operand code; undefined means the encoding is invalid (e.g. Sw with reg 6). */
const operand = (d: Decoder, code: string): Operand | undefined => {
  const mod = d.modrm >> 6
  const reg = (d.modrm >> 3) & 7
  const rm = d.modrm & 7
  switch (code) {
    case "Rv/Mw":
    case "Mw/Rv":
      return mod === 3 ? register(registers[sizeOf(d, "v")][rm] ?? "", 0) : memoryOperand(d, 2)
    case "Rd":
      return register(registers[4][rm] ?? "", 4)
    case "Cd":
      return register(`cr${reg}`, 4)
    case "Dd":
      return register(`dr${reg}`, 4)
    case "Sw":
      return reg < 6 ? register(segments[reg] ?? "", 2) : undefined
    case "Ap": {
      const offset = read(d, d.osize)
      return register(`${hex(read(d, 2))}:${hex(offset)}`, 0)
    }
    case "Ob":
    case "Ov":
      d.memory = hex(read(d, d.asize))
      return memoryOperand(d, 0)
    case "1":
    case "DX":
      return register(code.toLowerCase(), 0)
    case "CL":
      return register("cl", 0)
  }
  if (/^[A-Z]{2}$/.test(code)) {
    const name = code.toLowerCase()
    return register(name, segments.includes(name) ? 2 : 1)
  }
  const method = code[0]
  const letter = code[1]
  if (method === "E" || method === "M") {
    if (mod !== 3) return memoryOperand(d, method === "E" ? sizeOf(d, letter) : 0)
    if (method === "M") return undefined
    const size = sizeOf(d, letter)
    return register(registers[size][rm] ?? "", size)
  }
  if (method === "G") {
    const size = sizeOf(d, letter)
    return register(registers[size][reg] ?? "", size)
  }
  if (method === "I") {
    if (letter === "b") {
      const value = read(d, 1)
      if (!signExtendedIb.has(d.opcode)) return register(hex(value), 0)
      const text = hex(truncate(signed(value, 1), d.osize))
      return d.opcode === 0x6a ? sizedByOperandSize(d, text) : register(text, 0)
    }
    if (letter === "w") return register(hex(read(d, 2)), 0)
    const text = hex(read(d, d.osize))
    return d.opcode === 0x68 ? sizedByOperandSize(d, text) : register(text, 0)
  }
  if (method === "J") {
    const size: Size = letter === "b" ? 1 : d.osize
    const rel = signed(read(d, size), size)
    const target = hex(truncate(d.address + (d.pos - d.start) + rel, d.osize))
    return size === 1 ? register(target, 0) : sizedByOperandSize(d, target)
  }
  if (method === "e") {
    d.osShown = true
    return register(registers[d.osize][registers[2].indexOf(code.slice(1).toLowerCase())] ?? "", d.osize)
  }
  return register("", 0) // X, Y, F: implicit
}

/** `db 0xNN`: what an undefined or cut-off encoding disassembles to. */
const invalid = (bytes: Uint8Array, offset: number): Disassembly => {
  const first = bytes[offset]
  return { text: first === undefined ? "(no bytes)" : `db 0x${byteHex(first)}`, length: 1 }
}

/**
 * Disassemble the instruction at `bytes[offset]`, which sits at `address`
 * (the IP/EIP, for branch targets), in 32-bit (`mode32`) or 16-bit code.
 */
export function disassemble(bytes: Uint8Array, offset: number, address: number, mode32: boolean): Disassembly {
  const defaultSize = mode32 ? 4 : 2
  const d: Decoder = {
    bytes,
    start: offset,
    address,
    defaultSize,
    pos: offset,
    end: Math.min(bytes.length, offset + maxLength),
    short: false,
    opcode: 0,
    osize: defaultSize,
    asize: defaultSize,
    segment: -1,
    modrm: -1,
    memory: "",
    osShown: false,
    asShown: false,
    segShown: false
  }
  let opsizePrefix = false
  let addrsizePrefix = false
  let lock = false
  let rep = ""
  let slot: OneByteSlot = oneByte[read(d, 1)]
  for (; isPrefix(slot) && !d.short; slot = oneByte[read(d, 1)]) {
    const name = slot.prefix
    if (name === "opsize") opsizePrefix = true
    else if (name === "addrsize") addrsizePrefix = true
    else if (name === "lock") lock = true
    else if (name === "rep" || name === "repne") rep = name
    else d.segment = segments.indexOf(name)
  }
  d.osize = opsizePrefix === mode32 ? 2 : 4
  d.asize = addrsizePrefix === mode32 ? 2 : 4
  d.opcode = d.bytes[d.pos - 1] ?? 0
  if (isEscape(slot)) {
    const opcode = read(d, 1)
    slot = twoByte[opcode]
    d.opcode = 0x100 | opcode
  }
  let entry: OpcodeEntry | undefined
  if (isGroup(slot)) {
    d.modrm = read(d, 1)
    entry = slot.group[(d.modrm >> 3) & 7]
  } else if (slot !== undefined && !isPrefix(slot) && !isEscape(slot)) {
    entry = slot
    if (entry.modrm) d.modrm = read(d, 1)
  }
  if (entry === undefined || d.short) return invalid(bytes, offset)
  if (d.opcode === 0x90 && rep === "rep") {
    entry = pause
    rep = ""
  }
  if (entry.modrm && d.modrm >> 6 !== 3 && !entry.operands.includes("Rd")) d.memory = decodeMemory(d)

  const text = entry.mnemonic === "esc" ? x87Escape(d) : instruction(d, entry)
  if (text === undefined || d.short) return invalid(bytes, offset)
  const words: Array<string> = []
  if (lock) words.push("lock")
  if (rep !== "") words.push(repWord(entry, rep))
  if (d.segment >= 0 && !d.segShown) words.push(segments[d.segment] ?? "")
  if (opsizePrefix && !d.osShown) words.push(d.osize === 2 ? "o16" : "o32")
  if (addrsizePrefix && !d.asShown) words.push(d.asize === 2 ? "a16" : "a32")
  words.push(text)
  return { text: words.join(" "), length: d.pos - offset }
}

const isString = (entry: OpcodeEntry): boolean => entry.operands.some((o) => o[0] === "X" || o[0] === "Y")

/** F3 is REPE on CMPS/SCAS and REP elsewhere; F2 is REPNE. */
const repWord = (entry: OpcodeEntry, rep: string): string => {
  if (rep === "repne") return "repne"
  return isString(entry) && /^(cmps|scas)/.test(entry.mnemonic) ? "repe" : "rep"
}

/** D8-DF: the x87 escapes, written as the 8086 ESC with its 6-bit number. */
const x87Escape = (d: Decoder): string => {
  const number = ((d.opcode & 7) << 3) | ((d.modrm >> 3) & 7)
  const target = d.modrm >> 6 === 3 ? `st${d.modrm & 7}` : memoryOperand(d, 0).text
  return `esc ${hex(number)}, ${target}`
}

/** Mnemonic and operands, without prefix words; undefined if an operand is invalid. */
const instruction = (d: Decoder, entry: OpcodeEntry): string | undefined => {
  let mnemonic = entry.mnemonic
  if (entry.mnemonic16 !== undefined && entry.mnemonic32 !== undefined) {
    const size = entry.sizeFromAddress ? d.asize : d.osize
    mnemonic = size === 2 ? entry.mnemonic16 : entry.mnemonic32
    if (entry.sizeFromAddress) d.asShown = true
    else if (!defaultSizeNames.has(mnemonic)) d.osShown = true
  }
  if (mnemonic === "callf" || mnemonic === "jmpf") mnemonic = `${mnemonic.slice(0, -1)} far`

  const operands: Array<Operand> = []
  for (const code of entry.operands) {
    const formatted = operand(d, code)
    if (formatted === undefined) return undefined
    operands.push(formatted)
  }
  if (isString(entry)) return mnemonic
  const texts = operands
    .filter((o) => o.text !== "")
    .map((o) =>
      o.memSize > 0 && !operands.some((r) => r.regSize === o.memSize)
        ? `${sizeKeyword[o.memSize as Size]} ${o.text}`
        : o.text
    )
  return texts.length === 0 ? mnemonic : `${mnemonic} ${texts.join(", ")}`
}

/**
 * A listing for test failure messages: one `address: hex bytes  text` line per
 * instruction, from `bytes[0]` at `address`, at most `maxInstructions` lines.
 */
export function disassembleAll(
  bytes: Uint8Array,
  address: number,
  mode32: boolean,
  maxInstructions = Number.POSITIVE_INFINITY
): Array<string> {
  const lines: Array<string> = []
  for (let offset = 0; offset < bytes.length && lines.length < maxInstructions; ) {
    const { text, length } = disassemble(bytes, offset, address + offset, mode32)
    const at = ((address + offset) >>> 0).toString(16).padStart(mode32 ? 8 : 4, "0")
    const hexBytes = Array.from(bytes.subarray(offset, offset + length), byteHex).join(" ")
    lines.push(`${at}: ${hexBytes.padEnd(20)}  ${text}`)
    offset += length
  }
  return lines
}
