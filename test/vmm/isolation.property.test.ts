/**
 * Isolation (issue 6 Must show, issue 8 suite `isolation`): random guest
 * programs in one VM next to four victim VMs on the same 2-pCPU host; the
 * victims' memory, devices and consoles must be bit-identical to a baseline
 * and the hypervisor must never throw. The suite itself lives in
 * scripts/fuzz/suites/isolation.ts so `npm run fuzz` runs it for long
 * campaigns; here it runs CI-sized with a fixed seed, as does `determinism`
 * (the same host run twice gives the same state hash), and `bt-isolation`
 * (the hostile VM in bt mode: issue 10).
 */
import { describe, expect, it } from "@effect/vitest"
import { runCiSized } from "../../scripts/fuzz/campaign.ts"
import {
  btIsolationSuite,
  determinismSuite,
  isolationBaseline,
  isolationSuite
} from "../../scripts/fuzz/suites/isolation.ts"
import { pvIsolationSuite } from "../../scripts/fuzz/suites/pv-isolation.ts"

describe("isolation between VMs", () => {
  it("the baseline: each victim prints its own ok<i> and exits 0", async () => {
    const baseline = await isolationBaseline()
    expect(baseline.map((v) => v.console)).toEqual(["ok0", "ok1", "ok2", "ok3"])
    expect(baseline.map((v) => v.ended)).toEqual(Array(4).fill(JSON.stringify({ _tag: "DebugExit", code: 0 })))
  })

  it("random code in one VM changes nothing of the other VMs and never hurts the hypervisor", async () => {
    expect(await runCiSized(isolationSuite, 0x150_1a7e)).toBe(isolationSuite.ciRuns)
  })

  it("the same host and hostile program, run twice, end in the same host state hash (suite determinism)", async () => {
    expect(await runCiSized(determinismSuite, 0xde7e_2026)).toBe(determinismSuite.ciRuns)
  })

  it("the same with the hostile VM in bt mode, run twice to the same host hash (suite bt-isolation)", {
    timeout: 120_000
  }, async () => {
    expect(await runCiSized(btIsolationSuite, 0xb7_2026)).toBe(btIsolationSuite.ciRuns)
  })

  it("a PV guest's random hypercalls, sends and stores change no victim, twice to the same hash (suite pv-isolation)", {
    timeout: 120_000
  }, async () => {
    expect(await runCiSized(pvIsolationSuite, 0x9f_2026)).toBe(pvIsolationSuite.ciRuns)
  })
})
