/**
 * The IA-32 opcode map: one- and two-byte (0F xx) opcodes of the 386/486/P6
 * integer instruction set in 16- and 32-bit modes, as data. The interpreter
 * reads each opcode's cost class and checks it has a handler for every valid
 * entry; the disassembler (disasm.ts) decodes from the same table.
 *
 * Follows Intel SDM Vol. 2, Appendix A "Opcode Map": Table A-2 (one-byte),
 * Table A-3 (two-byte), Table A-6 (groups by ModRM.reg). Operand codes are the
 * A.2.1/A.2.2 notation: a letter for the addressing method, then the size.
 *
 *   E  ModRM r/m (register or memory)     G  ModRM reg, general register
 *   M  ModRM r/m, memory only             R  ModRM r/m, register only (mod ignored)
 *   S  ModRM reg, segment register        C/D  ModRM reg, control/debug register
 *   I  immediate   J  relative offset     A  direct far pointer   O  moffs (no ModRM)
 *   X/Y  DS:eSI / ES:eDI string operands  F  EFLAGS (implicit)
 *   b byte  w word  d dword  v/z word or dword by operand size  p 16:16 or 16:32
 *   a two v-sized operands (BOUND)  q qword  s 6-byte pseudo-descriptor
 *
 * Fixed operands are spelled out: "AL", "CL", "DX", "1", "ES", and "eAX".."eDI"
 * for AX/EAX by operand size. "Rv/Mw" (SLDT, STR) and "Mw/Rv" (SMSW, and
 * MOV Ev,Sw, whose memory form always stores 16 bits, SDM Vol. 2 "MOV") are a
 * register of operand size or a word in memory. An Ib next to a v-sized operand
 * is sign-extended in 6A, 6B and 83 only (the instruction pages: "83 /0 ib ADD
 * r/m32, imm8: add sign-extended imm8"); elsewhere it is a count or a port.
 *
 * Left out on purpose: 64-bit mode, x87 (D8-DF are "esc" entries, the FPU is
 * not modelled), MMX/SSE (their 0F rows are undefined), RSM (0F AA: #UD
 * outside SMM, which is not modelled), SYSCALL/SYSRET (AMD; #UD in legacy mode
 * on Intel), the reserved-NOP hints 0F 18-1E. Undocumented aliases that real
 * CPUs accept are in: 82 = 80, D6 SALC, F1 INT1 (ICEBP), F6/F7 /1 = TEST,
 * C0/C1/D0-D3 /6 = SAL.
 */
import { CostClass } from "./cost-class.ts"

export interface OpcodeEntry {
  /** Lower-case mnemonic; far transfers are "callf"/"jmpf"/"retf", esc is D8-DF. */
  readonly mnemonic: string
  /** The mnemonic at operand size 16 (or address size 16, see `sizeFromAddress`). */
  readonly mnemonic16?: string
  readonly mnemonic32?: string
  /** The 16/32 mnemonic is chosen by the address size (E3 JCXZ/JECXZ). */
  readonly sizeFromAddress?: boolean
  readonly operands: ReadonlyArray<string>
  readonly cost: CostClass
  /** A ModRM byte follows the opcode. */
  readonly modrm: boolean
}

/** An opcode whose instruction is chosen by ModRM.reg; undefined = #UD. */
export interface OpcodeGroup {
  readonly group: ReadonlyArray<OpcodeEntry | undefined>
}

export type PrefixName = "es" | "cs" | "ss" | "ds" | "fs" | "gs" | "opsize" | "addrsize" | "lock" | "repne" | "rep"

/** An instruction prefix (SDM Vol. 2 2.1.1). */
export interface Prefix {
  readonly prefix: PrefixName
}

/** 0F: the two-byte escape; the next byte indexes `twoByte`. */
export interface Escape {
  readonly escape: "twoByte"
}

export type OneByteSlot = OpcodeEntry | OpcodeGroup | Prefix | Escape | undefined
export type TwoByteSlot = OpcodeEntry | OpcodeGroup | undefined

