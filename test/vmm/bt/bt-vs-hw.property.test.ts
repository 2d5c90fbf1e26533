/**
 * `bt` against `hw` on random straight-line ring-0 code: the same flat
 * 32-bit program (random registers, flags and scratch data first, then 1..40
 * instructions drawn from ALU reg/imm/mem forms, MOV, LEA, PUSH/POP, INC/DEC,
 * shifts and rotates, MUL/IMUL/DIV, XCHG, CMOVcc/SETcc, bit operations,
 * string instructions with small counts on the scratch buffer, PUSHF/POPF,
 * CLI/STI, CPUID, SMSW, SGDT/SIDT, MOV from CR0, segment-register reads, IN
 * from an unused port, short and near forward JMP/Jcc/LOOP over a random
 * instruction, CALL to a local label that RETs), ending in debug-exit, runs
 * in an in-process VM in each mode. The final architectural state (general
 * registers, EFLAGS, EIP, segment selectors, CR0/CR3/CR4), the scratch
 * buffer, the stack and how the VM ended must be the same: IDENT code,
 * rewritten branches and monitor callouts together must compute what the
 * hardware-assisted guest computes.
 *
 * The seed is fixed (BT_PROPERTY_SEED overrides it, BT_PROPERTY_RUNS the run
 * count); a failure prints the program's assembly. The last test checks
 * the property has teeth: the `trap` demonstration (no translation) must
 * fail it.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import fc from "fast-check"
import { assemble } from "../../hw/cpu/harness.ts"
import {
  architectural,
  CODE,
  FAULT_RECORD,
  type GuestRun,
  hex,
  type Mode,
  program,
  runBytes,
  SCRATCH,
  STACK_TOP
} from "./harness.ts"

const SEED = Number(process.env.BT_PROPERTY_SEED ?? 0x0b7b7)
const RUNS = Number(process.env.BT_PROPERTY_RUNS ?? 60)

// ---------------------------------------------------------------------------
// the instructions

const R32 = ["eax", "ecx", "edx", "ebx", "esp", "ebp", "esi", "edi"] as const
const DST32 = R32.filter((r) => r !== "esp")
const R16 = ["ax", "cx", "dx", "bx", "bp", "si", "di"] as const
const R8 = ["al", "cl", "dl", "bl", "ah", "ch", "dh", "bh"] as const
const CC = ["o", "no", "b", "ae", "z", "nz", "be", "a", "s", "ns", "p", "np", "l", "ge", "le", "g"] as const
const ALU = ["add", "or", "adc", "sbb", "and", "sub", "xor", "cmp"] as const
const SHIFT = ["rol", "ror", "rcl", "rcr", "shl", "shr", "sar"] as const

/** Scratch buffer: SCRATCH .. SCRATCH + SCRATCH_BYTES. */
const SCRATCH_BYTES = 0x100
/** EFLAGS bits the random start state sets: the arithmetic flags and DF (never TF: single-stepping is not modelled). */
const RANDOM_FLAGS = 0x8d5 | 0x400

const word = fc.oneof(
  fc.constantFrom(0, 1, 2, 0x7f, 0x80, 0xff, 0x7fff, 0x8000, 0xffff, 0x7fffffff, 0x80000000, 0xffffffff),
  fc.integer({ min: 0, max: 0xffffffff })
)
const imm = word.map(hex)
const imm8 = fc.integer({ min: -128, max: 127 }).map(String)
const dst = fc.constantFrom(...DST32)
const src = fc.constantFrom(...R32)
const r16 = fc.constantFrom(...R16)
const r8 = fc.constantFrom(...R8)
const cc = fc.constantFrom(...CC)
/** A dword in the scratch buffer. */
const mem = fc.integer({ min: 0, max: SCRATCH_BYTES - 4 }).map((d) => `[SCRATCH + 0x${d.toString(16)}]`)

