/**
 * The run loop's written-out instruction forms (hw/cpu/exec.ts) against the
 * handler table they shortcut: the same random 32-bit instruction stream runs
 * twice on a flat protected-mode Cpu, once as is (the forms exec.ts writes out
 * take the inline path) and once with a DS segment-override prefix (3E) on
 * every instruction, which in the flat model changes nothing but sends every
 * instruction through the prefix handler to its table handler. Registers,
 * EFLAGS, memory, the bus accesses, the cycles charged (Prefix class at 0
 * cycles, every other class a distinct cost) and the instructions retired
 * must agree.
 *
 * Branches go forward to another instruction of the stream (or the final
 * HLT); their displacements are encoded per layout. Memory operands are
 * absolute addresses in the data area (RAM) or scaled-index addresses from
 * random registers (mostly unmapped: they exercise the bus path). Seeds are
 * fixed: a failure reproduces as is.
 */
import { describe, expect, it } from "@effect/vitest"
import fc from "fast-check"
import { Cpu } from "../../../hw/cpu/cpu.ts"
import { disassembleAll } from "../../../hw/cpu/disasm.ts"
import { type CpuState, RunExit } from "../../../hw/cpu/state.ts"
import {
  CODE,
  DATA,
  flatProtectedState,
  recordingMemory,
  STACK,
  writeFlatGdt
} from "../../../scripts/fuzz/cpu/machine.ts"

/** One instruction: its bytes, or a branch to the instruction `target` positions ahead (0: the next one). */
type Insn =
  | { readonly kind: "plain"; readonly bytes: ReadonlyArray<number> }
  | { readonly kind: "branch"; readonly opcode: ReadonlyArray<number>; readonly rel32: boolean; readonly skip: number }

const le = (v: number, n: number): Array<number> => Array.from({ length: n }, (_, i) => (v >>> (8 * i)) & 0xff)

const reg = fc.integer({ min: 0, max: 7 })
/** A destination register: anything but ESP (a random stack pointer could read the code, which differs by layout). */
const dst = reg.filter((r) => r !== 4)
const word = fc.oneof(
  fc.constantFrom(0, 1, 2, 0x7f, 0x80, 0xff, 0x7fffffff, 0x80000000, 0xffffffff, 0xfffffffe),
  fc.integer({ min: 0, max: 0xffffffff })
)

/** A page left not present when the case runs with paging. */
const HOLE = 0x5000
const PAGE_DIRECTORY = 0xa000

/** A memory ModRM (+ SIB, displacement) for register field `g`. */
const memOperand = (g: number): fc.Arbitrary<Array<number>> =>
  fc.oneof(
    // [disp32] in the data area
    fc.integer({ min: 0, max: 0x3c }).map((off) => [0x05 | (g << 3), ...le(DATA + off * 4, 4)]),
    // [disp32] in the page that is not present under paging (#PF), plain RAM otherwise
    fc.integer({ min: 0, max: 0x3c }).map((off) => [0x05 | (g << 3), ...le(HOLE + off * 4, 4)]),
    // [index*scale + disp32] (SIB, no base): the memory loop's form
    fc
      .tuple(fc.integer({ min: 0, max: 3 }), reg, fc.integer({ min: 0, max: 0x3c }))
      .filter(([, index]) => index !== 4)
      .map(([scale, index, off]) => [0x04 | (g << 3), (scale << 6) | (index << 3) | 5, ...le(DATA + off * 4, 4)])
  )

/** Any memory ModRM form (for LEA, which computes the address without touching memory). */
const anyMemOperand = (g: number): fc.Arbitrary<Array<number>> =>
  fc
    .tuple(fc.integer({ min: 0, max: 2 }), fc.integer({ min: 0, max: 7 }), fc.integer({ min: 0, max: 0xff }), word)
    .map(([mod, rm, sib, disp]) => {
      const bytes = [(mod << 6) | (g << 3) | rm]
      if (rm === 4) bytes.push(sib)
      if (mod === 1) bytes.push(disp & 0xff)
      else if (mod === 2 || (mod === 0 && (rm === 5 || (rm === 4 && (sib & 7) === 5)))) bytes.push(...le(disp, 4))
      return bytes
    })

const plain = (bytes: Array<number>): Insn => ({ kind: "plain", bytes })

const aluRegReg = fc
  .tuple(fc.integer({ min: 0, max: 7 }), fc.boolean(), dst, reg)
  .map(([k, ge, d, s]) => plain(ge ? [k * 8 + 3, 0xc0 | (d << 3) | s] : [k * 8 + 1, 0xc0 | (s << 3) | d]))
const aluMem = fc
  .tuple(fc.integer({ min: 0, max: 7 }), fc.boolean(), dst)
  .chain(([k, ge, g]) => memOperand(g).map((m) => plain([k * 8 + (ge ? 3 : 1), ...m])))
