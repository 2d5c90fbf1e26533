/**
 * `fibervisor start`: power on the host. Decodes the host config (the
 * embedded default, or --config FILE), builds the machine (pCPUs, RAM,
 * devices, firmware ROM) and prints its inventory as read back from the
 * firmware table. Booting guests from it arrives with the VMM (issues 6, 7).
 */
import { Console, Effect, FileSystem } from "effect"
import { Command, Flag } from "effect/cli"
import { openFileDisk } from "../../hw/backends/file-disk.ts"
import { streamConsole } from "../../hw/backends/stdio-console.ts"
import { decodeMachineConfig, defaultMachineConfig, MachineConfigError } from "../../hw/machine/config.ts"
import { machineInventory } from "../../hw/machine/inventory.ts"
import { Machine } from "../../hw/machine/machine.ts"
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
    const host = yield* decodeMachineConfig(source, text)
    const machine = yield* Effect.try({
      try: () =>
        new Machine(host, {
          ...(host.uart.backend === "stdio" ? { console: streamConsole() } : {}),
          ...(host.block === null ? {} : { disk: openFileDisk(host.block.path, host.block.sizeMiB * 1024 * 1024) })
        }),
      catch: (e) => new MachineConfigError({ source, message: e instanceof Error ? e.message : String(e) })
    })
    yield* Console.log(`fibervisor: host powered on (${source})\n${machineInventory(host, machine)}`)
  }).pipe(
    Effect.catchTag("MachineConfigError", (e) => failWithMessage(`Invalid host config ${e.source}:\n${e.message}`)),
    Effect.catchTag("PlatformError", (e) => failWithMessage(`Cannot read host config: ${e.message}`))
  )
).pipe(Command.withDescription("Power on the host: decode the host config and print the machine inventory"))
