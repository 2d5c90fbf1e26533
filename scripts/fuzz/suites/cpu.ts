/**
 * Fuzz suite `cpu` (issue 8): robustness of the hw/cpu interpreter on
 * arbitrary code. Whatever the bytes, `run` ends in an architectural outcome (a fault, a double fault, shutdown,
 * HLT, the budget) and never in a host exception ("all guest-reachable paths
 * end in an architectural fault", cpu.ts; STYLE.md "guest faults are data").
 *
 * A program is 1..64 bytes, either uniform random or built from pieces that
 * reach the interesting decoder and system paths: prefixes, the 0F 00 / 0F 01
 * system groups, MOV CRn/DRn, WRMSR/RDMSR, far JMP/CALL/RET, segment loads,
 * INT n, IRET, string instructions with REP, each followed by random ModRM,
 * SIB, displacement and immediate bytes. RAM is filled with the program,
 * repeated, so every jump lands in more of it. It runs for 2,000
 * instructions, in slices, waking from HLT with an NMI a few times, in
 *   (a) real mode, the IVT being either the random bytes or vectors into the program;
 *   (b) flat 32-bit protected mode, with a GDT and an IDT whose gates lead back
 *       into the program, or with the IDT register pointing at garbage; and
 *       sometimes paging on (SDM Vol. 3A 4.3), RAM identity-mapped through a
 *       page table with random P/RW/US/A/D/G bits, every other page-directory
 *       and page-table entry being the random bytes (CR4.PSE and PGE random).
 *
 * Checked after every run:
 *   - no JS exception escapes `run`, which returns a RunExit;
 *   - the state record is well formed (uint32 registers, EFLAGS reserved
 *     bits as SDM Vol. 1 3.4.3 fixes them, numeric segment caches);
 *   - machine memory is touched only through RAM and the bus: every bus
 *     access is to a non-RAM address with a valid size and value, and (runs
 *     on the guarded memory) the backing array's upper half, declared MMIO,
 *     still holds its fill; runs on the unguarded memory, whose array is
 *     exactly the RAM, catch stray accesses past it as host exceptions;
 * and determinism: the same program on two fresh CPUs, and on a CPU reused
 * after `reset()` + `setState()`, ends in the same state, RAM and bus log.
 */
import { Buffer } from "node:buffer"
import fc from "fast-check"
import type { IoPorts } from "../../../hw/cpu/bus.ts"
import { Cpu } from "../../../hw/cpu/cpu.ts"
import { disassembleAll } from "../../../hw/cpu/disasm.ts"
import { type CpuState, RunExit, type SegmentState } from "../../../hw/cpu/state.ts"
import type { FuzzSuite } from "../campaign.ts"
import {
  CODE,
  flatProtectedState,
  IDT,
  type Mode,
  put32,
  type RecordingMemory,
  realModeState,
  recordingMemory,
  writeFlatGdt,
  writeIdtGate,
  writeIvt
} from "../cpu/machine.ts"

/** 256 KiB of RAM; real-mode addresses above it (up to 0x10FFEF) and the rest of 4 GiB are unmapped. */
export const RAM = 0x40000
const BUDGET = 2000
const SLICE = 250
const CYCLE_CAP = 400_000
/** HLT wake-ups by NMI per run. */
const WAKES = 3
const GUARD_FILL = 0xa5
const guard = Buffer.alloc(RAM, GUARD_FILL)

/** Ports that decode nothing, deterministic (the run must be reproducible). */
export const ports: IoPorts = {
  in: (_port, size) => (size === 4 ? 0xffffffff : size === 2 ? 0xffff : 0xff),
  out: () => {}
}

