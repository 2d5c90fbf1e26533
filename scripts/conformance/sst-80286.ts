/**
 * The 80286-versus-IA-32 table for the SingleStepTests 80286 real-mode vectors
 * (../shared/conformance/sst-80286-real, README "Using these on an IA-32 CPU").
 *
 * The vectors were captured on a real 286; our CPU is an IA-32. Wherever the two
 * legitimately differ, this file says what the runner does instead, and why.
 * Rows marked (*) are not in the vectors' README: the first run of the real
 * CPU showed them, and each has its evidence in the reason text.
 *
 *   what differs                                     what we do                       key
 *   -----------------------------------------------  -------------------------------  ------------------
 *   FLAGS bits 12-15 random in `initial`             load `flags & 0x0FFF`            loadFlags
 *   POPF/IRET load IOPL/NT on a 386+                 compare `flags & 0x0FFF`         formFlagsMask
 *   undefined flags (per form)                       flags-mask.json `mask` field     formFlagsMask
 *   ... also in the FLAGS word an exception pushes   the runner masks those 2 bytes   formFlagsMask
 *   SS-relative wrap: #13 on 286, #SS (12) on 386+   IVT 12 := IVT 13 when #13 due    aliasStackFaultToGp
 *   length > 10 bytes: #13 on 286, fine on IA-32     skip                             "length"
 *   LOCK before a non-lockable instruction           skip (IA-32: #UD)                "lock"
 *   8C/8E reg 4/5: #UD on 286, MOV FS/GS on 386+      skip                             "mov-fs-gs"
 *   (*) m16:16 / m16&16 operand at offset FFFE       skip (286 wraps, IA-32 faults)   "far-pointer-wrap"
 *   (*) POP m16 faulting on its destination          skip (286 already moved SP)      "pop-mem-fault"
 *   (*) word string op faulting at offset FFFF       don't compare CX/SI/DI           "string-fault"
 *   (*) AAM 0 (#DE)                                  don't compare SF/ZF/PF           "aam-zero"
 *   D6 SALC                                          run (this CPU executes it)       "salc" if not
 *   D8-DF ESC with no coprocessor                    skip (this CPU: #UD or #NM)      "fpu"
 *   0F xx, 64-67, F1 (absent from this suite)        skip if a vector set has them    "386-opcode"
 *
 * Everything else is compared as captured: 82.x, F6.1/F7.1 and the .6 shift
 * aliases are run (IA-32 executes them), #UD for 8E /1, /6, /7 and 8F/C6/C7
 * with reg != 0 is expected, 63 (ARPL) is #UD in real mode on both, 9B (WAIT)
 * is a no-op on both.
 *
 * Invariants: `decide` is pure and cheap (one call per test; no allocation
 * unless the test is skipped or relaxed); every skip names one of
 * `skipReasons`, every relaxation one of `relaxReasons`.
 */
import { existsSync, readFileSync } from "node:fs"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import type { Decision, Policy, VectorRegs, VectorTest } from "./runner.ts"

/** The public vectors, resolved from this file (the project root's sibling `shared/`), not from the cwd. */
export const defaultVectorDir = fileURLToPath(new URL("../../../shared/conformance/sst-80286-real", import.meta.url))

