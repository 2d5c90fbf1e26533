/**
 * The 80286-versus-IA-32 table for the SingleStepTests 80286 real-mode vectors
 * (../shared/conformance/sst-80286-real, README "Using these on an IA-32 CPU").
 *
 * The vectors were captured on a real 286; our CPU is an IA-32. Wherever the two
 * legitimately differ, this file says what the runner does instead, and why:
 *
 *   what differs                                   what we do                      rows below
 *   ---------------------------------------------  ------------------------------  -----------------------
 *   FLAGS bits 12-15 random in `initial`           load `flags & 0x0FFF`           loadFlags
 *   POPF/IRET load IOPL/NT on a 386+               compare `flags & 0x0FFF`        flagsMask (9D, CF)
 *   undefined flags (per form)                     flags-mask.json `mask` field    flagsMask
 *   ... also in the FLAGS word an exception pushes  runner masks those two bytes    flagsMask
 *   length > 10 bytes: #13 on 286, fine on IA-32   skip                            "length"
 *   SS-relative wrap: #13 on 286, #SS (12) on 386+ alias IVT 12 -> 13 handler      prepare (exception 13)
 *   LOCK before a non-lockable instruction         skip (IA-32: #UD)               "lock"
 *   8C/8E reg 4/5: #UD on 286, MOV FS/GS on 386+    skip                            "mov-fs-gs"
 *   D6 SALC                                         see SALC below                  "salc"
 *   D8 ESC with no coprocessor                      see FPU below                   "fpu"
 *   0F xx, 64-67, F1 (absent from this suite)      skip if a vector set has them   "386-opcode"
 *
 * Everything not in the table is compared as captured: 82.x, F6.1/F7.1 and the
 * .6 shift aliases are run (IA-32 executes them), #UD for 8E /1, /6, /7 and
 * 8F/C6/C7 with reg != 0 is expected, 63 (ARPL) is #UD in real mode on both.
 *
 * Invariants: `decide` is pure and cheap (one call per test, no allocation for
 * the common case); every skip names one of `skipReasons`.
 */
import { existsSync, readFileSync } from "node:fs"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import type { Decision, Policy, VectorTest } from "./runner.ts"

/** The public vectors, resolved from this file (the project root's sibling `shared/`), not from the cwd. */
export const defaultVectorDir = fileURLToPath(new URL("../../../shared/conformance/sst-80286-real", import.meta.url))

/** Every skip reason: the key is what `Decision.skip` holds and what the report counts. */
export const skipReasons = {
  length:
    "instruction longer than 10 bytes: the 286 raises #13 (its length limit); IA-32's limit is 15 bytes, so it executes",
  lock:
    "LOCK (F0) before an instruction that is not ADD/ADC/SUB/SBB/AND/OR/XOR/NOT/NEG/INC/DEC/XCHG with a memory " +
    "destination: the 286 ignores it, a 386+ raises #UD (80386 PRM 14.8.1); kept when the 286 raised #UD too",
  "mov-fs-gs": "8C/8E with reg 4 or 5: #UD on the 286, MOV from/to FS/GS on a 386+",
  salc: "D6 SALC: executes on the 286 (AL = CF ? FF : 00), undocumented on IA-32 and #UD on this CPU",
  fpu:
    "D8 ESC with no coprocessor: the 286 only advances IP; this CPU has no x87 and CR0.EM=1, so ESC raises #NM " +
    "(7) as on a 386 without a 387 (SDM vol. 3 2.5 CR0.EM)",
  "386-opcode":
    "0F xx two-byte opcodes, 64/65 (FS/GS overrides), 66/67 (operand/address size) or F1: different instructions " +
    "on a 386+ (absent from the public 286 suite)"
} as const
export type SkipReason = keyof typeof skipReasons

/**
 * What this CPU does with the two opcodes a no-FPU IA-32 part may legitimately
 * handle either way. Switch a flag when the CPU changes; the table follows.
 * - `salcExecutes`: D6 runs as SALC (as reported on Intel parts) instead of #UD.
 * - `escIsNop`: with no x87, ESC (D8-DF) is decoded and skipped like on the
 *   286 (CR0.EM=0 and no coprocessor), instead of raising #NM (CR0.EM=1).
 */
export interface CpuQuirks {
  readonly salcExecutes: boolean
  readonly escIsNop: boolean
}

/** Defaults: the ones the real CPU shows (see the conformance report). */
export const defaultQuirks: CpuQuirks = { salcExecutes: true, escIsNop: true }

/** FLAGS bits 12-15 (IOPL, NT, bit 15): random in the vectors, never kept by a real-mode 286. */
export const FLAGS_LOW12 = 0x0fff

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

/** Prefix bytes as the 286 decodes them, plus the 386+ ones (which the table skips). */
const isPrefix = (b: number): boolean =>
  b === 0x26 || b === 0x2e || b === 0x36 || b === 0x3e || b === 0xf0 || b === 0xf2 || b === 0xf3 || is386Prefix(b)
const is386Prefix = (b: number): boolean => b === 0x64 || b === 0x65 || b === 0x66 || b === 0x67 || b === 0xf1

/** ADD OR ADC SBB AND SUB XOR with a r/m destination (the x0/x1 opcodes of rows 00-30). */
const isAluRmDest = (op: number): boolean => op <= 0x31 && (op & 0x06) === 0 && (op & 0xc0) === 0

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
  let i = 0
  let lock = false
  let foreign = false
  while (i < bytes.length && isPrefix(bytes[i]!)) {
    if (bytes[i] === 0xf0) lock = true
    if (is386Prefix(bytes[i]!)) foreign = true
    i++
  }
  const op = bytes[i] ?? 0xf4
  const modrm = bytes[i + 1] ?? 0
  const exception = test.exception?.number
  if (foreign || op === 0x0f) return "386-opcode"
  if (bytes.length - 1 > 10 && exception === 13) return "length"
  if (lock && !isLockable(op, modrm) && exception !== 6) return "lock"
  if ((op === 0x8c || op === 0x8e) && ((modrm >>> 3) & 7) >= 4 && ((modrm >>> 3) & 7) <= 5) return "mov-fs-gs"
  if (op === 0xd6 && !quirks.salcExecutes) return "salc"
  if (op >= 0xd8 && op <= 0xdf && !quirks.escIsNop) return "fpu"
  return undefined
}

/**
 * The policy the runner applies to the 286 vectors: which tests to skip, which
 * FLAGS bits to compare, and the IVT alias for tests that expect #13.
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
      const skip = skipReason(test, quirks)
      if (skip !== undefined) return { skip, flagsMask: d.run.flagsMask }
      return test.exception?.number === 13 ? d.runAliased : d.run
    }
  }
}
