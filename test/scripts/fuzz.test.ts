/**
 * The fuzz campaign machinery (issue 8 Must show): a failing property is
 * shrunk, written as a counterexample file and replayed to the same input;
 * `fibervisor fuzz` runs a suite with --runs/--seed, replays a file, and
 * refuses bad input.
 */
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { describe, expect, it } from "@effect/vitest"
import fc from "fast-check"
import { type FuzzSuite, parseCounterexample, replayCounterexample, runCampaign } from "../../scripts/fuzz/campaign.ts"
import { fibervisorCli } from "./cli.ts"

const fibervisor = fibervisorCli(120_000)

/** A property with a known minimal counterexample: lists whose sum exceeds 1000 fail; the shrunk one is [1001]. */
const sumSuite: FuzzSuite<ReadonlyArray<number>> = {
  name: "sum",
  description: "test-only: sums stay at most 1000",
  arbitrary: fc.array(fc.integer({ min: 0, max: 5000 }), { maxLength: 20 }),
  ciRuns: 100,
  check: async (values) => {
    const sum = values.reduce((a, b) => a + b, 0)
    if (sum > 1000) throw new Error(`sum ${sum} > 1000`)
  },
  render: (values) => `[${values.join(", ")}]`
}

describe("fuzz campaigns", () => {
  it("a failure is shrunk to the minimal input and its file replays to the same input", async () => {
    const result = await runCampaign(sumSuite, { runs: 200, seed: 42 })
    expect(result._tag).toBe("Failed")
    if (result._tag !== "Failed") return
    expect(result.counterexample.input).toBe("[1001]")
    expect(result.counterexample.error).toContain("sum 1001 > 1000")
    const file = parseCounterexample(JSON.stringify(result.counterexample))
    expect("suite" in file).toBe(true)
    if (!("suite" in file)) return
    const again = await replayCounterexample(sumSuite, file)
    expect(again._tag).toBe("Failed")
    if (again._tag === "Failed") expect(again.counterexample.input).toBe("[1001]")
  })

  it("a passing property reports its runs", async () => {
    const result = await runCampaign(
      { ...sumSuite, arbitrary: fc.array(fc.integer({ min: 0, max: 50 }), { maxLength: 20 }) },
      { runs: 50, seed: 1 }
    )
    expect(result).toEqual({ _tag: "Passed", runs: 50 })
  })

  it("counterexample files are validated", () => {
    expect(parseCounterexample("{")).toEqual([expect.stringContaining("not JSON")])
    expect(parseCounterexample(JSON.stringify({ suite: 3, seed: 1.5 }))).toEqual([
      '"suite" must be a suite name',
      '"seed" must be an integer',
      '"path" must be a fast-check shrink path string'
    ])
  })

  it("fibervisor fuzz runs a suite with --runs and --seed, writes nothing when it passes", () => {
    const out = mkdtempSync(join(tmpdir(), "fibervisor-fuzz-"))
    const r = fibervisor("fuzz", "--suite", "isolation", "--runs", "3", "--seed", "7", "--out", out)
    expect(r.stdout).toContain("isolation: 3 runs passed")
    expect(r.status).toBe(0)
    expect(readdirSync(out)).toEqual([])
  })

  it("fibervisor fuzz --replay replays an isolation counterexample file; bad input exits 2", () => {
    const dir = mkdtempSync(join(tmpdir(), "fibervisor-fuzz-"))
    // an input drawn by seed 7 (path "0": the first generated value) that passes: the replay says so
    const file = join(dir, "isolation-7.json")
    writeFileSync(file, JSON.stringify({ suite: "isolation", seed: 7, path: "0", error: "", input: "" }))
    const ok = fibervisor("fuzz", "--replay", file)
    expect(ok.stdout).toContain(`isolation: the counterexample in ${file} no longer fails`)
    expect(ok.status).toBe(0)
    writeFileSync(file, JSON.stringify({ suite: "nope", seed: 7, path: "0" }))
    const unknown = fibervisor("fuzz", "--replay", file)
    expect(unknown.status).toBe(2)
    expect(unknown.stderr).toContain('unknown suite "nope"')
    const bad = fibervisor("fuzz", "--suite", "nope", "--runs", "0")
    expect(bad.status).toBe(2)
    expect(bad.stderr).toContain("--suite nope: unknown")
    expect(bad.stderr).toContain("--runs 0: give at least 1")
    expect(readFileSync(file, "utf8")).toContain("nope")
  })
})