/** Every skip reason: the key is what `Decision.skip` holds and what the report counts. */
export const skipReasons = {
  "386-opcode":
    "0F xx two-byte opcodes, 64/65 (FS/GS overrides), 66/67 (operand/address size) or F1: different instructions " +
    "on a 386+ (absent from the public 286 suite)",
  length:
    "instruction longer than 10 bytes: the 286 raises #13 (its length limit); IA-32's limit is 15 bytes, so it executes",
  lock:
    "LOCK (F0) before an instruction that is not ADD/ADC/SUB/SBB/AND/OR/XOR/NOT/NEG/INC/DEC/XCHG with a memory " +
    "destination: the 286 ignores it, a 386+ raises #UD (80386 PRM 14.8.1); kept when the 286 raised #UD too",
  "mov-fs-gs": "8C/8E with reg 4 or 5: #UD on the 286, MOV from/to FS/GS on a 386+",
  "far-pointer-wrap":
    "LES/LDS/BOUND/CALL FAR/JMP FAR with its 4-byte operand at offset FFFE: the 286 reads the second word at " +
    "offset 0000 (wraps); IA-32 limit-checks the whole operand and raises #GP/#SS (SDM vol. 3 'Segment " +
    "Wraparound'). Seen: 'les si,[bp+di]' with BP+DI = FFFE",
  "pop-mem-fault":
    "POP m16 whose destination is at offset FFFF: the 286 has already added 2 to SP when it raises #13, so its " +
    "frame sits 2 bytes higher; IA-32 faults are precise (SP as before the instruction, SDM vol. 3 6.5)",
  salc: "D6 SALC: executes on the 286 (AL = CF ? FF : 00), undocumented on IA-32 and #UD on this CPU",
  fpu:
    "D8-DF ESC with no coprocessor: the 286 only decodes the operand and advances IP; this CPU has no x87, so " +
    "ESC raises #NM when CR0.EM or CR0.TS is set and #UD otherwise (SDM vol. 3 table 2-2); the vectors hold no " +
    "handler for either"
} as const
export type SkipReason = keyof typeof skipReasons

/** Tests that run with a narrower comparison than the form's, and why. */
export const relaxReasons = {
  "string-fault":
    "MOVSW/CMPSW/STOSW/LODSW/SCASW/INSW/OUTSW raising #13 for a word at offset FFFF: the 286 has already " +
    "stepped SI and/or DI (and CX under REP) when it faults; IA-32 faults are precise, so CX/SI/DI are not " +
    "compared (the frame, FLAGS, memory and every other register are)",
  "aam-zero":
    "AAM 0 (#DE): the 286 updates SF/ZF/PF before raising #DE; IA-32 leaves FLAGS as before the faulting " +
    "instruction, so SF/ZF/PF are not compared (final FLAGS and the pushed FLAGS word)"
} as const
export type RelaxReason = keyof typeof relaxReasons

/**
 * What this CPU does with the two opcodes a no-FPU IA-32 part may legitimately
 * handle either way. Switch a flag when the CPU changes; the table follows.
 * - `salcExecutes`: D6 runs as SALC (as reported on Intel parts) instead of #UD.
 * - `escIsNop`: with no x87, ESC (D8-DF) is decoded and skipped like on the
 *   286 instead of raising #UD/#NM.
 */
export interface CpuQuirks {
  readonly salcExecutes: boolean
  readonly escIsNop: boolean
}

/** hw/cpu as it is: SALC executes (ops/arith-ops.ts), ESC raises #NM/#UD (ops/system-ops.ts). */
export const defaultQuirks: CpuQuirks = { salcExecutes: true, escIsNop: false }

/** FLAGS bits 12-15 (IOPL, NT, bit 15): random in the vectors, never kept by a real-mode 286. */
export const FLAGS_LOW12 = 0x0fff
const SF_ZF_PF = 0x80 | 0x40 | 0x04

/** `initial.flags` as an IA-32 loads it: the 286 cannot hold bits 12-15 in real mode (upstream: mask them). */
export const loadFlags = (flags: number): number => flags & FLAGS_LOW12

/** Per-form undefined-flag masks from `flags-mask.json` (`forms[form].mask`); a directory without it masks nothing. */
export const readFlagsMasks = (dir: string): ReadonlyMap<string, number> => {
  const file = join(dir, "flags-mask.json")
  const masks = new Map<string, number>()
  if (!existsSync(file)) return masks
  const json = JSON.parse(readFileSync(file, "utf8")) as { forms?: Record<string, { mask?: unknown }> }
  for (const [form, entry] of Object.entries(json.forms ?? {})) {
    if (typeof entry.mask !== "number") throw new Error(`${file}: form ${form} has no numeric "mask"`)
    masks.set(form.toUpperCase(), entry.mask & 0xffff)
  }
  return masks
}

