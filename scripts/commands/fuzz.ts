/**
 * `fibervisor fuzz [--suite NAME] [--runs N] [--seed S] [--out DIR]` runs
 * long fuzz campaigns (issue 8) over the suites of scripts/fuzz/suites; any
 * failure is shrunk and written to DIR/<suite>-<seed>.json, a file that
 * `fibervisor fuzz --replay FILE` replays (same input, from seed and shrink
 * path). Exit status: 0 when every run passed (or the replay no longer
 * fails), 1 when a property failed, 2 for bad input.
 */
import { mkdirSync, readFileSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { Console, Effect, Option } from "effect"
import { Command, Flag } from "effect/cli"
import { type Counterexample, parseCounterexample } from "../fuzz/campaign.ts"
import { fuzzSuites } from "../fuzz/suites/index.ts"
import { failWithMessage } from "./user-error.ts"

const suiteNames = fuzzSuites.map((s) => s.name)

const suite = Flag.String("suite").pipe(
  Flag.withDescription(`Suite to run: ${suiteNames.join(", ")} (default: all)`),
  Flag.optional
)
const runs = Flag.Int("runs").pipe(Flag.withDescription("Inputs per suite"), Flag.withDefault(200))
const seed = Flag.Int("seed").pipe(
  Flag.withDescription("fast-check seed (default: a random one, printed so the campaign can be rerun)"),
  Flag.optional
)
const out = Flag.String("out").pipe(
  Flag.withDescription("Directory for counterexample files"),
  Flag.withDefault("fuzz-failures")
)
const replay = Flag.String("replay").pipe(
  Flag.withDescription("Replay a counterexample FILE written by an earlier campaign"),
  Flag.optional
)

const showFailure = (counterexample: Counterexample) =>
  `  ${counterexample.error.split("\n").join("\n  ")}\n  input:\n    ${counterexample.input.split("\n").join("\n    ")}`

const replayFile = (file: string) =>
  Effect.gen(function* () {
    const text = yield* Effect.try({
      try: () => readFileSync(file, "utf8"),
      catch: (e) => (e as { code?: string }).code ?? String(e)
    }).pipe(Effect.catch((why) => Effect.succeed({ unreadable: why })))
    if (typeof text !== "string")
      return yield* failWithMessage(`fibervisor fuzz --replay ${file}: cannot read (${text.unreadable})`)
    const counterexample = parseCounterexample(text)
    if (!("suite" in counterexample))
      return yield* failWithMessage(
        `fibervisor fuzz --replay ${file}: not a counterexample file:\n  ${counterexample.join("\n  ")}`
      )
    const target = fuzzSuites.find((s) => s.name === counterexample.suite)
    if (target === undefined)
      return yield* failWithMessage(
        `fibervisor fuzz --replay ${file}: unknown suite "${counterexample.suite}" (known: ${suiteNames.join(", ")})`
      )
    const result = yield* Effect.promise(() => target.replay(counterexample))
    if (result._tag === "Passed") {
      yield* Console.log(`${target.name}: the counterexample in ${file} no longer fails`)
      return
    }
    yield* Console.log(
      `${target.name}: the counterexample in ${file} still fails:\n${showFailure(result.counterexample)}`
    )
    process.exitCode = 1
  })

export const fuzz = Command.make("fuzz", { suite, runs, seed, out, replay }, (o) =>
  Effect.gen(function* () {
    const replayPath = Option.getOrUndefined(o.replay)
    if (replayPath !== undefined) return yield* replayFile(replayPath)
    const problems: Array<string> = []
    const wanted = Option.getOrUndefined(o.suite)
    if (wanted !== undefined && !suiteNames.includes(wanted))
      problems.push(`--suite ${wanted}: unknown (available: ${suiteNames.join(", ")})`)
    if (o.runs < 1) problems.push(`--runs ${o.runs}: give at least 1`)
    if (problems.length > 0) return yield* failWithMessage(`fibervisor fuzz: nothing run:\n  ${problems.join("\n  ")}`)
    // scripts/ may use host randomness: a campaign without --seed explores new inputs, and prints its seed
    const campaignSeed = Option.getOrElse(o.seed, () => Math.floor(Math.random() * 2 ** 31))
    let failed = false
    for (const target of fuzzSuites.filter((s) => wanted === undefined || s.name === wanted)) {
      yield* Console.log(`${target.name}: ${target.description}; ${o.runs} runs, seed ${campaignSeed}`)
      const result = yield* Effect.promise(() => target.run({ runs: o.runs, seed: campaignSeed }))
      if (result._tag === "Passed") {
        yield* Console.log(`${target.name}: ${result.runs} runs passed`)
        continue
      }
      failed = true
      mkdirSync(o.out, { recursive: true })
      const file = join(o.out, `${target.name}-${campaignSeed}.json`)
      writeFileSync(file, `${JSON.stringify(result.counterexample, null, 2)}\n`)
      yield* Console.log(
        `${target.name}: FAILED after ${result.runs} runs; shrunk counterexample written to ${file} (replay: npm run fuzz -- --replay ${file})\n${showFailure(result.counterexample)}`
      )
    }
    if (failed) process.exitCode = 1
  })
).pipe(
  Command.withDescription(
    "Run fuzz campaigns (property suites that shrink to a minimal failing guest) or replay a counterexample"
  )
)