export const isPrefix = (slot: OneByteSlot): slot is Prefix => slot !== undefined && "prefix" in slot
export const isEscape = (slot: OneByteSlot): slot is Escape => slot !== undefined && "escape" in slot
export const isGroup = (slot: OneByteSlot): slot is OpcodeGroup => slot !== undefined && "group" in slot
export const isEntry = (slot: OneByteSlot): slot is OpcodeEntry => slot !== undefined && "mnemonic" in slot

const { Alu, Mov, Stack, Branch, Mul, Div, String: Str, Io, Far, Interrupt, System, Bcd, Bit, Nop } = CostClass

/** Codes that mean a ModRM byte: E G M R S C D followed by a size (or "M" alone). */
const modrmCode = /^(M|[CDEGMRS][a-z].*)$/

/** An entry from "Eb,Gb"-style operands; `modrm` follows from the codes. */
const op = (mnemonic: string, operands: string, cost: CostClass): OpcodeEntry => {
  const list = operands === "" ? [] : operands.split(",")
  return { mnemonic, operands: list, cost, modrm: list.some((o) => modrmCode.test(o)) }
}

/** An entry whose mnemonic depends on the operand size (or address size). */
const sized = (mnemonic: string, m16: string, m32: string, operands: string, cost: CostClass): OpcodeEntry => ({
  ...op(mnemonic, operands, cost),
  mnemonic16: m16,
  mnemonic32: m32
})

/** A group, padded to 8 slots (one per ModRM.reg). */
const group = (...entries: ReadonlyArray<OpcodeEntry | undefined>): OpcodeGroup => ({
  group: Array.from({ length: 8 }, (_, reg) => entries[reg])
})
const prefix = (name: PrefixName): Prefix => ({ prefix: name })
const escape0F: Escape = { escape: "twoByte" }
const ud = undefined

const regs = ["eAX", "eCX", "eDX", "eBX", "eSP", "eBP", "eSI", "eDI"]
const regs8 = ["AL", "CL", "DL", "BL", "AH", "CH", "DH", "BH"]
const conditions = ["o", "no", "b", "nb", "z", "nz", "be", "nbe", "s", "ns", "p", "np", "l", "nl", "le", "nle"]

/** 00-05, 08-0D, ...: the six encodings of a two-operand ALU instruction. */
const alu = (m: string) =>
  ["Eb,Gb", "Ev,Gv", "Gb,Eb", "Gv,Ev", "AL,Ib", "eAX,Iz"].map((operands) => op(m, operands, Alu))

/** Group 1 (80-83): ADD OR ADC SBB AND SUB XOR CMP. */
const group1 = (operands: string) =>
  group(...["add", "or", "adc", "sbb", "and", "sub", "xor", "cmp"].map((m) => op(m, operands, Alu)))
/** Group 2 (C0 C1 D0-D3): rotates and shifts; /6 is the undocumented SAL alias of /4. */
const group2 = (operands: string) =>
  group(...["rol", "ror", "rcl", "rcr", "shl", "shr", "sal", "sar"].map((m) => op(m, operands, Alu)))
/** Group 3 (F6 F7): /1 is the undocumented TEST alias of /0. */
const group3 = (e: string, i: string) =>
  group(
    op("test", `${e},${i}`, Alu),
    op("test", `${e},${i}`, Alu),
    op("not", e, Alu),
    op("neg", e, Alu),
    op("mul", e, Mul),
    op("imul", e, Mul),
    op("div", e, Div),
    op("idiv", e, Div)
  )

/** Lay rows `[firstOpcode, ...slots]` into a 256-slot table; overlaps are a table bug. */
const layout = <T>(rows: ReadonlyArray<readonly [number, ...Array<T | undefined>]>): Array<T | undefined> => {
  const table = new Array<T | undefined>(256).fill(undefined)
  const seen = new Set<number>()
  for (const [first, ...slots] of rows) {
    slots.forEach((slot, i) => {
      if (seen.has(first + i) || first + i > 255)
        throw new Error(`opcode table: 0x${(first + i).toString(16)} twice or out of range`)
      seen.add(first + i)
      table[first + i] = slot
    })
  }
  return table
}