const test = fc.tuple(reg, reg).map(([g, e]) => plain([0x85, 0xc0 | (g << 3) | e]))
const group = fc
  .tuple(fc.boolean(), fc.integer({ min: 0, max: 7 }), dst, word)
  .map(([ib, k, e, imm]) =>
    plain(ib ? [0x83, 0xc0 | (k << 3) | e, imm & 0xff] : [0x81, 0xc0 | (k << 3) | e, ...le(imm, 4)])
  )
const incDec = fc.tuple(fc.boolean(), dst).map(([dec, r]) => plain([(dec ? 0x48 : 0x40) + r]))
const shifts = fc
  .tuple(fc.boolean(), fc.integer({ min: 0, max: 7 }), dst, fc.integer({ min: 0, max: 0xff }))
  .map(([one, k, e, n]) => plain(one ? [0xd1, 0xc0 | (k << 3) | e] : [0xc1, 0xc0 | (k << 3) | e, n]))
const movRegReg = fc
  .tuple(fc.boolean(), reg, reg)
  .map(([load, g, e]) => plain([load ? 0x8b : 0x89, 0xc0 | (g << 3) | e]))
const movMem = fc
  .tuple(fc.boolean(), dst)
  .chain(([load, g]) => memOperand(g).map((m) => plain([load ? 0x8b : 0x89, ...m])))
const movImm = fc.tuple(dst, word).map(([r, imm]) => plain([0xb8 + r, ...le(imm, 4)]))
const lea = dst.chain((g) => anyMemOperand(g).map((m) => plain([0x8d, ...m])))
const movzx = fc
  .tuple(fc.boolean(), dst, reg)
  .chain(([word16, g, e]) =>
    fc.oneof(fc.constant([0xc0 | (g << 3) | e]), memOperand(g)).map((m) => plain([0x0f, word16 ? 0xb7 : 0xb6, ...m]))
  )
const pushPop = fc
  .tuple(fc.boolean(), reg)
  .filter(([, r]) => r !== 4)
  .map(([pop, r]) => plain([(pop ? 0x58 : 0x50) + r]))
const nop = fc.constant(plain([0x90]))
const branch: fc.Arbitrary<Insn> = fc
  .tuple(fc.integer({ min: 0, max: 18 }), fc.integer({ min: 0, max: 3 }))
  .map(
    ([which, skip]): Insn =>
      which < 16
        ? { kind: "branch", opcode: [0x70 + which], rel32: false, skip }
        : which === 16
          ? { kind: "branch", opcode: [0xeb], rel32: false, skip }
          : which === 17
            ? { kind: "branch", opcode: [0xe9], rel32: true, skip }
            : { kind: "branch", opcode: [0x0f, 0x80 + ((skip * 5 + 3) % 16)], rel32: true, skip }
  )

const insnArb: fc.Arbitrary<Insn> = fc.oneof(
  aluRegReg,
  aluMem,
  test,
  group,
  incDec,
  shifts,
  movRegReg,
  movMem,
  movImm,
  lea,
  movzx,
  pushPop,
  nop,
  branch
)

interface Case {
  /** Paging on (identity over the 64 KiB, HOLE not present) with hypervisor-owned traps: faults end the run as Trap. */
  readonly paging: boolean
  readonly insns: ReadonlyArray<Insn>
  readonly regs: ReadonlyArray<number>
  readonly eflags: number
  readonly data: ReadonlyArray<number>
}

/** Lay the stream out at CODE (with `prefix` before every instruction), then HLT; `starts`: each one's offset. */
function layout(
  insns: ReadonlyArray<Insn>,
  prefix: ReadonlyArray<number>
): { readonly bytes: Array<number>; readonly starts: Array<number> } {
  const size = (i: Insn): number =>
    prefix.length + (i.kind === "plain" ? i.bytes.length : i.opcode.length + (i.rel32 ? 4 : 1))
  const starts: Array<number> = []
  let at = 0
  for (const i of insns) {
    starts.push(at)
    at += size(i)
  }
  starts.push(at) // the HLT
  const out: Array<number> = []
  insns.forEach((i, n) => {
    out.push(...prefix)
    if (i.kind === "plain") out.push(...i.bytes)
    else {
      const end = starts[n]! + size(i)
      const target = starts[Math.min(n + 1 + i.skip, insns.length)]!
      out.push(...i.opcode, ...(i.rel32 ? le(target - end, 4) : [(target - end) & 0xff]))
    }
  })
  out.push(0xf4)
  return { bytes: out, starts }
}

const assembleCase = (insns: ReadonlyArray<Insn>, prefix: ReadonlyArray<number>): Array<number> =>
  layout(insns, prefix).bytes

/** Distinct cycles per cost class, the Prefix class (14) free so a 3E prefix adds nothing. */
const classCycles = Array.from({ length: 16 }, (_, i) => (i === 14 ? 0 : 2 + i * 3))

