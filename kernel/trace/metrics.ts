/**
 * Kernel metrics as Effect Metrics (counters and histograms with attributes),
 * the numbers `esxtop` would show: VM exits per VM and per exit reason,
 * quanta dispatched, world run time.
 */
import { Effect, Metric } from "effect"

export const vmExits = Metric.counter("fibervisor_vm_exits", {
  description: "VM exits handled, by VM and exit reason",
  incremental: true
})

export const quantaDispatched = Metric.counter("fibervisor_quanta", {
  description: "quanta dispatched to worlds, by pCPU",
  incremental: true
})

export const worldRunCycles = Metric.histogram("fibervisor_world_run_cycles", {
  description: "simulated cycles a world used per quantum",
  boundaries: [1_000, 10_000, 100_000, 1_000_000, 10_000_000]
})

export const countVmExit = (vm: string, reason: number) =>
  Metric.update(Metric.withAttributes(vmExits, { vm, reason: String(reason) }), 1)

export const countQuantum = (pcpu: number, cycles: number) =>
  Effect.all([
    Metric.update(Metric.withAttributes(quantaDispatched, { pcpu: String(pcpu) }), 1),
    Metric.update(worldRunCycles, cycles)
  ])
