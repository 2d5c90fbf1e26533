/**
 * The virtio devices under a hostile driver: the fuzz suite `virtio`
 * (scripts/fuzz/suites/virtio.ts, which describes the cases and checks)
 * run CI-sized with a fixed seed, and a look at what its arbitrary makes.
 */
import { describe, expect, it } from "@effect/vitest"
import fc from "fast-check"
import { runCiSized } from "../../../scripts/fuzz/campaign.ts"
import { virtioSuite } from "../../../scripts/fuzz/suites/virtio.ts"

describe("virtio properties", () => {
  it("random registers, hostile rings and a real guest never throw, write outside RAM or stop a reset from working", async () => {
    expect(await runCiSized(virtioSuite, 20261127)).toBe(virtioSuite.ciRuns)
  })

  it("the arbitrary makes every kind of case, on both devices", () => {
    const cases = fc.sample(virtioSuite.arbitrary, { numRuns: 300, seed: 7 })
    const kinds = new Set(cases.map((c) => c.kind))
    expect([...kinds].sort()).toEqual(["registers", "ring", "vm"])
    const devices = new Set(cases.flatMap((c) => (c.kind === "vm" ? [] : [`${c.kind}/${c.device}`])))
    expect([...devices].sort()).toEqual(["registers/blk", "registers/net", "ring/blk", "ring/net"])
    const hostilities = new Set(cases.flatMap((c) => (c.kind === "ring" ? c.hostile.map((h) => h.h) : [])))
    expect([...hostilities].sort()).toEqual([
      "len",
      "long",
      "loop",
      "nested",
      "ring",
      "self",
      "selfTable",
      "straddle",
      "tableOut"
    ])
  })
})