/** One instruction (or a short fixed group) with no labels and no stack effect. */
const plain: fc.Arbitrary<string> = fc.oneof(
  // ALU: reg/reg, reg/imm (imm32 and sign-extended imm8), reg/mem, mem/reg, mem/imm, 8- and 16-bit forms
  fc.tuple(fc.constantFrom(...ALU), dst, src).map(([op, d, s]) => `${op} ${d}, ${s}`),
  fc.tuple(fc.constantFrom(...ALU), dst, imm).map(([op, d, i]) => `${op} ${d}, ${i}`),
  fc.tuple(fc.constantFrom(...ALU), dst, imm8).map(([op, d, i]) => `${op} ${d}, byte ${i}`),
  fc.tuple(fc.constantFrom(...ALU), dst, mem).map(([op, d, m]) => `${op} ${d}, ${m}`),
  fc.tuple(fc.constantFrom(...ALU), mem, src).map(([op, m, s]) => `${op} ${m}, ${s}`),
  fc.tuple(fc.constantFrom(...ALU), mem, imm).map(([op, m, i]) => `${op} dword ${m}, ${i}`),
  fc.tuple(fc.constantFrom(...ALU), r8, r8).map(([op, d, s]) => `${op} ${d}, ${s}`),
  fc.tuple(fc.constantFrom(...ALU), r16, imm8).map(([op, d, i]) => `${op} ${d}, ${i}`),
  fc.tuple(fc.constantFrom("test", "cmp"), src, src).map(([op, a, b]) => `${op} ${a}, ${b}`),
  // MOV, LEA, MOVZX/MOVSX, XCHG
  fc.tuple(dst, src).map(([d, s]) => `mov ${d}, ${s}`),
  fc.tuple(dst, imm).map(([d, i]) => `mov ${d}, ${i}`),
  fc.tuple(dst, mem).map(([d, m]) => `mov ${d}, ${m}`),
  fc.tuple(mem, src).map(([m, s]) => `mov ${m}, ${s}`),
  fc.tuple(mem, imm).map(([m, i]) => `mov dword ${m}, ${i}`),
  fc.tuple(r8, mem).map(([d, m]) => `mov ${d}, ${m}`),
  fc.tuple(mem, r16).map(([m, s]) => `mov ${m}, ${s}`),
  fc
    .tuple(dst, src, dst, fc.constantFrom(1, 2, 4, 8), imm)
    .map(([d, b, x, s, i]) => `lea ${d}, [${b} + ${x} * ${s} + ${i}]`),
  fc.tuple(fc.constantFrom("movzx", "movsx"), dst, r8).map(([op, d, s]) => `${op} ${d}, ${s}`),
  fc.tuple(fc.constantFrom("movzx", "movsx"), dst, mem).map(([op, d, m]) => `${op} ${d}, word ${m}`),
  fc.tuple(dst, dst).map(([a, b]) => `xchg ${a}, ${b}`),
  fc.tuple(dst, mem).map(([d, m]) => `xchg ${d}, ${m}`),
  // INC/DEC/NEG/NOT
  fc.tuple(fc.constantFrom("inc", "dec", "neg", "not"), dst).map(([op, d]) => `${op} ${d}`),
  fc.tuple(fc.constantFrom("inc", "dec", "neg", "not"), mem).map(([op, m]) => `${op} dword ${m}`),
  fc.tuple(fc.constantFrom("inc", "dec"), r8).map(([op, d]) => `${op} ${d}`),
  // shifts and rotates by imm8, 1 and CL
  fc.tuple(fc.constantFrom(...SHIFT), dst, fc.integer({ min: 0, max: 31 })).map(([op, d, n]) => `${op} ${d}, ${n}`),
  fc.tuple(fc.constantFrom(...SHIFT), dst).map(([op, d]) => `${op} ${d}, cl`),
  fc.tuple(fc.constantFrom(...SHIFT), mem).map(([op, m]) => `${op} dword ${m}, 1`),
  fc
    .tuple(fc.constantFrom("shld", "shrd"), dst, src, fc.integer({ min: 0, max: 31 }))
    .map(([op, d, s, n]) => (n === 0 ? `${op} ${d}, ${s}, cl` : `${op} ${d}, ${s}, ${n}`)),
  // MUL/IMUL/DIV (DIV with a non-zero divisor and EDX < divisor: no #DE)
  fc.tuple(fc.constantFrom("mul", "imul"), src).map(([op, s]) => `${op} ${s}`),
  fc.tuple(dst, src).map(([d, s]) => `imul ${d}, ${s}`),
  fc.tuple(dst, src, imm).map(([d, s, i]) => `imul ${d}, ${s}, ${i}`),
  fc.constantFrom("or ecx, 1\nxor edx, edx\ndiv ecx", "or ebx, 0x10000\nmov edx, 0xffff\ndiv ebx"),
  fc.constantFrom("cdq", "cwde", "cbw", "cwd"),
  // bit operations
  fc
    .tuple(fc.constantFrom("bt", "bts", "btr", "btc"), dst, fc.integer({ min: 0, max: 31 }))
    .map(([op, d, n]) => `${op} ${d}, ${n}`),
  fc.tuple(fc.constantFrom("bsf", "bsr"), dst, src).map(([op, d, s]) => `${op} ${d}, ${s}`),
  fc.tuple(dst).map(([d]) => `bswap ${d}`),
  fc.tuple(dst, dst).map(([d, s]) => `xadd ${d}, ${s}`),
  fc.tuple(mem, src).map(([m, s]) => `cmpxchg ${m}, ${s}`),
  // CMOVcc, SETcc, flag instructions, LAHF/SAHF
  fc.tuple(cc, dst, src).map(([c, d, s]) => `cmov${c} ${d}, ${s}`),
  fc.tuple(cc, dst, mem).map(([c, d, m]) => `cmov${c} ${d}, ${m}`),
  fc.tuple(cc, r8).map(([c, d]) => `set${c} ${d}`),
  fc.tuple(cc, mem).map(([c, m]) => `set${c} byte ${m}`),
  fc.constantFrom("clc", "stc", "cmc", "cld", "std", "lahf", "sahf", "nop", "salc"),
  // string instructions with small counts, both directions, inside the scratch buffer
  fc
    .tuple(
      fc.constantFrom("movsb", "movsd", "stosb", "stosd", "lodsb", "lodsd", "cmpsb", "scasd"),
      fc.constantFrom("", "rep ", "repe ", "repne "),
      fc.integer({ min: 0x40, max: 0xa0 }),
      fc.integer({ min: 0x40, max: 0xa0 }),
      fc.integer({ min: 0, max: 8 }),
      fc.boolean()
    )
    .map(
      ([op, rep, s, d, n, down]) =>
        `mov esi, SCRATCH + 0x${s.toString(16)}\nmov edi, SCRATCH + 0x${d.toString(16)}\nmov ecx, ${n}\n${down ? "std" : "cld"}\n${op.startsWith("lods") || op.startsWith("stos") || op.startsWith("movs") ? rep.replace(/repn?e /, "rep ") : rep}${op}`
    ),
  // sensitive: PUSHF/POPF (balanced), CLI/STI, CPUID, SMSW, SGDT/SIDT, MOV from CR0, segment registers, IN
  fc.tuple(dst).map(([d]) => `pushf\npop ${d}`),
  word.map((w) => `push dword 0x${((w & RANDOM_FLAGS) >>> 0).toString(16)}\npopf`),
  fc.tuple(src).map(([s]) => `push ${s}\nand dword [esp], 0x${RANDOM_FLAGS.toString(16)}\npopf`),
  fc.constantFrom("cli", "sti", "sti\ncli"),
  fc.constantFrom(0, 1, 2, 0x80000000, 0x80000001, 0x40000000).map((leaf) => `mov eax, 0x${leaf.toString(16)}\ncpuid`),
  fc.tuple(dst).map(([d]) => `smsw ${d}`),
  mem.map((m) => `smsw ${m}`),
  fc
    .tuple(fc.constantFrom("sgdt", "sidt"), fc.integer({ min: 0, max: SCRATCH_BYTES - 6 }))
    .map(([op, d]) => `${op} [SCRATCH + 0x${d.toString(16)}]`),
  fc.tuple(dst).map(([d]) => `mov ${d}, cr0`),
  fc.tuple(dst, fc.constantFrom("cs", "ds", "ss", "es", "fs", "gs")).map(([d, s]) => `mov ${d}, ${s}`),
  fc.tuple(dst, fc.constantFrom("cs", "ss", "ds")).map(([d, s]) => `push ${s}\npop ${d}`),
  fc.constantFrom("in al, 0xe0", "in eax, 0xe2", "mov dx, 0x2e0\nin ax, dx", "mov dx, 0x2e0\nin eax, dx")
)

