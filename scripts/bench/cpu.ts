/**
 * `bench cpu`: guest MIPS of the interpreter on the compute loops, each run
 * for a fixed instruction count on a flat 32-bit protected-mode pCPU with
 * no devices. Wall time is measured here in scripts/ (the only layer allowed
 * to read it); best of `repeats` runs is reported. Peers (v86, QEMU TCG) are
 * added by the benchmark issue, measured in the same run.
 */
import { flatMemory, noPorts } from "../../hw/cpu/bus.ts"
import { Cpu } from "../../hw/cpu/cpu.ts"
import { type CpuState, RunExit } from "../../hw/cpu/state.ts"
import { type ComputeGuest, computeGuests, GUEST_CODE } from "./guests.ts"

export interface CpuBenchRow {
  readonly guest: string
  readonly instructions: number
  readonly bestMs: number
  readonly mips: number
}

const flatSegment = (selector: number, access: number) => ({ selector, base: 0, limit: 0xffffffff, access })

/** A pCPU in flat 32-bit protected mode (ring 0), code at GUEST_CODE. */
export const flatProtectedCpu = (memoryBytes: number): Cpu => {
  const cpu = new Cpu(flatMemory(memoryBytes), noPorts)
  const s: CpuState = cpu.getState()
  s.cr0 = 0x11
  s.cs = flatSegment(0x08, 0xc09b)
  s.ss = s.ds = s.es = s.fs = s.gs = flatSegment(0x10, 0xc093)
  s.eip = GUEST_CODE
  cpu.setState(s)
  return cpu
}

/** Run one guest for `iterations` loop iterations; returns instructions retired and wall milliseconds. */
export const runGuestOnce = (
  cpu: Cpu,
  guest: ComputeGuest,
  iterations: number
): { instructions: number; ms: number } => {
  cpu.mem.ram.set(guest.bytes, GUEST_CODE)
  const s = cpu.getState()
  s.eip = GUEST_CODE
  s.ecx = iterations
  s.eax = 1
  s.ebx = 0x9e3779b9
  s.halted = false
  cpu.setState(s)
  const before = cpu.instructions
  const start = performance.now()
  for (;;) {
    const exit = cpu.run(1_000_000)
    if (exit === RunExit.Halt) break
    if (exit !== RunExit.Budget) throw new Error(`bench guest ${guest.name} stopped with exit ${exit}`)
  }
  return { instructions: cpu.instructions - before, ms: performance.now() - start }
}

export const benchCpu = (options: { instructions: number; repeats: number }): Array<CpuBenchRow> =>
  computeGuests.map((guest) => {
    const cpu = flatProtectedCpu(16 << 20)
    const iterations = Math.max(1, Math.round(options.instructions / guest.perIteration))
    runGuestOnce(cpu, guest, Math.min(iterations, 200_000)) // warm up the JIT
    let best = Number.POSITIVE_INFINITY
    let instructions = 0
    for (let i = 0; i < options.repeats; i++) {
      const r = runGuestOnce(cpu, guest, iterations)
      best = Math.min(best, r.ms)
      instructions = r.instructions
    }
    return { guest: guest.name, instructions, bestMs: best, mips: instructions / best / 1000 }
  })

export const formatCpuBench = (rows: ReadonlyArray<CpuBenchRow>): string => {
  const lines = ["guest    instructions   best ms    MIPS"]
  for (const r of rows) {
    lines.push(
      `${r.guest.padEnd(8)} ${String(r.instructions).padStart(12)} ${r.bestMs.toFixed(1).padStart(9)} ${r.mips.toFixed(1).padStart(7)}`
    )
  }
  return lines.join("\n")
}