export interface Program {
  readonly mode: Mode
  readonly bytes: Uint8Array
  /** EAX..EDI */
  readonly regs: ReadonlyArray<number>
  readonly eflags: number
  /** Real mode: the IVT points into the program (else it is the random bytes). Protected mode: the IDT has gates into the program (else IDTR points at garbage). */
  readonly tables: boolean
  /** Offsets into the program for the 32 exception vectors. */
  readonly entries: ReadonlyArray<number>
  /** IDTR when `tables` is false in protected mode. */
  readonly idtr: { readonly base: number; readonly limit: number }
  /** Run on the guarded memory (see recordingMemory). */
  readonly guarded: boolean
  /** Protected mode only: CR0.PG, with CR0.WP, CR4.PSE and CR4.PGE from `pagingBits`. */
  readonly paging: boolean
  readonly pagingBits: number
}

const describeProgram = (p: Program): string =>
  [
    `${p.mode === "pm32" ? "32-bit protected mode" : "real mode"}, ${p.bytes.length} bytes at ${CODE.toString(16)}, ${
      p.tables ? "tables into the program" : "garbage tables"
    }:`,
    ...disassembleAll(p.bytes, CODE, p.mode === "pm32").map((l) => `    ${l}`),
    `  regs ${p.regs.map((r) => r.toString(16)).join(" ")}  eflags ${p.eflags.toString(16)}`,
    `  entries ${p.entries.join(",")}  idtr ${p.idtr.base.toString(16)}/${p.idtr.limit.toString(16)}  ${
      p.guarded ? "guarded" : "exact"
    } memory${p.mode === "pm32" && p.paging ? `  paging ${p.pagingBits.toString(16)}` : ""}`
  ].join("\n")

// ---------------------------------------------------------------------------
// Loading and running

/** Fill RAM with the program repeated (it starts at CODE), the guard with its pattern; build the tables. */
function load(memory: RecordingMemory, p: Program, reset: CpuState): CpuState {
  const ram = memory.ram
  const n = p.bytes.length
  for (let at = 0; at < n; at++) ram[at] = p.bytes[(((at - CODE) % n) + n) % n]!
  for (let len = n; len < RAM; len *= 2) ram.copyWithin(len, 0, Math.min(len, RAM - len))
  if (ram.length > RAM) ram.fill(GUARD_FILL, RAM)
  memory.accesses.length = 0
  const entry = (v: number): number => CODE + (p.entries[v % p.entries.length]! % n)
  if (p.mode === "real") {
    if (p.tables) for (let v = 0; v < 256; v++) writeIvt(ram, v, 0, entry(v))
    return { ...realModeState(reset, CODE, p.regs[4]!, p.eflags), ...regsOf(p) }
  }
  writeFlatGdt(ram)
  if (p.tables) for (let v = 0; v < 32; v++) writeIdtGate(ram, v, entry(v))
  const s = { ...flatProtectedState(reset, CODE, p.regs[4]!, p.eflags), ...regsOf(p) }
  const idtr = p.tables ? { base: IDT, limit: 32 * 8 - 1 } : p.idtr
  if (!p.paging) return { ...s, idtr }
  writePageTables(ram, p.pagingBits)
  const wp = (p.pagingBits & 1) !== 0 ? 1 << 16 : 0
  const cr0 = (s.cr0 | 0x80000000 | wp) >>> 0
  return { ...s, idtr, cr0, cr3: PAGE_DIRECTORY, cr4: p.pagingBits & (CR4_PSE | CR4_PGE) }
}

const PAGE_DIRECTORY = 0x20000
const PAGE_TABLE = 0x21000
const CR4_PSE = 1 << 4
const CR4_PGE = 1 << 7

/**
 * PDE 0 -> PAGE_TABLE, whose first RAM/4K entries map RAM one to one with
 * flags from a small LCG over `seed` (P in 15 of 16, RW US A D G at random;
 * pages 0 and 1, the tables and the code, always present). Every other
 * entry keeps the program's bytes.
 */
function writePageTables(ram: Uint8Array, seed: number): void {
  put32(ram, PAGE_DIRECTORY, PAGE_TABLE | 0x27) // P RW US A
  let x = seed >>> 0
  for (let page = 0; page < RAM >>> 12; page++) {
    x = (Math.imul(x, 1664525) + 1013904223) >>> 0
    const present = page < 2 || x >>> 28 !== 0 ? 1 : 0
    put32(ram, PAGE_TABLE + 4 * page, ((page << 12) | ((x >>> 8) & 0x166) | present) >>> 0)
  }
}