/** PUSH/POP of general registers (unbalanced: the stack is compared). */
const stack: fc.Arbitrary<string> = fc.oneof(
  src.map((s) => `push ${s}`),
  dst.map((d) => `pop ${d}`),
  imm.map((i) => `push dword ${i}`),
  mem.map((m) => `push dword ${m}`),
  mem.map((m) => `pop dword ${m}`),
  fc.constantFrom("pushad", "pushad\npopad")
)

/** An item of the program: text with `@` standing for a label prefix unique to the item. */
type Item = string

const branchy: fc.Arbitrary<Item> = fc.oneof(
  // short and near forward JMP and Jcc over one instruction
  fc.tuple(fc.constantFrom("short", "near"), plain).map(([size, over]) => `jmp ${size} @skip\n${over}\n@skip:`),
  fc
    .tuple(cc, fc.constantFrom("short", "near"), plain)
    .map(([c, size, over]) => `j${c} ${size} @skip\n${over}\n@skip:`),
  // LOOP/LOOPE/LOOPNE/JECXZ over one instruction (ECX counts)
  fc
    .tuple(fc.constantFrom("loop", "loope", "loopne", "jecxz"), plain)
    .map(([op, over]) => `${op} @skip\n${over}\n@skip:`),
  // a backward loop with a small count
  fc
    .tuple(
      fc.integer({ min: 1, max: 5 }),
      plain.filter((p) => !/ecx|\bcx\b|\bcl\b|\bch\b|cpuid|rep|div|loop/.test(p))
    )
    .map(([n, body]) => `mov ecx, ${n}\n@top:\n${body}\nloop @top`),
  // CALL to a local label that RETs (optionally RET imm16 after a push)
  plain.map((body) => `call @fn\njmp short @over\n@fn:\n${body}\nret\n@over:`),
  fc.tuple(plain, imm).map(([body, i]) => `push dword ${i}\ncall @fn\njmp short @over\n@fn:\n${body}\nret 4\n@over:`)
)

