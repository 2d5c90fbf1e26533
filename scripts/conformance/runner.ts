/**
 * Conformance runner for SingleStepTests-format vectors (one gzipped JSONL
 * file per instruction form, one test per line), as captured from real
 * hardware: https://github.com/SingleStepTests (format in the vectors' README).
 *
 * One test, start to end:
 *
 *   initial.regs --(policy.loadFlags)--> CpuState --setState--> CPU
 *   initial.ram  ----------------------> machine RAM   (+ policy prepare(ram))
 *   cpu.run(budget)  ... until the HLT at the end of `bytes` (or at the
 *                        jump target / interrupt handler) executes
 *   compare  initial.regs overlaid with final.regs  vs  getState()
 *            initial.ram  overlaid with final.ram   vs  RAM bytes
 *   (FLAGS and the FLAGS word an exception pushed compared under the policy's mask)
 *
 * Invariants: one CPU and one memory for the whole run (each test writes every
 * byte it reads, so nothing is cleared between tests); the per-test path
 * allocates only what JSON.parse does, plus a record when a test fails. The
 * runner knows nothing of the 286: what to skip and mask comes from a Policy
 * (sst-80286.ts for the 286 vectors).
 */
import { createReadStream, existsSync, readdirSync, statSync } from "node:fs"
import { join } from "node:path"
import { createInterface } from "node:readline"
import { createGunzip } from "node:zlib"
import { flatMemory, type IoPorts, noPorts, type PhysicalMemory } from "../../hw/cpu/bus.ts"
import { type CpuState, RunExit, type SegmentState } from "../../hw/cpu/state.ts"

// ---------------------------------------------------------------------------
// The vector format

export interface VectorRegs {
  ax: number
  bx: number
  cx: number
  dx: number
  cs: number
  ss: number
  ds: number
  es: number
  sp: number
  bp: number
  si: number
  di: number
  ip: number
  flags: number
}

export type RamBytes = ReadonlyArray<readonly [address: number, value: number]>

export interface VectorTest {
  readonly name: string
  /** prefixes + instruction + the terminating HLT */
  readonly bytes: ReadonlyArray<number>
  readonly initial: { readonly regs: VectorRegs; readonly ram: RamBytes }
  /** only what changed */
  readonly final: { readonly regs: Partial<VectorRegs>; readonly ram: RamBytes }
  /** a CPU exception or software interrupt was taken; FLAGS were pushed at flag_address (rounded down to even) */
  readonly exception?: { readonly number: number; readonly flag_address: number }
  readonly hash?: string
}

// ---------------------------------------------------------------------------
// What the runner needs from a CPU and from a policy

/** The slice of hw/cpu/cpu.ts the runner drives (a fake of this shape in unit tests). */
export interface ConformanceCpu {
  reset(): void
  getState(): CpuState
  setState(state: CpuState): void
  run(budget: number): RunExit
}

export type CpuFactory = (memory: PhysicalMemory, ports: IoPorts) => ConformanceCpu

/** What to do with one test. */
export interface Decision {
  /** a reason key when the test is not run */
  readonly skip: string | undefined
  /** FLAGS bits compared (final FLAGS and an exception's pushed FLAGS word) */
  readonly flagsMask: number
  /** adjust memory after the test's bytes are loaded, before running */
  readonly prepare?: (ram: Uint8Array) => void
  /** registers not compared (a documented difference in what the two CPUs leave there) */
  readonly ignoreRegs?: ReadonlyArray<keyof VectorRegs>
  /** why this test is compared more narrowly than its form (ignoreRegs, a wider flags mask): counted in the report */
  readonly relaxed?: string
}

export interface Policy {
  /** initial.flags as loaded into EFLAGS */
  loadFlags(flags: number): number
  decide(form: string, test: VectorTest): Decision
}

/** Compare everything as captured. */
export const strictPolicy: Policy = {
  loadFlags: (flags) => flags,
  decide: () => ({ skip: undefined, flagsMask: 0xffff })
}

// ---------------------------------------------------------------------------
// Results

export interface Diff {
  /** "ax".."di", "ip", "flags", "cs".."es", "cs.base", "ram[0x0CEB63]", "exit" */
  readonly field: string
  readonly expected: number
  readonly actual: number
  /** bits compared (0xFFFF for 16-bit registers, 0xFF for bytes) */
  readonly mask: number
}

