/**
 * `fibervisor bench` (issue 9) as a user runs it: a benchmark by name prints
 * the machine and its table, --json writes the report file, an unknown name
 * is refused listing the benchmarks. Only the wiring is checked here: speed
 * claims never live in tests.
 */
import { mkdtempSync, readFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { describe, expect, it } from "@effect/vitest"
import { fibervisorCli } from "./cli.ts"

const fibervisor = fibervisorCli(120_000)

describe("fibervisor bench", () => {
  it("runs one benchmark, prints the machine and its table, and --json writes the report", () => {
    const out = join(mkdtempSync(join(tmpdir(), "fibervisor-bench-")), "report.json")
    const r = fibervisor("bench", "minios", "--json", "--out", out)
    expect(r.status).toBe(0)
    expect(r.stdout).toMatch(/cores\), \d+ GiB, Node 24\./)
    expect(r.stdout).toContain("syscalls/s")
    const report = JSON.parse(readFileSync(out, "utf8"))
    expect(Object.keys(report)).toEqual(["machine", "results", "summary"])
    // every built mode but trap (hw, bt, pv with minios-pv.elf, emu) under both cost profiles: the same job
    // makes the same 51 system calls
    expect(report.results.minios.rows.map((row: { mode: string }) => row.mode)).toEqual([
      "hw",
      "hw",
      "bt",
      "bt",
      "pv",
      "pv",
      "emu",
      "emu"
    ])
    expect(report.results.minios.rows.map((row: { syscalls: number }) => row.syscalls)).toEqual([
      51, 51, 51, 51, 51, 51, 51, 51
    ])
    expect(report.summary.length).toBeGreaterThan(0)
  })

  it("modes prints a table per cost profile and writes its chart to --svg", () => {
    const svg = join(mkdtempSync(join(tmpdir(), "fibervisor-bench-")), "modes.svg")
    const r = fibervisor("bench", "modes", "--svg", svg)
    expect(r.status).toBe(0)
    expect(r.stdout).toContain("nanobench, vtx-2006: simulated TSC ticks per operation")
    expect(r.stdout).toContain("nanobench, modern: simulated TSC ticks per operation")
    expect(r.stdout).toContain(`chart written to ${svg}`)
    expect(readFileSync(svg, "utf8")).toMatch(/^<svg [\s\S]*<\/svg>\n$/)
  })

  it("refuses an unknown benchmark, listing the available ones", () => {
    const r = fibervisor("bench", "nope")
    expect(r.status).toBe(2)
    expect(r.stderr).toContain(
      'Unknown benchmark "nope". Available: cpu, exits, boot, density, sched, minios, modes, all'
    )
  })
})
