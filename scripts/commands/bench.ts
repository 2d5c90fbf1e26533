/**
 * `fibervisor bench NAME [--json] [--out FILE]`: benchmarks (issue 9). Speed
 * claims live here, never in timed unit tests, and are read as ratios
 * against the peers measured in the same run (machines here are noisy).
 *
 * Each benchmark (scripts/bench/registry.ts) prints its own table; `all`
 * runs every one and ends with a short summary table of the headline numbers
 * against this round's targets. With --json the full report (machine, date,
 * every benchmark's numbers) is written to FILE (default bench-report.json)
 * and the human tables still go to stdout. A benchmark that draws a chart
 * (`modes`) writes it as SVG to the --svg FILE (default bench-modes.svg)
 * whenever it runs.
 */
import { writeFileSync } from "node:fs"
import { Console, Effect } from "effect"
import { Argument, Command, Flag } from "effect/cli"
import { benchmarks, formatSummary, type Headline, machineInfo } from "../bench/registry.ts"
import { failWithMessage } from "./user-error.ts"

const names = [...benchmarks.map((b) => b.name), "all"]

const name = Argument.String("name").pipe(
  Argument.withDescription(`Benchmark to run: ${names.join(", ")}`),
  Argument.withDefault("all")
)
const json = Flag.Boolean("json").pipe(
  Flag.withDescription("Also write the full report as JSON (see --out)"),
  Flag.withDefault(false)
)
const out = Flag.String("out").pipe(
  Flag.withDescription("Where --json writes the report"),
  Flag.withDefault("bench-report.json")
)

const svg = Flag.String("svg").pipe(
  Flag.withDescription("Where a benchmark with a chart (modes) writes it as SVG"),
  Flag.withDefault("bench-modes.svg")
)

const writeFile = (path: string, text: string) =>
  Effect.try({
    try: () => writeFileSync(path, text),
    catch: (e) => (e as { code?: string }).code ?? String(e)
  }).pipe(Effect.result)

export const bench = Command.make("bench", { name, json, out, svg }, ({ name, json, out, svg }) =>
  Effect.gen(function* () {
    if (!names.includes(name))
      return yield* failWithMessage(`Unknown benchmark "${name}". Available: ${names.join(", ")}`)
    const chosen = name === "all" ? benchmarks : benchmarks.filter((b) => b.name === name)
    const machine = machineInfo()
    yield* Console.log(
      `${machine.cpu} (${machine.cores} cores), ${machine.memoryGiB} GiB, Node ${machine.node}, ${machine.date}\n`
    )
    const results: Record<string, unknown> = {}
    const headlines: Array<Headline> = []
    for (const b of chosen) {
      const report = yield* b.run
      results[b.name] = report
      headlines.push(...b.headlines(report))
      yield* Console.log(`${b.name}: ${b.description}\n${b.format(report)}\n`)
      if (b.svg !== undefined) {
        const drawn = yield* writeFile(svg, b.svg(report))
        if (drawn._tag === "Failure")
          return yield* failWithMessage(`bench --svg ${svg}: cannot write (${drawn.failure})`)
        yield* Console.log(`chart written to ${svg}\n`)
      }
    }
    if (chosen.length > 1) yield* Console.log(`summary\n${formatSummary(headlines)}`)
    if (json) {
      const written = yield* writeFile(out, `${JSON.stringify({ machine, results, summary: headlines }, null, 2)}\n`)
      if (written._tag === "Failure")
        return yield* failWithMessage(`bench --out ${out}: cannot write (${written.failure})`)
      yield* Console.log(`\nreport written to ${out}`)
    }
  })
).pipe(Command.withDescription("Run benchmarks against the peers (v86, QEMU) and this round's targets"))