const regsOf = (p: Program) => ({
  eax: p.regs[0]!,
  ecx: p.regs[1]!,
  edx: p.regs[2]!,
  ebx: p.regs[3]!,
  esp: p.regs[4]!,
  ebp: p.regs[5]!,
  esi: p.regs[6]!,
  edi: p.regs[7]!
})

interface Outcome {
  readonly exits: ReadonlyArray<RunExit>
  readonly state: CpuState
}

/**
 * Run for BUDGET instructions in slices of SLICE (re-entering `run` as a
 * scheduler would), waking the CPU from HLT with an NMI up to WAKES times.
 * Instructions are counted as started (a slice that ends on its budget
 * started all of its instructions, faulting ones included; after a HLT the
 * retired ones), so a program looping on a fault ends as soon as one that
 * makes progress. A repeated string instruction counts one per REP_CHUNK
 * (4096) iterations, so the run also stops after CYCLE_CAP simulated cycles
 * (one per iteration at the default cost): this bounds the host time of a
 * run. Host exceptions propagate.
 */
function execute(cpu: Cpu): Outcome {
  const exits: Array<RunExit> = []
  const startCycles = cpu.cycles
  let started = 0
  let wakes = 0
  let last: RunExit = RunExit.Budget
  while (started < BUDGET && cpu.cycles - startCycles < CYCLE_CAP) {
    const before = cpu.instructions
    const slice = Math.min(SLICE, BUDGET - started)
    last = cpu.run(slice)
    if (last === RunExit.Budget) {
      started += slice
      continue
    }
    started += cpu.instructions - before
    exits.push(last)
    if (last !== RunExit.Halt || wakes === WAKES || cpu.instructions === before) break
    wakes++
    cpu.raiseNmi()
  }
  if (last === RunExit.Budget) exits.push(last)
  return { exits, state: cpu.getState() }
}

/** Run `p` on `cpu`, turning a host exception into a report with the program and the stack. */
export function runChecked(cpu: Cpu, memory: RecordingMemory, p: Program, reset: CpuState): Outcome {
  cpu.reset()
  cpu.setState(load(memory, p, reset))
  try {
    return execute(cpu)
  } catch (e) {
    const hex = (v: number): string => (v >>> 0).toString(16)
    const where = `cs=${hex(cpu.segSel[1]!)} eip=${hex(cpu.eip)} startEip=${hex(cpu.startEip)} cr0=${hex(cpu.cr0)}`
    const stack = e instanceof Error ? (e.stack ?? e.message) : String(e)
    throw new Error(`host exception from run(): ${where}\n${describeProgram(p)}\n${stack}`)
  }
}

// ---------------------------------------------------------------------------
// Invariants

const isU32 = (v: unknown): boolean => typeof v === "number" && Number.isInteger(v) && v >= 0 && v <= 0xffffffff
const validExits = new Set<number>(Object.values(RunExit))

function segmentProblems(name: string, s: SegmentState): Array<string> {
  const problems: Array<string> = []
  if (!(Number.isInteger(s.selector) && s.selector >= 0 && s.selector <= 0xffff)) problems.push(`${name}.selector`)
  if (!isU32(s.base)) problems.push(`${name}.base`)
  if (!isU32(s.limit)) problems.push(`${name}.limit`)
  if (!(Number.isInteger(s.access) && s.access >= 0 && s.access <= 0x1ffff)) problems.push(`${name}.access`)
  return problems
}