const item: fc.Arbitrary<Item> = fc.oneof(
  { weight: 6, arbitrary: plain },
  { weight: 1, arbitrary: stack },
  { weight: 2, arbitrary: branchy }
)

interface Case {
  readonly registers: ReadonlyArray<number>
  readonly flags: number
  readonly data: ReadonlyArray<number>
  readonly items: ReadonlyArray<Item>
}

const caseArb: fc.Arbitrary<Case> = fc.record({
  registers: fc.array(word, { minLength: 7, maxLength: 7 }),
  flags: word,
  data: fc.array(fc.integer({ min: 0, max: 255 }), { minLength: SCRATCH_BYTES, maxLength: SCRATCH_BYTES }),
  items: fc.array(item, { minLength: 1, maxLength: 40 })
})

/** The program's body: scratch data, registers and flags set, the items (labels made unique), debug-exit. */
const render = (c: Case): { readonly body: string; readonly tail: string } => {
  const set = DST32.map((r, i) => `  mov ${r}, 0x${(c.registers[i]! >>> 0).toString(16)}`).join("\n")
  const items = c.items.map((text, i) => text.replaceAll("@", `i${i}_`)).join("\n")
  return {
    body: `
  mov esi, initial_data
  mov edi, SCRATCH
  mov ecx, ${SCRATCH_BYTES}
  cld
  rep movsb
  push dword 0x${((c.flags & RANDOM_FLAGS) >>> 0).toString(16)}
  popf
${set}
; ---- random code
${items}
; ----`,
    tail: `initial_data: db ${c.data.join(", ")}`
  }
}

