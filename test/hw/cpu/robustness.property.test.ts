/**
 * Robustness of the hw/cpu interpreter on arbitrary code (the fuzz suite
 * `cpu`, scripts/fuzz/suites/cpu.ts, where the generators and checks are
 * described): CI-sized runs with fixed seeds, per mode and generator, and
 * determinism (two fresh CPUs, and a CPU reused after reset() + setState(),
 * agree). `npm run fuzz -- --suite cpu --runs N` runs long campaigns.
 */
import { Buffer } from "node:buffer"
import { describe, expect, it } from "@effect/vitest"
import fc from "fast-check"
import { Cpu } from "../../../hw/cpu/cpu.ts"
import { RunExit } from "../../../hw/cpu/state.ts"
import { CODE, realModeState, recordingMemory } from "../../../scripts/fuzz/cpu/machine.ts"
import {
  machineFor,
  type Program,
  ports,
  programArb,
  RAM,
  robust,
  runChecked,
  structured,
  uniform
} from "../../../scripts/fuzz/suites/cpu.ts"

/** CPU_PROPERTY_SCALE=N multiplies every numRuns (a longer soak; the seeds stay fixed). */
const runs = (n: number): number => n * Number(process.env.CPU_PROPERTY_SCALE ?? 1)

describe("the CPU on arbitrary code", () => {
  for (const mode of ["real", "pm32"] as const) {
    const name = mode === "real" ? "real mode" : "32-bit protected mode"
    it(`${name}, uniform random bytes: no host exception, well-formed state, RAM-only writes`, () => {
      fc.assert(
        fc.property(programArb(mode, uniform), (p) => robust(p)),
        { seed: mode === "real" ? 0x0b0501 : 0x0b0502, numRuns: runs(1000) }
      )
    })

    it(`${name}, prefixes + system/segment/far/string opcodes: no host exception, well-formed state`, () => {
      fc.assert(
        fc.property(programArb(mode, structured), (p) => robust(p)),
        { seed: mode === "real" ? 0x0b0503 : 0x0b0504, numRuns: runs(800) }
      )
    })
  }

  it("is deterministic: two fresh CPUs, and a CPU reused after reset() + setState(), agree", () => {
    const program = fc.oneof(
      programArb("real", uniform),
      programArb("real", structured),
      programArb("pm32", uniform),
      programArb("pm32", structured)
    )
    const fresh = (p: Program) => {
      const m = recordingMemory(RAM, p.guarded)
      const c = new Cpu(m, ports)
      const out = runChecked(c, m, p, c.getState())
      return { out, ram: Buffer.from(m.ram), bus: [...m.accesses] }
    }
    fc.assert(
      fc.property(program, (p) => {
        const a = fresh(p)
        const b = fresh(p)
        // the shared CPU has run other programs before this one
        const { memory, cpu, resetState } = machineFor(p)
        const out = runChecked(cpu, memory, p, resetState)
        const c = { out, ram: Buffer.from(memory.ram), bus: [...memory.accesses] }
        for (const [label, other] of [
          ["second fresh CPU", b],
          ["reused CPU", c]
        ] as const) {
          expect(other.out, label).toEqual(a.out)
          expect(other.ram.equals(a.ram), `${label}: RAM`).toBe(true)
          expect(other.bus, `${label}: bus accesses`).toEqual(a.bus)
        }
      }),
      { seed: 0x0b0505, numRuns: runs(150) }
    )
  })
})

describe("found by these properties", () => {
  // Found by the structured real-mode property at CPU_PROPERTY_SCALE=15, shrunk to `0f 30` (wrmsr)
  // with ECX = 10H, EDX:EAX = 00200000:00000000: the TSC was kept as a float offset, so a value at or
  // above 2^53 lost its low bits and RDTSC returned the same value twice (SDM Vol. 3B 17.17 promises
  // "a monotonically increasing unique value"). Fixed by following the same section for this P6-family
  // CPU: WRMSR writes the low 32 bits and clears the high 32.
  it("RDTSC keeps counting after WRMSR loads a TSC of 2^60", () => {
    const memory = recordingMemory(RAM, false)
    const cpu = new Cpu(memory, ports)
    // mov ecx, 0x10; mov edx, 0x10000000; xor eax, eax; wrmsr; rdtsc; mov ebx, eax; mov esi, edx; nop; rdtsc; hlt
    const code = [
      [0x66, 0xb9, 0x10, 0, 0, 0],
      [0x66, 0xba, 0, 0, 0, 0x10],
      [0x66, 0x31, 0xc0],
      [0x0f, 0x30],
      [0x0f, 0x31],
      [0x66, 0x89, 0xc3],
      [0x66, 0x89, 0xd6],
      [0x90],
      [0x0f, 0x31],
      [0xf4]
    ].flat()
    memory.ram.set(code, CODE)
    cpu.setState(realModeState(cpu.getState(), CODE, 0x8000, 2))
    expect(cpu.run(100)).toBe(RunExit.Halt)
    const s = cpu.getState()
    const first = (BigInt(s.esi) << 32n) | BigInt(s.ebx)
    const second = (BigInt(s.edx) << 32n) | BigInt(s.eax)
    // SDM 3B 17.17: before family 0FH models 03H/04H (this CPU is family 6), WRMSR writes only the
    // low 32 bits of the TSC and clears the high 32, so the 2^60 written here reads back small
    expect(first >> 32n).toBe(0n)
    expect(second > first, `${first.toString(16)} then ${second.toString(16)}`).toBe(true)
  })
})