/** Every field of the record a number of the right range (or a boolean where it is one). */
function stateProblems(s: CpuState): Array<string> {
  const problems: Array<string> = []
  const words = ["eax", "ecx", "edx", "ebx", "esp", "ebp", "esi", "edi", "eip", "eflags", "cr0", "cr2", "cr3", "cr4"]
  for (const k of words) if (!isU32(s[k as keyof CpuState])) problems.push(`${k}=${String(s[k as keyof CpuState])}`)
  // SDM Vol. 1 3.4.3: bit 1 reads 1; bits 3, 5, 15 and 22-31 are reserved (0)
  if (isU32(s.eflags) && ((s.eflags & 2) === 0 || (s.eflags & 0xffc08028) !== 0))
    problems.push(`eflags reserved bits: ${s.eflags.toString(16)}`)
  for (const seg of ["es", "cs", "ss", "ds", "fs", "gs", "ldtr", "tr"] as const)
    problems.push(...segmentProblems(seg, s[seg]))
  for (const t of ["gdtr", "idtr"] as const) {
    if (!isU32(s[t].base)) problems.push(`${t}.base`)
    if (!(Number.isInteger(s[t].limit) && s[t].limit >= 0 && s[t].limit <= 0xffff)) problems.push(`${t}.limit`)
  }
  if (s.dr.length !== 8 || !s.dr.every(isU32)) problems.push(`dr=${s.dr.join(",")}`)
  for (const [k, v] of Object.entries(s.msr)) if (!isU32(v)) problems.push(`msr.${k}`)
  // an integer, not necessarily a safe one: WRMSR can load any 64-bit TSC (see the skipped BUG test below)
  if (!(Number.isInteger(s.tsc) && s.tsc >= 0)) problems.push(`tsc=${s.tsc}`)
  if (typeof s.halted !== "boolean" || typeof s.a20 !== "boolean") problems.push("halted/a20")
  return problems
}

function memoryProblems(memory: RecordingMemory): Array<string> {
  const problems: Array<string> = []
  const guarded = memory.ram.length > RAM
  if (guarded && !Buffer.from(memory.ram.buffer, memory.ram.byteOffset + RAM, RAM).equals(guard))
    problems.push("the MMIO guard above RAM was written directly")
  for (const a of memory.accesses) {
    const sizeOk = a.size === 1 || a.size === 2 || a.size === 4
    const valueOk = Number.isInteger(a.value) && a.value >= 0 && a.value < 2 ** (8 * a.size)
    if (!isU32(a.address) || a.address < RAM || !sizeOk || (a.write && !valueOk))
      problems.push(`bus ${a.write ? "write" : "read"} ${JSON.stringify(a)}`)
  }
  return problems
}

// ---------------------------------------------------------------------------
// Generators

const word = fc.oneof(
  fc.integer({ min: 0, max: 0xffffffff }),
  fc.constantFrom(0, 0xffff, 0x8000, 0x7ff0, 0xfffffffc, 0x3000, 0x10000),
  fc.integer({ min: 0, max: 0xffff })
)
/** A byte from the values that make good selectors, counts, vectors and ModRMs, or any byte. */
const tailByte = fc.oneof(
  { arbitrary: fc.integer({ min: 0, max: 0xff }), weight: 4 },
  {
    arbitrary: fc.constantFrom(0x00, 0x08, 0x0b, 0x10, 0x13, 0x18, 0x1b, 0x23, 0xff, 0xc0, 0x04, 0x05, 0x24),
    weight: 1
  }
)
const prefix = fc.constantFrom(0x26, 0x2e, 0x36, 0x3e, 0x64, 0x65, 0x66, 0x67, 0xf0, 0xf2, 0xf3)
/** Opcodes (with their 0F escape) that reach the system, segment, control-transfer and string paths. */
const opcode = fc.oneof(
  fc.integer({ min: 0, max: 0xff }).map((b) => [b]),
  fc
    .constantFrom(0x00, 0x01, 0x02, 0x03, 0x06, 0x08, 0x09, 0x0b, 0x20, 0x21, 0x22, 0x23, 0x30, 0x31, 0x32, 0x34, 0x35)
    .map((b) => [0x0f, b]),
  fc.constantFrom(0xa0, 0xa1, 0xa2, 0xa8, 0xa9, 0xb2, 0xb4, 0xb5, 0xc7, 0xaf, 0xa3, 0xab).map((b) => [0x0f, b]),
  // far JMP/CALL/RET, segment loads and pops, INT n / INT3 / INTO, IRET, HLT, CLI/STI, POPF, I/O
  fc
    .constantFrom(
      0xea,
      0x9a,
      0xca,
      0xcb,
      0x8e,
      0x07,
      0x17,
      0x1f,
      0xc4,
      0xc5,
      0xcd,
      0xcc,
      0xce,
      0xcf,
      0xf4,
      0xfa,
      0xfb,
      0x9d,
      0xe4,
      0xe6,
      0xec,
      0xee
    )
    .map((b) => [b]),
  // indirect far CALL/JMP (FF /3 /5) and the string instructions
  fc
    .constantFrom(0xff, 0xa4, 0xa5, 0xa6, 0xa7, 0xaa, 0xab, 0xac, 0xad, 0xae, 0xaf, 0x6c, 0x6d, 0x6e, 0x6f)
    .map((b) => [b])
)
const piece = fc
  .tuple(fc.array(prefix, { maxLength: 3 }), opcode, fc.array(tailByte, { maxLength: 8 }))
  .map(([p, o, t]) => [...p, ...o, ...t])