const listing = (c: Case): string => render(c).body

const DUMP: ReadonlyArray<readonly [number, number]> = [
  [SCRATCH, SCRATCH_BYTES],
  [STACK_TOP - 0x400, 0x440],
  [FAULT_RECORD, 24]
]

const runCase = (mode: Mode, c: Case): Promise<GuestRun> => {
  const { body, tail } = render(c)
  const bytes = assemble(`bits 32\norg 0x${CODE.toString(16)}\n${program(body, { tail })}`).bytes
  return Effect.runPromise(runBytes(mode, bytes, { dump: DUMP, ns: 20_000_000 }))
}

const hexBytes = (bytes: Uint8Array): string => Buffer.from(bytes).toString("hex")

/** Everything compared, as one readable object. */
const observed = (r: GuestRun) => ({
  ended: r.ended,
  ...architectural(r.regs),
  scratch: hexBytes(r.memory[0]!),
  stack: hexBytes(r.memory[1]!),
  fault: hexBytes(r.memory[2]!)
})

/** The fields where two observations differ, one line each (memory: the first differing byte). */
const differences = (mode: Mode, a: ReturnType<typeof observed>, b: ReturnType<typeof observed>): Array<string> =>
  (Object.keys(b) as Array<keyof typeof b>).flatMap((key) => {
    const x = JSON.stringify(a[key])
    const y = JSON.stringify(b[key])
    if (x === y) return []
    if (
      typeof a[key] === "string" &&
      typeof b[key] === "string" &&
      (key === "scratch" || key === "stack" || key === "fault")
    ) {
      const sa = a[key] as string
      const sb = b[key] as string
      let i = 0
      while (i < sa.length && sa[i] === sb[i]) i++
      const at = i >> 1
      return [
        `  ${key} byte 0x${at.toString(16)}: ${mode} ${sa.slice(2 * at, 2 * at + 16)}, hw ${sb.slice(2 * at, 2 * at + 16)}`
      ]
    }
    return [`  ${key}: ${mode} ${x}, hw ${y}`]
  })

/** One case: `mode` against hw; throws with the assembly and the differences when they differ. */
const check = async (mode: Mode, c: Case): Promise<void> => {
  const [other, hw] = await Promise.all([runCase(mode, c), runCase("hw", c)])
  if (hw.ended?._tag !== "DebugExit") throw new Error(`the hw run did not end with debug-exit on:\n${listing(c)}`)
  const diffs = differences(mode, observed(other), observed(hw))
  if (diffs.length > 0) throw new Error(`${mode} and hw differ on:\n${listing(c)}\n\n${diffs.join("\n")}`)
}

describe("bt vs hw on random straight-line ring-0 code", () => {
  it(`${RUNS} random programs: the same final state (seed ${hex(SEED)})`, { timeout: 300_000 }, async () => {
    await fc.assert(
      fc.asyncProperty(caseArb, (c) => check("bt", c)),
      { seed: SEED, numRuns: RUNS }
    )
  })

  it("the property has teeth: `trap` mode (no translation) fails it on a sensitive instruction", {
    timeout: 120_000
  }, async () => {
    const result = await fc.check(
      fc.asyncProperty(caseArb, (c) => check("trap", c)),
      { seed: SEED, numRuns: 100, endOnFailure: true }
    )
    expect(result.failed).toBe(true)
    const message = String(result.errorInstance)
    expect(message).toContain("trap and hw differ on:")
    expect(message).toMatch(/pushf|popf|smsw|sgdt|sidt|cli|sti|, cs|, ss|push cs|push ss|cpuid|cr0|in /)
  })
})
