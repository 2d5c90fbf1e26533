/**
 * `fibervisor start`: power on the host and boot the default guests.
 * Decodes the host config (the embedded default, or --config FILE), builds
 * the machine and prints its inventory as read back from the firmware table,
 * then boots the default guest images side by side on one simulated host
 * (as `fibervisor boot` would) and exits 0 when every guest succeeded.
 */
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { Console, Effect, FileSystem } from "effect"
import { Command, Flag } from "effect/cli"
import { openFileDisk } from "../../hw/backends/file-disk.ts"
import { streamConsole } from "../../hw/backends/stdio-console.ts"
import { decodeMachineConfig, defaultMachineConfig, MachineConfigError } from "../../hw/machine/config.ts"
import { machineInventory } from "../../hw/machine/inventory.ts"
import { Machine } from "../../hw/machine/machine.ts"
import { planGuests } from "../boot/images.ts"
import { bootGuests, formatSummary } from "../boot/run.ts"

/** The guests `fibervisor start` boots side by side (paths from the project root). */
export const defaultGuests = [
  "images/hello/hello.elf",
  "images/timer/timer.elf",
  "images/smp/smp.elf",
  "images/cpu-selftest/cpu-selftest.elf",
  "images/minios/minios.elf"
]

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
    yield* Console.log(`fibervisor: host powered on (${source})\n${machineInventory(host, machine)}\n`)
    const root = fileURLToPath(new URL("../..", import.meta.url))
    const images = defaultGuests.map((g) => join(root, g))
    const guests = yield* planGuests(images, { memoryBytes: 16 * 1024 * 1024, cmdline: "", bios: undefined }).pipe(
      Effect.mapError((problems) => new MachineConfigError({ source: "default guests", message: problems.join("\n") }))
    )
    yield* Console.log(`booting ${guests.length} guests on ${host.pcpus} pCPUs:`)
    const width = Math.max(...guests.map((g) => g.name.length))
    const summaries = yield* bootGuests(guests, {
      memoryMiB: 16,
      vcpus: 2,
      pcpus: host.pcpus,
      seed: host.seed,
      maxTimeNs: 10_000_000_000,
      serialFile: undefined,
      diskFile: undefined,
      net: false,
      traceLine: undefined,
      printLine: (vm, _index, line) => process.stdout.write(`${vm.padEnd(width)} | ${line}\n`)
    })
    yield* Console.log(`\n${formatSummary(summaries)}`)
    if (!summaries.every((s) => s.success)) process.exitCode = 1
  }).pipe(
    Effect.catchTag("MachineConfigError", (e) => failWithMessage(`Invalid host config ${e.source}:\n${e.message}`)),
    Effect.catchTag("PlatformError", (e) => failWithMessage(`Cannot read host config: ${e.message}`))
  )
).pipe(
  Command.withDescription("Power on the host: print the machine inventory, then boot the default guests side by side")
)