export interface TestFailure {
  readonly form: string
  /** 0-based line in the form's file */
  readonly index: number
  readonly name: string
  readonly hash: string | undefined
  readonly bytes: ReadonlyArray<number>
  readonly initial: VectorRegs
  readonly exception: number | undefined
  readonly exit: string
  readonly diffs: ReadonlyArray<Diff>
}

export interface FormResult {
  readonly form: string
  passed: number
  failed: number
  skipped: number
  /** skipped tests by reason key */
  readonly skips: Record<string, number>
  /** tests run with a relaxed comparison, by reason key */
  readonly relaxed: Record<string, number>
  /** failing tests by the fields that differed ("flags", "ram", "exit", ...) */
  readonly failedFields: Record<string, number>
  /** the first `keepFailures` failures, in file order */
  readonly failures: Array<TestFailure>
}

export interface SuiteResult {
  readonly dir: string
  readonly forms: ReadonlyArray<FormResult>
  readonly passed: number
  readonly failed: number
  readonly skipped: number
  readonly skips: Record<string, number>
  readonly relaxed: Record<string, number>
}

/** A vector directory that cannot be used (missing, not a directory, no `*.jsonl.gz`). */
export class VectorDirError extends Error {
  readonly _tag = "VectorDirError"
}

// ---------------------------------------------------------------------------
// The harness: one CPU, one memory, one state record, reused for every test

/** 2 MiB: real-mode SEG:OFF reaches 0x10FFEF with A20 enabled. */
export const MEMORY_SIZE = 0x200000
/** Instructions per test. REP iterations may count one each (CX <= 63 in the 286 suite). */
export const DEFAULT_BUDGET = 1024

export interface Harness {
  readonly cpu: ConformanceCpu
  readonly memory: PhysicalMemory
  /** the reset state, where each test's registers are written before setState */
  readonly state: CpuState
  readonly budget: number
}

export const makeHarness = (makeCpu: CpuFactory, budget = DEFAULT_BUDGET): Harness => {
  const memory = flatMemory(MEMORY_SIZE)
  const cpu = makeCpu(memory, noPorts)
  cpu.reset()
  return { cpu, memory, state: cpu.getState(), budget }
}

const setRealModeSegment = (seg: SegmentState, selector: number, access: number): void => {
  seg.selector = selector
  seg.base = selector << 4
  seg.limit = 0xffff
  seg.access = access
}

const loadRegisters = (s: CpuState, r: VectorRegs, flags: number): void => {
  s.eax = r.ax
  s.ebx = r.bx
  s.ecx = r.cx
  s.edx = r.dx
  s.esp = r.sp
  s.ebp = r.bp
  s.esi = r.si
  s.edi = r.di
  s.eip = r.ip
  s.eflags = flags | 0x2 // bit 1 reads as 1 on every x86
  setRealModeSegment(s.cs, r.cs, 0x9b)
  setRealModeSegment(s.ss, r.ss, 0x93)
  setRealModeSegment(s.ds, r.ds, 0x93)
  setRealModeSegment(s.es, r.es, 0x93)
  setRealModeSegment(s.fs, 0, 0x93)
  setRealModeSegment(s.gs, 0, 0x93)
  s.halted = false
  s.a20 = true
}

const exitNames = Object.fromEntries(Object.entries(RunExit).map(([name, code]) => [code, name])) as Record<
  number,
  string
>
export const exitName = (exit: number): string => exitNames[exit] ?? `exit ${exit}`

const hex = (n: number, digits: number): string => n.toString(16).toUpperCase().padStart(digits, "0")

/** Registers compared, with the CpuState field holding each. */
const gprs = [
  ["ax", "eax"],
  ["bx", "ebx"],
  ["cx", "ecx"],
  ["dx", "edx"],
  ["sp", "esp"],
  ["bp", "ebp"],
  ["si", "esi"],
  ["di", "edi"]
] as const
const segments = ["cs", "ss", "ds", "es"] as const

const expectedReg = (test: VectorTest, reg: keyof VectorRegs): number => test.final.regs[reg] ?? test.initial.regs[reg]

/** The final value of a RAM byte: final.ram if listed there, else initial.ram. */
const findByte = (ram: RamBytes, address: number): number => {
  for (let i = 0; i < ram.length; i++) if (ram[i]![0] === address) return ram[i]![1]
  return -1
}

/**
 * Run one test on the harness and return why the CPU stopped; `diffs` is
 * cleared and filled with the differences (empty when the test passed).
 */
