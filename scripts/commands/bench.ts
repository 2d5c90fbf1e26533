/**
 * `fibervisor bench NAME`: benchmarks. Speed claims live here, never in timed
 * unit tests. Filled in by the CPU issue (`cpu`) and the benchmark issue.
 */
import { Command } from "effect/cli"
import { failWithMessage } from "./user-error.ts"

export const bench = Command.make("bench", {}, () => failWithMessage("fibervisor bench: no benchmarks yet", 1)).pipe(
  Command.withDescription("Run benchmarks and print guest MIPS and ratios against peers")
)
