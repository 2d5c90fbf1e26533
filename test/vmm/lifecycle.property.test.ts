/**
 * VM lifecycle under random sequences (issue 8 suite `lifecycle`, which
 * describes the operations and checks: scripts/fuzz/suites/lifecycle.ts),
 * CI-sized with a fixed seed; and the suite's checks can fail.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { runCiSized } from "../../scripts/fuzz/campaign.ts"
import { lifecycleSuite, runLifecycle } from "../../scripts/fuzz/suites/lifecycle.ts"

describe("VM lifecycle (property)", () => {
  it("random create / pause / resume / reset / power-off / destroy sequences keep memory and scheduler accounting whole", async () => {
    expect(await runCiSized(lifecycleSuite, 20261126)).toBe(lifecycleSuite.ciRuns)
  })

  it("page-touching guests fill the host: one fails alone, a reservation is refused, the others go on", async () => {
    // three 6 MiB VMs touching all their RAM on a 12 MiB host: someone runs out, the host survives, nothing leaks
    const outcome = await Effect.runPromise(
      runLifecycle([
        ...[0, 1, 2].map((slot) => ({
          op: "create" as const,
          slot,
          program: "touch" as const,
          memoryMiB: 6,
          reservationMiB: 0,
          vcpus: 1
        })),
        { op: "run", us: 3000 },
        // the host is full: a 2 MiB reservation cannot be promised (nor the image placed): refused, nothing kept
        { op: "create", slot: 3, program: "print", memoryMiB: 2, reservationMiB: 2, vcpus: 2 },
        { op: "destroy", slot: 0 },
        { op: "create", slot: 0, program: "print", memoryMiB: 2, reservationMiB: 0, vcpus: 2 },
        { op: "pause", slot: 0 },
        { op: "run", us: 500 },
        { op: "resume", slot: 0 },
        { op: "run", us: 500 },
        { op: "destroy", slot: 1 },
        { op: "create", slot: 1, program: "exit", memoryMiB: 2, reservationMiB: 0, vcpus: 1 },
        { op: "run", us: 100 }
      ])
    )
    const ends = Object.fromEntries(outcome.ends)
    // 3 x 6 MiB of touched pages do not fit in what a 16 MiB host has free: at least one toucher failed, alone
    const touchers = ["vm0", "vm1", "vm2"].map((n) => ends[n])
    expect(touchers.filter((e) => e === "Failed").length).toBeGreaterThanOrEqual(1)
    expect(touchers.filter((e) => e === "running").length).toBeGreaterThanOrEqual(1)
    expect(outcome.refused).toBe(1)
    expect(ends.vm3).toBeUndefined()
    expect(ends.vm4).toBe("running")
    expect(ends.vm5).toBe("DebugExit")
  })
})