// ---------------------------------------------------------------------------
// Decoding just enough of a test's bytes

const is386Prefix = (b: number): boolean => b === 0x64 || b === 0x65 || b === 0x66 || b === 0x67 || b === 0xf1
/** Prefix bytes as the 286 decodes them, plus the 386+ ones (which the table skips). */
const isPrefix = (b: number): boolean =>
  b === 0x26 || b === 0x2e || b === 0x36 || b === 0x3e || b === 0xf0 || b === 0xf2 || b === 0xf3 || is386Prefix(b)

export interface Instruction {
  /** index of the opcode byte in `bytes` */
  readonly at: number
  readonly op: number
  /** the byte after the opcode (ModRM when the opcode has one) */
  readonly modrm: number
  readonly lock: boolean
  /** a 386+ prefix (64-67, F1) came first */
  readonly foreign: boolean
}

export const decodeInstruction = (bytes: ReadonlyArray<number>): Instruction => {
  let at = 0
  let lock = false
  let foreign = false
  while (at < bytes.length && isPrefix(bytes[at]!)) {
    if (bytes[at] === 0xf0) lock = true
    if (is386Prefix(bytes[at]!)) foreign = true
    at++
  }
  return { at, op: bytes[at] ?? 0xf4, modrm: bytes[at + 1] ?? 0, lock, foreign }
}

/** The 16-bit offset a ModRM memory operand addresses (SDM vol. 2 table 2-1), or -1 for a register operand. */
export const modrmOffset = (bytes: ReadonlyArray<number>, modrmAt: number, r: VectorRegs): number => {
  const m = bytes[modrmAt] ?? 0
  const mod = m >>> 6
  const rm = m & 7
  if (mod === 3) return -1
  const d8 = bytes[modrmAt + 1] ?? 0
  const d16 = d8 | ((bytes[modrmAt + 2] ?? 0) << 8)
  if (mod === 0 && rm === 6) return d16
  const base = [r.bx + r.si, r.bx + r.di, r.bp + r.si, r.bp + r.di, r.si, r.di, r.bp, r.bx][rm]!
  const disp = mod === 0 ? 0 : mod === 1 ? (d8 << 24) >> 24 : d16
  return (base + disp) & 0xffff
}

/** ADD OR ADC SBB AND SUB XOR with a r/m destination (the x0/x1 opcodes of rows 00-30). */
const isAluRmDest = (op: number): boolean => op <= 0x31 && (op & 0x06) === 0

/** 80386 PRM 14.8.1: may this opcode + ModRM take a LOCK prefix? (memory destination only) */
export const isLockable = (op: number, modrm: number): boolean => {
  if (modrm >>> 6 === 3) return false
  const reg = (modrm >>> 3) & 7
  if (isAluRmDest(op)) return true
  if (op >= 0x80 && op <= 0x83) return reg !== 7 // CMP does not write
  if (op === 0xf6 || op === 0xf7) return reg === 2 || reg === 3 // NOT, NEG
  if (op === 0xfe || op === 0xff) return reg === 0 || reg === 1 // INC, DEC
  return op === 0x86 || op === 0x87 // XCHG r/m, reg
}

/** LES, LDS, BOUND, CALL FAR m16:16, JMP FAR m16:16: two words read from one memory operand. */
const hasTwoWordOperand = (op: number, modrm: number): boolean =>
  op === 0xc4 || op === 0xc5 || op === 0x62 || (op === 0xff && (((modrm >>> 3) & 7) === 3 || ((modrm >>> 3) & 7) === 5))

/** MOVSW CMPSW STOSW LODSW SCASW INSW OUTSW. */
const isWordStringOp = (op: number): boolean =>
  op === 0xa5 || op === 0xa7 || op === 0xab || op === 0xad || op === 0xaf || op === 0x6d || op === 0x6f

// ---------------------------------------------------------------------------
// The table