/** SDM Table A-2, one-byte opcodes. */
export const oneByte: ReadonlyArray<OneByteSlot> = layout<Exclude<OneByteSlot, undefined>>([
  [0x00, ...alu("add"), op("push", "ES", Stack), op("pop", "ES", Far)],
  [0x08, ...alu("or"), op("push", "CS", Stack), escape0F],
  [0x10, ...alu("adc"), op("push", "SS", Stack), op("pop", "SS", Far)],
  [0x18, ...alu("sbb"), op("push", "DS", Stack), op("pop", "DS", Far)],
  [0x20, ...alu("and"), prefix("es"), op("daa", "", Bcd)],
  [0x28, ...alu("sub"), prefix("cs"), op("das", "", Bcd)],
  [0x30, ...alu("xor"), prefix("ss"), op("aaa", "", Bcd)],
  [0x38, ...alu("cmp"), prefix("ds"), op("aas", "", Bcd)],
  [0x40, ...regs.map((r) => op("inc", r, Alu)), ...regs.map((r) => op("dec", r, Alu))],
  [0x50, ...regs.map((r) => op("push", r, Stack)), ...regs.map((r) => op("pop", r, Stack))],
  [0x60, sized("pusha", "pusha", "pushad", "", Stack), sized("popa", "popa", "popad", "", Stack)],
  [0x62, op("bound", "Gv,Ma", Interrupt), op("arpl", "Ew,Gw", System)],
  [0x64, prefix("fs"), prefix("gs"), prefix("opsize"), prefix("addrsize")],
  [0x68, op("push", "Iz", Stack), op("imul", "Gv,Ev,Iz", Mul), op("push", "Ib", Stack), op("imul", "Gv,Ev,Ib", Mul)],
  [0x6c, op("insb", "Yb,DX", Io), sized("ins", "insw", "insd", "Yz,DX", Io)],
  [0x6e, op("outsb", "DX,Xb", Io), sized("outs", "outsw", "outsd", "DX,Xz", Io)],
  [0x70, ...conditions.map((cc) => op(`j${cc}`, "Jb", Branch))],
  [0x80, group1("Eb,Ib"), group1("Ev,Iz"), group1("Eb,Ib"), group1("Ev,Ib")],
  [0x84, op("test", "Eb,Gb", Alu), op("test", "Ev,Gv", Alu), op("xchg", "Eb,Gb", Mov), op("xchg", "Ev,Gv", Mov)],
  [0x88, op("mov", "Eb,Gb", Mov), op("mov", "Ev,Gv", Mov), op("mov", "Gb,Eb", Mov), op("mov", "Gv,Ev", Mov)],
  [0x8c, op("mov", "Mw/Rv,Sw", Mov), op("lea", "Gv,M", Alu), op("mov", "Sw,Ew", Far)],
  [0x8f, group(op("pop", "Ev", Stack))],
  [0x90, op("nop", "", Nop), ...regs.slice(1).map((r) => op("xchg", `${r},eAX`, Mov))],
  [0x98, sized("cbw", "cbw", "cwde", "", Alu), sized("cwd", "cwd", "cdq", "", Alu), op("callf", "Ap", Far)],
  [
    0x9b,
    op("wait", "", Nop),
    sized("pushf", "pushf", "pushfd", "Fv", Stack),
    sized("popf", "popf", "popfd", "Fv", Stack)
  ],
  [0x9e, op("sahf", "", Alu), op("lahf", "", Alu)],
  [0xa0, op("mov", "AL,Ob", Mov), op("mov", "eAX,Ov", Mov), op("mov", "Ob,AL", Mov), op("mov", "Ov,eAX", Mov)],
  [0xa4, op("movsb", "Yb,Xb", Str), sized("movs", "movsw", "movsd", "Yv,Xv", Str)],
  [0xa6, op("cmpsb", "Xb,Yb", Str), sized("cmps", "cmpsw", "cmpsd", "Xv,Yv", Str)],
  [0xa8, op("test", "AL,Ib", Alu), op("test", "eAX,Iz", Alu)],
  [0xaa, op("stosb", "Yb,AL", Str), sized("stos", "stosw", "stosd", "Yv,eAX", Str)],
  [0xac, op("lodsb", "AL,Xb", Str), sized("lods", "lodsw", "lodsd", "eAX,Xv", Str)],
  [0xae, op("scasb", "AL,Yb", Str), sized("scas", "scasw", "scasd", "eAX,Yv", Str)],
  [0xb0, ...regs8.map((r) => op("mov", `${r},Ib`, Mov)), ...regs.map((r) => op("mov", `${r},Iv`, Mov))],
  [0xc0, group2("Eb,Ib"), group2("Ev,Ib"), op("ret", "Iw", Branch), op("ret", "", Branch)],
  [
    0xc4,
    op("les", "Gz,Mp", Far),
    op("lds", "Gz,Mp", Far),
    group(op("mov", "Eb,Ib", Mov)),
    group(op("mov", "Ev,Iz", Mov))
  ],
  [0xc8, op("enter", "Iw,Ib", Stack), op("leave", "", Stack), op("retf", "Iw", Far), op("retf", "", Far)],
  [0xcc, op("int3", "", Interrupt), op("int", "Ib", Interrupt), op("into", "", Interrupt)],
  [0xcf, sized("iret", "iret", "iretd", "", Interrupt)],
  [0xd0, group2("Eb,1"), group2("Ev,1"), group2("Eb,CL"), group2("Ev,CL")],
  [0xd4, op("aam", "Ib", Bcd), op("aad", "Ib", Bcd), op("salc", "", Alu), op("xlatb", "", Mov)],
  [0xd8, ...Array.from({ length: 8 }, () => op("esc", "Ev", Interrupt))],
  [0xe0, op("loopne", "Jb", Branch), op("loope", "Jb", Branch), op("loop", "Jb", Branch)],
  [0xe3, { ...sized("jcxz", "jcxz", "jecxz", "Jb", Branch), sizeFromAddress: true }],
  [0xe4, op("in", "AL,Ib", Io), op("in", "eAX,Ib", Io), op("out", "Ib,AL", Io), op("out", "Ib,eAX", Io)],
  [0xe8, op("call", "Jz", Branch), op("jmp", "Jz", Branch), op("jmpf", "Ap", Far), op("jmp", "Jb", Branch)],
  [0xec, op("in", "AL,DX", Io), op("in", "eAX,DX", Io), op("out", "DX,AL", Io), op("out", "DX,eAX", Io)],
  [0xf0, prefix("lock"), op("int1", "", Interrupt), prefix("repne"), prefix("rep")],
  [0xf4, op("hlt", "", System), op("cmc", "", Alu), group3("Eb", "Ib"), group3("Ev", "Iz")],
  [0xf8, op("clc", "", Alu), op("stc", "", Alu), op("cli", "", System), op("sti", "", System)],
  [0xfc, op("cld", "", Alu), op("std", "", Alu), group(op("inc", "Eb", Alu), op("dec", "Eb", Alu))],
  [
    0xff,
    group(
      op("inc", "Ev", Alu),
      op("dec", "Ev", Alu),
      op("call", "Ev", Branch),
      op("callf", "Mp", Far),
      op("jmp", "Ev", Branch),
      op("jmpf", "Mp", Far),
      op("push", "Ev", Stack),
      ud
    )
  ]
])