export const runTest = (
  h: Harness,
  test: VectorTest,
  decision: Decision,
  policy: Policy,
  diffs: Array<Diff>
): RunExit => {
  diffs.length = 0
  const ram = h.memory.ram
  const init = test.initial
  for (const [address, value] of init.ram) {
    if (address >= ram.length) throw new Error(`${test.name}: RAM address 0x${hex(address, 6)} beyond the test memory`)
    ram[address] = value
  }
  decision.prepare?.(ram)
  loadRegisters(h.state, init.regs, policy.loadFlags(init.regs.flags))
  h.cpu.setState(h.state)
  const exit = h.cpu.run(h.budget)
  if (exit !== RunExit.Halt) diffs.push({ field: "exit", expected: RunExit.Halt, actual: exit, mask: 0xff })

  const s = h.cpu.getState()
  const ignore = decision.ignoreRegs
  for (const [reg, field] of gprs) {
    if (ignore?.includes(reg)) continue
    const expected = expectedReg(test, reg)
    // a 16-bit instruction never touches the upper half, so compare all 32 bits
    if (s[field] !== expected) diffs.push({ field: reg, expected, actual: s[field], mask: 0xffff })
  }
  const ip = expectedReg(test, "ip")
  if ((s.eip & 0xffff) !== ip) diffs.push({ field: "ip", expected: ip, actual: s.eip, mask: 0xffff })
  const flagsMask = decision.flagsMask
  const flags = expectedReg(test, "flags")
  if (((s.eflags ^ flags) & flagsMask) !== 0 || s.eflags >>> 16 !== 0)
    diffs.push({ field: "flags", expected: flags, actual: s.eflags, mask: flagsMask })
  for (const seg of segments) {
    const expected = expectedReg(test, seg)
    const actual = s[seg]
    if (actual.selector !== expected) diffs.push({ field: seg, expected, actual: actual.selector, mask: 0xffff })
    else if (actual.base !== expected << 4)
      diffs.push({ field: `${seg}.base`, expected: expected << 4, actual: actual.base, mask: 0xffffffff })
  }

  // The FLAGS word an exception pushed sits 4 bytes above the final SS:SP (IP, CS, FLAGS).
  let flagsLow = -1
  let flagsHigh = -1
  if (test.exception !== undefined) {
    const ss = expectedReg(test, "ss") << 4
    const sp = expectedReg(test, "sp")
    flagsLow = ss + ((sp + 4) & 0xffff)
    flagsHigh = ss + ((sp + 5) & 0xffff)
  }
  const final = test.final.ram
  for (const [address, value] of final) {
    const mask = address === flagsLow ? flagsMask & 0xff : address === flagsHigh ? flagsMask >>> 8 : 0xff
    if (((ram[address]! ^ value) & mask) !== 0)
      diffs.push({ field: `ram[0x${hex(address, 6)}]`, expected: value, actual: ram[address]!, mask })
  }
  for (const [address, value] of init.ram) {
    if (ram[address] !== value && findByte(final, address) < 0)
      diffs.push({ field: `ram[0x${hex(address, 6)}]`, expected: value, actual: ram[address]!, mask: 0xff })
  }
  return exit
}

// ---------------------------------------------------------------------------
// Files and directories

/** Form names ("00", "F7.6", ...) of the `*.jsonl.gz` files in `dir`, sorted; throws VectorDirError. */
export const listForms = (dir: string): Array<string> => {
  if (!existsSync(dir) || !statSync(dir).isDirectory())
    throw new VectorDirError(`conformance: vector directory not found: ${dir}`)
  const forms = readdirSync(dir)
    .filter((f) => f.endsWith(".jsonl.gz"))
    .map((f) => f.slice(0, -".jsonl.gz".length))
    .sort()
  if (forms.length === 0) throw new VectorDirError(`conformance: no *.jsonl.gz vector files in ${dir}`)
  return forms
}

/** Does `form` match a --form filter? "F7" matches F7 and F7.0-F7.7; "f7.6" matches F7.6. */
export const formMatches = (form: string, filter: string): boolean => {
  const f = form.toUpperCase()
  const want = filter.toUpperCase()
  return f === want || f.startsWith(`${want}.`)
}

