/** The host config schema: the default decodes, bad configs list every problem at once. */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { decodeMachineConfig, defaultMachineConfig } from "../../hw/machine/config.ts"
import { machineInventory } from "../../hw/machine/inventory.ts"

describe("MachineConfig", () => {
  it.effect("the embedded default host config decodes and prints an inventory", () =>
    Effect.gen(function* () {
      const config = yield* decodeMachineConfig("default", JSON.stringify(defaultMachineConfig))
      expect(config.pcpus).toBe(2)
      expect(machineInventory(config)).toContain("256 MiB")
    })
  )

  it.effect("a bad config is rejected with every error listed", () =>
    Effect.gen(function* () {
      const bad = { ...defaultMachineConfig, pcpus: 0, ramMiB: 1.5, costProfile: "fast", nic: undefined }
      const error = yield* Effect.flip(decodeMachineConfig("bad.json", JSON.stringify(bad)))
      expect(error._tag).toBe("MachineConfigError")
      for (const field of ["pcpus", "ramMiB", "costProfile", "nic"]) expect(error.message).toContain(`["${field}"]`)
    })
  )

  it.effect("broken JSON is a clear error, not a crash", () =>
    Effect.gen(function* () {
      const error = yield* Effect.flip(decodeMachineConfig("broken.json", "{ pcpus: 2"))
      expect(error.source).toBe("broken.json")
    })
  )
})
