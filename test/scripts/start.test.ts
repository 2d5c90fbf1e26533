/**
 * `npm start` (`fibervisor start`) as a new user first runs it (issue 7 Must
 * show): the default host prints its inventory and boots the default guests
 * side by side, all succeeding, exit 0; a bad --config is refused with every
 * problem listed, exit 2, nothing started.
 */
import { mkdtempSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { basename, join } from "node:path"
import { describe, expect, it } from "@effect/vitest"
import { defaultGuests } from "../../scripts/commands/start.ts"
import { fibervisorCli } from "./cli.ts"

const fibervisor = fibervisorCli(120_000)

describe("fibervisor start", () => {
  it("boots the default guests concurrently on the default host; every one succeeds; exit 0", () => {
    const r = fibervisor("start")
    expect(r.stderr).toBe("")
    expect(r.stdout).toContain(`booting ${defaultGuests.length} guests on`)
    const names = defaultGuests.map((path) => basename(path, ".elf"))
    expect(names.length).toBeGreaterThanOrEqual(4)
    for (const name of names) expect(r.stdout).toMatch(new RegExp(`^${name}\\s+success\\s`, "m"))
    // concurrently: their console lines interleave rather than coming one VM after another
    const consoleOrder = r.stdout
      .split("\n")
      .map((line) => /^(\S+)\s+\| /.exec(line)?.[1])
      .filter((name) => name !== undefined)
    const runs = consoleOrder.filter((name, i) => i === 0 || name !== consoleOrder[i - 1]).length
    expect(runs).toBeGreaterThan(names.length)
    expect(r.status).toBe(0)
  })

  it("refuses an invalid host config with every problem listed, exit 2, nothing started", () => {
    const config = join(mkdtempSync(join(tmpdir(), "fibervisor-start-")), "host.json")
    writeFileSync(config, JSON.stringify({ pcpus: 0, ramMiB: "lots" }))
    const r = fibervisor("start", "--config", config)
    expect(r.status).toBe(2)
    expect(r.stderr).toContain("pcpus")
    expect(r.stderr).toContain("ramMiB")
    expect(r.stdout).not.toContain("booting")
  })
})