const system = (m: string, operands: string) => op(m, operands, System)
const bitOps = ["bt", "bts", "btr", "btc"]

/** SDM Table A-3, two-byte opcodes (0F xx). */
export const twoByte: ReadonlyArray<TwoByteSlot> = layout<Exclude<TwoByteSlot, undefined>>([
  // Group 6 (0F 00) and Group 7 (0F 01); the 0F 01 register forms are VMX/SSE3-era: #UD here.
  [
    0x00,
    group(
      ...["sldt", "str"].map((m) => system(m, "Rv/Mw")),
      ...["lldt", "ltr", "verr", "verw"].map((m) => system(m, "Ew"))
    ),
    group(
      ...["sgdt", "sidt", "lgdt", "lidt"].map((m) => system(m, "Ms")),
      ...[system("smsw", "Mw/Rv"), ud, system("lmsw", "Ew"), system("invlpg", "Mb")]
    )
  ],
  [0x02, system("lar", "Gv,Ew"), system("lsl", "Gv,Ew"), ud, ud, system("clts", "")],
  [0x08, system("invd", ""), system("wbinvd", ""), ud, op("ud2", "", Interrupt)],
  [0x1f, op("nop", "Ev", Nop)],
  [0x20, system("mov", "Rd,Cd"), system("mov", "Rd,Dd"), system("mov", "Cd,Rd"), system("mov", "Dd,Rd")],
  [0x30, system("wrmsr", ""), system("rdtsc", ""), system("rdmsr", ""), system("rdpmc", "")],
  [0x34, system("sysenter", ""), system("sysexit", "")],
  [0x40, ...conditions.map((cc) => op(`cmov${cc}`, "Gv,Ev", Mov))],
  [0x80, ...conditions.map((cc) => op(`j${cc}`, "Jz", Branch))],
  [0x90, ...conditions.map((cc) => op(`set${cc}`, "Eb", Alu))],
  [0xa0, op("push", "FS", Stack), op("pop", "FS", Far), system("cpuid", ""), op("bt", "Ev,Gv", Bit)],
  [0xa4, op("shld", "Ev,Gv,Ib", Bit), op("shld", "Ev,Gv,CL", Bit)],
  [0xa8, op("push", "GS", Stack), op("pop", "GS", Far), ud, op("bts", "Ev,Gv", Bit)],
  [0xac, op("shrd", "Ev,Gv,Ib", Bit), op("shrd", "Ev,Gv,CL", Bit), ud, op("imul", "Gv,Ev", Mul)],
  [0xb0, op("cmpxchg", "Eb,Gb", Alu), op("cmpxchg", "Ev,Gv", Alu), op("lss", "Gv,Mp", Far), op("btr", "Ev,Gv", Bit)],
  [0xb4, op("lfs", "Gv,Mp", Far), op("lgs", "Gv,Mp", Far), op("movzx", "Gv,Eb", Mov), op("movzx", "Gv,Ew", Mov)],
  // Group 8 (0F BA): BT BTS BTR BTC Ev,Ib at /4-/7.
  [0xba, group(ud, ud, ud, ud, ...bitOps.map((m) => op(m, "Ev,Ib", Bit))), op("btc", "Ev,Gv", Bit)],
  [0xbc, op("bsf", "Gv,Ev", Bit), op("bsr", "Gv,Ev", Bit), op("movsx", "Gv,Eb", Mov), op("movsx", "Gv,Ew", Mov)],
  [0xc0, op("xadd", "Eb,Gb", Alu), op("xadd", "Ev,Gv", Alu)],
  // Group 9 (0F C7): only /1 CMPXCHG8B before VMX.
  [0xc7, group(ud, op("cmpxchg8b", "Mq", Alu))],
  [0xc8, ...regs.map((r) => op("bswap", r, Alu))]
])