export const structured = fc
  .array(piece, { minLength: 1, maxLength: 12 })
  .map((pieces) => Uint8Array.from(pieces.flat().slice(0, 64)))
export const uniform = fc.uint8Array({ minLength: 1, maxLength: 64 })

/** EFLAGS: any arithmetic flags, DF, IF, TF now and then (single-step traps), IOPL. */
const eflagsArb = fc
  .integer({ min: 0, max: 0xffff })
  .map((v) => (2 | (v & (0x08d5 | 0x0400 | 0x0200 | 0x0100 | 0x3000))) >>> 0)

export const programArb = (mode: Mode, bytes: fc.Arbitrary<Uint8Array>): fc.Arbitrary<Program> =>
  fc
    .record({
      bytes,
      regs: fc.array(word, { minLength: 8, maxLength: 8 }),
      eflags: eflagsArb,
      tables: fc.boolean(),
      entries: fc.array(fc.nat(63), { minLength: 1, maxLength: 8 }),
      idtr: fc.record({ base: word, limit: fc.integer({ min: 0, max: 0xffff }) }),
      guarded: fc.boolean(),
      paging: fc.boolean(),
      pagingBits: fc.integer({ min: 0, max: 0xffffffff })
    })
    .map((p) => {
      const program: Program = { mode, ...p }
      return Object.assign(program, { [fc.toStringMethod]: () => describeProgram(program) })
    })

// ---------------------------------------------------------------------------

/** One shared CPU per memory layout; each run starts with reset() + setState(). */
const machines = [true, false].map((guarded) => {
  const memory = recordingMemory(RAM, guarded)
  const cpu = new Cpu(memory, ports)
  return { memory, cpu, resetState: cpu.getState() }
})
export const machineFor = (p: Program) => machines[p.guarded ? 0 : 1]!

export function robust(p: Program): void {
  const { memory, cpu, resetState } = machineFor(p)
  const { exits, state } = runChecked(cpu, memory, p, resetState)
  const problems = [
    ...exits.filter((e) => !validExits.has(e)).map((e) => `run returned ${String(e)}`),
    ...stateProblems(state),
    ...memoryProblems(memory)
  ]
  if (problems.length > 0)
    throw new Error(`${describeProgram(p)}\n  exits ${exits.join(",")}\n  ${problems.join("\n  ")}`)
}

export const cpuSuite: FuzzSuite<Program> = {
  name: "cpu",
  description:
    "random and structured code in real and 32-bit protected mode (paging on or off): no host exception, well-formed state, RAM-only writes",
  arbitrary: fc.oneof(
    programArb("real", uniform),
    programArb("real", structured),
    programArb("pm32", uniform),
    programArb("pm32", structured)
  ),
  ciRuns: 3600,
  check: async (p) => robust(p),
  render: describeProgram
}
