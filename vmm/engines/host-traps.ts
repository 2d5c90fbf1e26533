/**
 * Running a guest on a pCPU whose every event returns to the monitor
 * (`Cpu.hostTraps`: the `bt` and `pv` engines, DESIGN.md): the pCPU runs in
 * budgets of whole instructions until the slice's deadline or a trap.
 */
import type { Cpu } from "../../hw/cpu/cpu.ts"
import { RunExit } from "../../hw/cpu/state.ts"

/**
 * Run `cpu` until `deadline` (cycles) or an event for the monitor. Returns
 * RunExit.Budget when the deadline came, RunExit.Trap for a trap (its
 * vector, kind and error in cpu.trap*), or whatever else stopped the pCPU.
 * `retired` is told how many guest instructions each budget retired.
 */
export function runUntilTrap(cpu: Cpu, deadline: number, retired: (count: number) => void): RunExit {
  const perInstruction = Math.max(1, cpu.maxOpCycles)
  for (;;) {
    const left = deadline - cpu.cycles
    if (left <= 0) return RunExit.Budget
    const before = cpu.instructions
    let exit: RunExit = cpu.run(Math.max(1, Math.floor(left / perInstruction)))
    retired(cpu.instructions - before)
    if (exit === RunExit.Budget && cpu.exitCode >= 0) {
      // the budget's last instruction trapped (its trap waits for the next event check): it is this run's
      exit = cpu.exitCode as RunExit
      cpu.exitCode = -1
    }
    if (exit !== RunExit.Budget) return exit
  }
}