/** Stream the tests of one gzipped JSONL file, in order. */
export async function* readVectors(file: string): AsyncGenerator<VectorTest> {
  const gunzip = createGunzip()
  const source = createReadStream(file)
  source.on("error", (e) => gunzip.destroy(e))
  const lines = createInterface({ input: source.pipe(gunzip), crlfDelay: Number.POSITIVE_INFINITY })
  let line = 0
  try {
    for await (const text of lines) {
      line++
      if (text.length === 0) continue
      let test: VectorTest
      try {
        test = JSON.parse(text) as VectorTest
      } catch (e) {
        throw new Error(`${file}:${line}: not JSON (${(e as Error).message})`)
      }
      if (typeof test?.initial?.regs !== "object" || !Array.isArray(test.bytes) || typeof test.final !== "object")
        throw new Error(`${file}:${line}: not a vector (needs name, bytes, initial, final)`)
      yield test
    }
  } catch (e) {
    const message = (e as Error).message
    throw message.startsWith(file) ? e : new Error(`${file}: cannot read (${message})`)
  } finally {
    lines.close()
    source.destroy()
  }
}

export interface RunOptions {
  readonly dir: string
  readonly makeCpu: CpuFactory
  readonly policy: Policy
  /** only forms matching this (see formMatches) */
  readonly form?: string | undefined
  readonly budget?: number
  /** failures kept per form (default 1) */
  readonly keepFailures?: number
  /** called after each form */
  readonly onForm?: (result: FormResult) => void
}

const bump = (counts: Record<string, number>, key: string): void => {
  counts[key] = (counts[key] ?? 0) + 1
}

const fieldClass = (field: string): string => (field.startsWith("ram[") ? "ram" : field)

/** Run one form's file through the harness. */
export const runForm = async (
  h: Harness,
  file: string,
  form: string,
  policy: Policy,
  keepFailures = 1
): Promise<FormResult> => {
  const result: FormResult = {
    form,
    passed: 0,
    failed: 0,
    skipped: 0,
    skips: {},
    relaxed: {},
    failedFields: {},
    failures: []
  }
  const diffs: Array<Diff> = []
  let index = -1
  for await (const test of readVectors(file)) {
    index++
    const decision = policy.decide(form, test)
    if (decision.skip !== undefined) {
      result.skipped++
      bump(result.skips, decision.skip)
      continue
    }
    if (decision.relaxed !== undefined) bump(result.relaxed, decision.relaxed)
    const exit = runTest(h, test, decision, policy, diffs)
    if (diffs.length === 0) {
      result.passed++
      continue
    }
    result.failed++
    for (const field of new Set(diffs.map((d) => fieldClass(d.field)))) bump(result.failedFields, field)
    if (result.failures.length < keepFailures)
      result.failures.push({
        form,
        index,
        name: test.name,
        hash: test.hash,
        bytes: test.bytes,
        initial: test.initial.regs,
        exception: test.exception?.number,
        exit: exitName(exit),
        diffs: diffs.slice()
      })
  }
  return result
}

/** Run every form of a directory (or those matching `form`). Throws VectorDirError for a bad directory. */
export const runDirectory = async (options: RunOptions): Promise<SuiteResult> => {
  const forms = listForms(options.dir).filter((f) => options.form === undefined || formMatches(f, options.form))
  if (forms.length === 0) throw new VectorDirError(`conformance: no form matching "${options.form}" in ${options.dir}`)
  const h = makeHarness(options.makeCpu, options.budget)
  const results: Array<FormResult> = []
  const skips: Record<string, number> = {}
  const relaxed: Record<string, number> = {}
  let passed = 0
  let failed = 0
  let skipped = 0
  for (const form of forms) {
    const r = await runForm(h, join(options.dir, `${form}.jsonl.gz`), form, options.policy, options.keepFailures)
    results.push(r)
    passed += r.passed
    failed += r.failed
    skipped += r.skipped
    for (const [k, n] of Object.entries(r.skips)) skips[k] = (skips[k] ?? 0) + n
    for (const [k, n] of Object.entries(r.relaxed)) relaxed[k] = (relaxed[k] ?? 0) + n
    options.onForm?.(r)
  }
  return { dir: options.dir, forms: results, passed, failed, skipped, skips, relaxed }
}

/** Pass rate of the tests that ran (1 when none ran). */
export const passRate = (r: { passed: number; failed: number }): number =>
  r.passed + r.failed === 0 ? 1 : r.passed / (r.passed + r.failed)

