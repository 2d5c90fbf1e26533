/**
 * The ownership invariant of the machine memory manager (DESIGN.md kernel/:
 * "every frame has exactly one owner"): the fuzz suite `memory`
 * (scripts/fuzz/suites/memory.ts, which describes the operations and
 * checks) run CI-sized with a fixed seed.
 */
import { describe, expect, it } from "@effect/vitest"
import { runCiSized } from "../../../scripts/fuzz/campaign.ts"
import { memorySuite } from "../../../scripts/fuzz/suites/memory.ts"

describe("ownership invariant (property)", () => {
  it("holds across random create / touch / unback / release / free sequences, and nothing leaks at the end", async () => {
    expect(await runCiSized(memorySuite, 20261126)).toBe(memorySuite.ciRuns)
  })
})
