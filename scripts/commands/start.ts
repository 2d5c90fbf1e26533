/**
 * `fibervisor start`: power on the host. Decodes the host config (the
 * embedded default, or --config FILE) and prints the machine inventory.
 * Booting guests from it arrives with the VMM (issues 6 and 7).
 */
import { Console, Effect, FileSystem } from "effect"
import { Command, Flag } from "effect/cli"
import { decodeMachineConfig, defaultMachineConfig } from "../../hw/machine/config.ts"
import { machineInventory } from "../../hw/machine/inventory.ts"
import { failWithMessage } from "./user-error.ts"

const config = Flag.String("config").pipe(
  Flag.withAlias("c"),
  Flag.withDescription("Host config JSON file (default: the embedded 2-pCPU, 256 MiB host)"),
  Flag.optional
)

export const start = Command.make("start", { config }, ({ config }) =>
  Effect.gen(function* () {
    const fs = yield* FileSystem.FileSystem
    const [source, text] =
      config._tag === "Some"
        ? [config.value, yield* fs.readFileString(config.value)]
        : ["embedded default host config", JSON.stringify(defaultMachineConfig)]
    const machine = yield* decodeMachineConfig(source, text)
    yield* Console.log(`fibervisor: host powered on (${source})\n${machineInventory(machine)}`)
  }).pipe(
    Effect.catchTag("MachineConfigError", (e) => failWithMessage(`Invalid host config ${e.source}:\n${e.message}`)),
    Effect.catchTag("PlatformError", (e) => failWithMessage(`Cannot read host config: ${e.message}`))
  )
).pipe(Command.withDescription("Power on the host: decode the host config and print the machine inventory"))
