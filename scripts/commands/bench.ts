/**
 * `fibervisor bench NAME [--json]`: benchmarks. Speed claims live here,
 * never in timed unit tests. Available now: `cpu` (guest MIPS of the
 * interpreter on the ALU and memory loops) and `sched` (world switches per
 * second, Effect overhead per quantum). `all` runs every benchmark.
 * Peers (v86, QEMU) and the other benchmarks arrive with the benchmark issue.
 */
import { Console, Effect } from "effect"
import { Argument, Command, Flag } from "effect/cli"
import { benchCpu, formatCpuBench } from "../bench/cpu.ts"
import { benchSched, formatSchedBench } from "../bench/sched.ts"
import { failWithMessage } from "./user-error.ts"

const benchmarks = ["cpu", "sched", "all"] as const

const name = Argument.String("name").pipe(
  Argument.withDescription(`Benchmark to run: ${benchmarks.join(", ")}`),
  Argument.withDefault("all")
)
const json = Flag.Boolean("json").pipe(Flag.withDescription("Print the results as JSON"), Flag.withDefault(false))
const instructions = Flag.Int("instructions").pipe(
  Flag.withDescription("Guest instructions per run of each compute loop"),
  Flag.withDefault(50_000_000)
)

export const bench = Command.make("bench", { name, json, instructions }, ({ name, json, instructions }) =>
  Effect.gen(function* () {
    if (!(benchmarks as ReadonlyArray<string>).includes(name)) {
      return yield* failWithMessage(`Unknown benchmark "${name}". Available: ${benchmarks.join(", ")}`)
    }
    if (instructions < 1) return yield* failWithMessage("--instructions must be at least 1")
    const report: Record<string, unknown> = {}
    const text: Array<string> = []
    if (name === "cpu" || name === "all") {
      const rows = yield* Effect.sync(() => benchCpu({ instructions, repeats: 3 }))
      report.cpu = rows
      text.push(`cpu: guest MIPS (best of 3, ${instructions} instructions each)\n${formatCpuBench(rows)}`)
    }
    if (name === "sched" || name === "all") {
      const sched = yield* benchSched({ slices: 200_000, burnIterations: 300_000 })
      report.sched = sched
      text.push(`sched:\n${formatSchedBench(sched)}`)
    }
    yield* Console.log(json ? JSON.stringify(report, null, 2) : text.join("\n\n"))
  })
).pipe(Command.withDescription("Run benchmarks: guest MIPS now, ratios against v86 and QEMU with the benchmark issue"))