/** The entry for an opcode, ModRM.reg choosing within a group; undefined for a prefix, the 0F escape or #UD. */
export const entryFor = (opcodeByte: number, twoByteEscape: boolean, modrmReg: number): OpcodeEntry | undefined => {
  const slot = (twoByteEscape ? twoByte : oneByte)[opcodeByte & 0xff]
  if (isGroup(slot)) return slot.group[modrmReg & 7]
  return isEntry(slot) ? slot : undefined
}

/** The class most entries of a group share (on a tie, the one that reached the count first). */
const groupCost = (group: OpcodeGroup): CostClass => {
  const counts = new Map<CostClass, number>()
  let best: CostClass = CostClass.Invalid
  for (const entry of group.group) {
    if (entry === undefined) continue
    const count = (counts.get(entry.cost) ?? 0) + 1
    counts.set(entry.cost, count)
    if (count > (counts.get(best) ?? 0)) best = entry.cost
  }
  return best
}

const slotCost = (slot: OneByteSlot): CostClass => {
  if (slot === undefined) return CostClass.Invalid
  if (isPrefix(slot) || isEscape(slot)) return CostClass.Prefix
  return isGroup(slot) ? groupCost(slot) : slot.cost
}

/**
 * Cost class per opcode, for the interpreter's hot loop: index = opcode for
 * one-byte opcodes, 256 + opcode for 0F xx. A group gets its most common class
 * (the interpreter refines by ModRM.reg where it matters, e.g. F6/F7 MUL/DIV).
 */
export const costClassTable = (): Uint8Array => {
  const table = new Uint8Array(512)
  for (let opcode = 0; opcode < 256; opcode++) {
    table[opcode] = slotCost(oneByte[opcode])
    table[256 + opcode] = slotCost(twoByte[opcode])
  }
  return table
}