function runCase(c: Case, prefix: ReadonlyArray<number>) {
  const memory = recordingMemory(0x10000, false)
  const ram = memory.ram
  const cpu = new Cpu(memory, { in: () => 0xffffffff, out: () => {} })
  cpu.setCosts(classCycles, 5)
  cpu.hostTraps = c.paging
  writeFlatGdt(ram)
  const { bytes: code, starts } = layout(c.insns, prefix)
  ram.set(code, CODE)
  c.data.forEach((v, i) => {
    ram.set(le(v, 4), DATA + i * 4)
  })
  const reset: CpuState = cpu.getState()
  const s = flatProtectedState(reset, CODE, STACK, c.eflags)
  if (c.paging) {
    const table = PAGE_DIRECTORY + 0x1000
    ram.set(le(table | 7, 4), PAGE_DIRECTORY)
    for (let page = 0; page < 16; page++) if (page !== HOLE >>> 12) ram.set(le((page << 12) | 7, 4), table + page * 4)
    s.cr3 = PAGE_DIRECTORY
    s.cr0 = (s.cr0 | 0x80000000) >>> 0
  }
  cpu.setState({
    ...s,
    eax: c.regs[0]!,
    ecx: c.regs[1]!,
    edx: c.regs[2]!,
    ebx: c.regs[3]!,
    ebp: c.regs[5]!,
    esi: c.regs[6]!,
    edi: c.regs[7]!
  })
  const cycles = cpu.cycles
  const exit = cpu.run(100)
  const state = cpu.getState()
  return {
    exit,
    // where it stopped, as an instruction index (past the final HLT: insns.length + 1; elsewhere: the offset)
    at: state.eip === CODE + code.length ? c.insns.length + 1 : starts.indexOf(state.eip - CODE),
    regs: [state.eax, state.ecx, state.edx, state.ebx, state.esp, state.ebp, state.esi, state.edi],
    eflags: state.eflags,
    trap: exit === RunExit.Trap ? [cpu.trapVector, cpu.trapError, state.cr2] : undefined,
    data: Array.from(ram.subarray(DATA, DATA + 0x100)),
    stack: Array.from(ram.subarray(STACK - 0x100, STACK)),
    bus: memory.accesses,
    cycles: cpu.cycles - cycles,
    instructions: cpu.instructions
  }
}

const caseArb: fc.Arbitrary<Case> = fc
  .record({
    paging: fc.boolean(),
    insns: fc.array(insnArb, { minLength: 1, maxLength: 12 }),
    regs: fc.array(word, { minLength: 8, maxLength: 8 }),
    eflags: fc.integer({ min: 0, max: 0xfff }).map((bits) => (2 | (bits & 0x8d5)) >>> 0),
    data: fc.array(word, { minLength: 64, maxLength: 64 })
  })
  .map((c) =>
    Object.assign(c, {
      [fc.toStringMethod]: () =>
        [
          `  ${c.paging ? "paging on, hypervisor-owned traps" : "paging off"}:`,
          ...disassembleAll(Uint8Array.from(assembleCase(c.insns, [])), CODE, true).map((l) => `    ${l}`),
          `  regs=${c.regs.map((v) => v.toString(16)).join(" ")} eflags=${c.eflags.toString(16)}`
        ].join("\n")
    })
  )

describe("the run loop's written-out forms (exec.ts) do what their table handlers do", () => {
  it("random 32-bit streams: as is and with a no-op prefix on every instruction, the same state", () => {
    fc.assert(
      fc.property(caseArb, (c) => {
        expect(runCase(c, [])).toEqual(runCase(c, [0x3e]))
      }),
      { seed: 0x0e0e01, numRuns: 600 }
    )
  })

  it("CALL rel32 and RET: the same registers, stack and cycles both ways", () => {
    // call f; add eax, 1; hlt; f: add eax, 2; push eax; pop ebx; ret
    const program = (prefix: Array<number>): Insn => {
      const p = prefix
      return plain([
        ...p,
        0xe8,
        ...le(p.length + 4, 4),
        ...p,
        0x83,
        0xc0,
        0x01,
        0xf4,
        ...p,
        0x83,
        0xc0,
        0x02,
        ...p,
        0x50,
        ...p,
        0x5b,
        ...p,
        0xc3
      ])
    }
    const c = (prefix: Array<number>): Case => ({
      paging: false,
      insns: [program(prefix)],
      regs: [10, 0, 0, 0, STACK, 0, 0, 0],
      eflags: 2,
      data: new Array(64).fill(0)
    })
    const inline = runCase(c([]), [])
    const table = runCase(c([0x3e]), [])
    expect(inline.regs[0]).toBe(13)
    expect(inline.regs[3]).toBe(12)
    expect(inline.regs[4]).toBe(STACK)
    expect(inline.exit).toBe(RunExit.Halt)
    expect({ ...inline, stack: undefined, at: undefined }).toEqual({ ...table, stack: undefined, at: undefined })
  })
})