/** IVT entry 12 (#SS, 0x30-0x33) := entry 13 (#GP, 0x34-0x37), so an IA-32 #SS reaches the 286's #13 handler. */
export const aliasStackFaultToGp = (ram: Uint8Array): void => {
  ram.copyWithin(0x30, 0x34, 0x38)
}

/** The opcode byte of a form name: "F7.6" -> 0xF7. */
export const formOpcode = (form: string): number => Number.parseInt(form.slice(0, 2), 16)

const IRET = 0xcf
const POPF = 0x9d

/**
 * The mask for final FLAGS (and a pushed FLAGS word) of a form: its undefined
 * flags cleared, and for POPF/IRET bits 12-15 too (a 386+ loads IOPL/NT from
 * the stack in real mode; the 286 does not).
 */
export const formFlagsMask = (form: string, masks: ReadonlyMap<string, number>): number => {
  const op = formOpcode(form)
  const undefinedMask = masks.get(form.toUpperCase()) ?? 0xffff
  return op === POPF || op === IRET ? undefinedMask & FLAGS_LOW12 : undefinedMask
}

/** The skip reason for one test, or undefined to run it. Rows in table order; the first match wins. */
export const skipReason = (test: VectorTest, quirks: CpuQuirks = defaultQuirks): SkipReason | undefined => {
  const bytes = test.bytes
  const { at, op, modrm, lock, foreign } = decodeInstruction(bytes)
  const exception = test.exception?.number
  const reg = (modrm >>> 3) & 7
  if (foreign || op === 0x0f) return "386-opcode"
  if (bytes.length - 1 > 10 && exception === 13) return "length"
  if (lock && !isLockable(op, modrm) && exception !== 6) return "lock"
  if ((op === 0x8c || op === 0x8e) && (reg === 4 || reg === 5)) return "mov-fs-gs"
  if (hasTwoWordOperand(op, modrm) && modrmOffset(bytes, at + 1, test.initial.regs) === 0xfffe)
    return "far-pointer-wrap"
  if (op === 0x8f && exception === 13 && modrmOffset(bytes, at + 1, test.initial.regs) === 0xffff)
    return "pop-mem-fault"
  if (op === 0xd6 && !quirks.salcExecutes) return "salc"
  if (op >= 0xd8 && op <= 0xdf && !quirks.escIsNop) return "fpu"
  return undefined
}

const STRING_FAULT_REGS: ReadonlyArray<keyof VectorRegs> = ["cx", "si", "di"]

/**
 * The policy the runner applies to the 286 vectors: which tests to skip, which
 * FLAGS bits and registers to compare, and the IVT alias for tests that expect #13.
 */
export const sst80286Policy = (masks: ReadonlyMap<string, number>, quirks: CpuQuirks = defaultQuirks): Policy => {
  const perForm = new Map<string, { run: Decision; runAliased: Decision }>()
  const decisionsOf = (form: string) => {
    let d = perForm.get(form)
    if (d === undefined) {
      const flagsMask = formFlagsMask(form, masks)
      d = {
        run: { skip: undefined, flagsMask },
        runAliased: { skip: undefined, flagsMask, prepare: aliasStackFaultToGp }
      }
      perForm.set(form, d)
    }
    return d
  }
  return {
    loadFlags,
    decide: (form, test) => {
      const d = decisionsOf(form)
      const flagsMask = d.run.flagsMask
      const skip = skipReason(test, quirks)
      if (skip !== undefined) return { skip, flagsMask }
      const exception = test.exception?.number
      const op = decodeInstruction(test.bytes).op
      if (exception === 13 && isWordStringOp(op))
        return { ...d.runAliased, ignoreRegs: STRING_FAULT_REGS, relaxed: "string-fault" }
      if (exception === 0 && op === 0xd4) return { ...d.run, flagsMask: flagsMask & ~SF_ZF_PF, relaxed: "aam-zero" }
      return exception === 13 ? d.runAliased : d.run
    }
  }
}
