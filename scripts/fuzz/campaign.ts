/**
 * Fuzz campaigns (issue 8): a suite is a fast-check arbitrary plus a check
 * that throws when the property fails. The same suite runs CI-sized inside
 * `npm test` and as a long campaign under `fibervisor fuzz --runs N --seed S`.
 *
 * A failure is shrunk by fast-check and written as a counterexample file
 * (JSON: suite, seed, the shrink path, the error and a readable rendering
 * of the failing input, e.g. a disassembly). `fibervisor fuzz --replay FILE`
 * regenerates the exact input from seed + path (fast-check's replay: the
 * generators are deterministic for a seed, and the path names the shrink
 * steps) and runs the check once more.
 */
import fc from "fast-check"

export interface FuzzSuite<T> {
  readonly name: string
  readonly description: string
  readonly arbitrary: fc.Arbitrary<T>
  /** Throws (an assertion error, or the host exception a guest provoked) when the property does not hold. */
  readonly check: (value: T) => Promise<void>
  /** The failing input as a person reads it (a disassembly, a register sequence). */
  readonly render: (value: T) => string
  /** Runs inside `npm test`. */
  readonly ciRuns: number
}

export interface Counterexample {
  readonly suite: string
  readonly seed: number
  readonly path: string
  readonly error: string
  readonly input: string
}

export type CampaignResult =
  | { readonly _tag: "Passed"; readonly runs: number }
  | { readonly _tag: "Failed"; readonly runs: number; readonly counterexample: Counterexample }

const property = <T>(suite: FuzzSuite<T>) => fc.asyncProperty(suite.arbitrary, (value) => suite.check(value))

const describeError = (error: unknown): string =>
  error instanceof Error ? `${error.name}: ${error.message}` : String(error)

/** Check a suite with fast-check `parameters`; a failure is reported at the seed and path `locate` gives. */
const checkSuite = async <T>(
  suite: FuzzSuite<T>,
  parameters: fc.Parameters<[T]>,
  locate: (details: fc.RunDetails<[T]>) => Pick<Counterexample, "seed" | "path">
): Promise<CampaignResult> => {
  const details = await fc.check(property(suite), parameters)
  if (!details.failed || details.counterexample === null) return { _tag: "Passed", runs: details.numRuns }
  return {
    _tag: "Failed",
    runs: details.numRuns,
    counterexample: {
      suite: suite.name,
      ...locate(details),
      error: describeError(details.errorInstance),
      input: suite.render(details.counterexample[0])
    }
  }
}

/** Run `runs` inputs from `seed`; on failure, the shrunk counterexample. */
export const runCampaign = <T>(
  suite: FuzzSuite<T>,
  options: { readonly runs: number; readonly seed: number }
): Promise<CampaignResult> =>
  checkSuite(suite, { numRuns: options.runs, seed: options.seed }, (details) => ({
    seed: details.seed,
    path: details.counterexamplePath ?? ""
  }))

/** Regenerate a counterexample's input from its seed and shrink path and check it again. */
export const replayCounterexample = <T>(suite: FuzzSuite<T>, counterexample: Counterexample): Promise<CampaignResult> =>
  checkSuite(suite, { seed: counterexample.seed, path: counterexample.path, numRuns: 1, endOnFailure: true }, () => ({
    seed: counterexample.seed,
    path: counterexample.path
  }))

/** Parse a counterexample file's text; a list of problems if it is not one. */
export const parseCounterexample = (text: string): Counterexample | ReadonlyArray<string> => {
  let value: unknown
  try {
    value = JSON.parse(text)
  } catch (e) {
    return [`not JSON (${e instanceof Error ? e.message : String(e)})`]
  }
  if (typeof value !== "object" || value === null) return ["not a counterexample object"]
  const v = value as Record<string, unknown>
  const problems: Array<string> = []
  if (typeof v.suite !== "string") problems.push('"suite" must be a suite name')
  if (typeof v.seed !== "number" || !Number.isInteger(v.seed)) problems.push('"seed" must be an integer')
  if (typeof v.path !== "string") problems.push('"path" must be a fast-check shrink path string')
  if (problems.length > 0) return problems
  return {
    suite: v.suite as string,
    seed: v.seed as number,
    path: v.path as string,
    error: typeof v.error === "string" ? v.error : "",
    input: typeof v.input === "string" ? v.input : ""
  }
}

/** A suite with its input type hidden, for registries and the CLI. */
export interface RunnableSuite {
  readonly name: string
  readonly description: string
  readonly ciRuns: number
  readonly run: (options: { readonly runs: number; readonly seed: number }) => Promise<CampaignResult>
  readonly replay: (counterexample: Counterexample) => Promise<CampaignResult>
}

export const runnable = <T>(suite: FuzzSuite<T>): RunnableSuite => ({
  name: suite.name,
  description: suite.description,
  ciRuns: suite.ciRuns,
  run: (options) => runCampaign(suite, options),
  replay: (counterexample) => replayCounterexample(suite, counterexample)
})

/**
 * Run `suite` CI-sized (its ciRuns, from `seed`), as `npm test` does;
 * throws with the shrunk counterexample when it fails; the runs otherwise.
 */
export const runCiSized = async <T>(suite: FuzzSuite<T>, seed: number): Promise<number> => {
  const result = await runCampaign(suite, { runs: suite.ciRuns, seed })
  if (result._tag === "Failed")
    throw new Error(`suite ${suite.name}: ${result.counterexample.error}\ninput:\n${result.counterexample.input}`)
  return result.runs
}

/** A list of steps, one per line: `index: kind key=value ...` (`kind` names the field that tags a step). */
export const renderSteps = <S extends object>(steps: ReadonlyArray<S>, kind: keyof S): string =>
  steps
    .map((step, i) => {
      const fields = Object.entries(step).filter(([key]) => key !== kind)
      return `${i}: ${String(step[kind])} ${fields.map(([key, value]) => `${key}=${value}`).join(" ")}`
    })
    .join("\n")
