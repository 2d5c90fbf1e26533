/**
 * Loader and configs (issue 8): malformed kernel images, VM config texts and
 * datastore file names are each rejected with a clear typed error, nothing
 * started, nothing written — the fuzz suite `inputs`
 * (scripts/fuzz/suites/inputs.ts, which describes the inputs and checks)
 * run CI-sized with a fixed seed.
 */
import { copyFileSync, mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import fc from "fast-check"
import { nameProblems } from "../../kernel/datastore/names.ts"
import { planGuests } from "../../scripts/boot/images.ts"
import { runCiSized } from "../../scripts/fuzz/campaign.ts"
import { imageOutcome, inputCase, inputsSuite } from "../../scripts/fuzz/suites/inputs.ts"

describe("fuzz suite inputs (property)", () => {
  it("the arbitrary produces every kind of input: images of each form, configs, datastore operations", () => {
    const kinds = new Set(
      fc
        .sample(inputCase, { numRuns: 300, seed: 8 })
        .map((c) => (c.kind === "image" ? `image/${c.image.form}` : c.kind))
    )
    expect([...kinds].sort()).toEqual(["config", "datastore", "image/layout", "image/mutated", "image/soup"])
  })

  it("the images reach both sides of the loader and many of its rules", () => {
    const outcomes = new Set<string>()
    for (const c of fc.sample(inputCase, { numRuns: 600, seed: 9 }))
      if (c.kind === "image") outcomes.add(imageOutcome(c.image))
    expect(outcomes.has("ok")).toBe(true)
    for (const reason of ["overlap", "segment-outside-ram", "bad-elf", "entry-outside-image", "truncated"])
      expect(outcomes.has(reason)).toBe(true)
    expect(outcomes.size).toBeGreaterThanOrEqual(10)
  })

  it("malformed images, configs and datastore names: a typed error, nothing started, nothing written", async () => {
    expect(await runCiSized(inputsSuite, 20261208)).toBe(inputsSuite.ciRuns)
  })

  it("an image's file name always gives its VM a disk name the datastore accepts (boot formats --disk first)", () => {
    // found while writing this suite (issue 8): `boot a..b.elf --disk ds.img` formatted ds.img, then refused "a..b.disk"
    const dir = mkdtempSync(join(tmpdir(), "fibervisor-inputs-"))
    try {
      const hello = fileURLToPath(new URL("../../images/hello/hello.elf", import.meta.url))
      const files = [
        "a..b.elf",
        "..elf",
        "....elf",
        ".hidden.elf",
        "x.elf",
        "x..elf",
        `${"y".repeat(27)}..elf`,
        "sp ace..elf"
      ]
      const paths = files.map((f) => join(dir, f))
      for (const path of paths) copyFileSync(hello, path)
      const guests = Effect.runSync(planGuests(paths, { memoryBytes: 16 << 20, cmdline: "", bios: undefined }))
      expect(new Set(guests.map((g) => g.name)).size).toBe(files.length)
      for (const g of guests) expect([g.name, nameProblems(`${g.name}.disk`)]).toEqual([g.name, []])
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
})