/** One line per difference: `ax: expected 0x1234, got 0x1235`. */
export const formatDiff = (d: Diff): string => {
  const digits = d.field.startsWith("ram[") ? 2 : d.field.endsWith(".base") ? 5 : 4
  const masked = d.mask !== 0xffff && d.mask !== 0xff && d.mask !== 0xffffffff ? ` (mask 0x${hex(d.mask, 4)})` : ""
  if (d.field === "exit") return `exit: expected ${exitName(d.expected)}, got ${exitName(d.actual)}`
  return `${d.field}: expected 0x${hex(d.expected, digits)}, got 0x${hex(d.actual >>> 0, digits)}${masked}`
}

// ---------------------------------------------------------------------------
// The report

const hex2 = (n: number): string => hex(n, 2)
const hex4 = (n: number): string => hex(n, 4)

export interface ReportOptions {
  /** add each kept failure: test, bytes, initial registers, the diff */
  readonly verbose: boolean
  /** text of each skip and relaxation reason key */
  readonly reasons?: Readonly<Record<string, string>>
  /** pass rate (of tests that ran) the suite must reach, printed with the rate */
  readonly threshold?: number
  /** disassembly of a failing test's bytes, when a disassembler is available */
  readonly disassemble?: (bytes: ReadonlyArray<number>, ip: number) => string
}

/** A failing test, as a few indented lines: name, bytes, start, initial registers, the diff. */
export const describeFailure = (f: TestFailure, options: Pick<ReportOptions, "disassemble"> = {}): string => {
  const r = f.initial
  const lines = [
    `    #${f.index} ${f.name}${f.hash === undefined ? "" : `  (${f.hash.slice(0, 12)})`}`,
    `    bytes ${f.bytes.map(hex2).join(" ")}  at ${hex4(r.cs)}:${hex4(r.ip)}` +
      (f.exception === undefined ? "" : `  expects exception ${f.exception}`) +
      `  cpu exit ${f.exit}`
  ]
  if (options.disassemble !== undefined) lines.push(`    disasm ${options.disassemble(f.bytes, r.ip)}`)
  lines.push(
    `    initial ax=${hex4(r.ax)} bx=${hex4(r.bx)} cx=${hex4(r.cx)} dx=${hex4(r.dx)} sp=${hex4(r.sp)} bp=${hex4(r.bp)}` +
      ` si=${hex4(r.si)} di=${hex4(r.di)} ds=${hex4(r.ds)} es=${hex4(r.es)} ss=${hex4(r.ss)} flags=${hex4(r.flags)}`,
    ...f.diffs.slice(0, 12).map((d) => `      ${formatDiff(d)}`)
  )
  if (f.diffs.length > 12) lines.push(`      ... ${f.diffs.length - 12} more`)
  return lines.join("\n")
}

const summaryOf = (f: TestFailure): string =>
  `#${f.index} ${f.name}: ${f.diffs
    .slice(0, 3)
    .map((d) => d.field)
    .join(", ")}${f.diffs.length > 3 ? ", ..." : ""}`

/** The per-form table, the skip reasons and, last, the line `N passed, N failed, N skipped`. */
export const formatReport = (result: SuiteResult, options: ReportOptions): string => {
  const out: Array<string> = [`vectors: ${result.dir}`, "form     passed  failed  skipped  first failure"]
  for (const r of result.forms) {
    const first = r.failures[0]
    const counts = `${String(r.passed).padStart(6)}  ${String(r.failed).padStart(6)}  ${String(r.skipped).padStart(7)}`
    out.push(`${r.form.padEnd(8)} ${counts}  ${first === undefined ? "" : summaryOf(first)}`.trimEnd())
    if (options.verbose) for (const f of r.failures) out.push(describeFailure(f, options))
  }
  for (const [title, counts] of [
    ["skipped, by reason:", result.skips],
    ["run with a relaxed comparison, by reason:", result.relaxed]
  ] as const) {
    const reasons = Object.entries(counts)
    if (reasons.length > 0) out.push(title)
    for (const [key, n] of reasons) out.push(`  ${String(n).padStart(6)}  ${key}: ${options.reasons?.[key] ?? key}`)
  }
  const failing = result.forms.filter((r) => r.failed > 0).length
  const threshold = options.threshold === undefined ? "" : ` (threshold ${(options.threshold * 100).toFixed(1)}%)`
  out.push(
    `pass rate ${(passRate(result) * 100).toFixed(2)}% of ${result.passed + result.failed} run${threshold};` +
      ` ${failing} of ${result.forms.length} forms with failures`,
    `${result.passed} passed, ${result.failed} failed, ${result.skipped} skipped`
  )
  return out.join("\n")
}
