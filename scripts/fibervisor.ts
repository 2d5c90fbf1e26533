#!/usr/bin/env node
/**
 * `fibervisor`: the one entry point users run. Every npm script is a
 * subcommand here (`npm start` = `fibervisor start`, `npm run boot` =
 * `fibervisor boot`, ...). Built with effect/cli, so every command has --help.
 *
 * scripts/ is one of the two places allowed to touch the real world
 * (files, stdout, the wall clock); everything below it is simulated.
 */
import { NodeRuntime, NodeServices } from "@effect/platform-node"
import { Effect } from "effect"
import { Command } from "effect/cli"
import { bench } from "./commands/bench.ts"
import { boot } from "./commands/boot.ts"
import { buildImages } from "./commands/build-images.ts"
import { conformance } from "./commands/conformance.ts"
import { fuzz } from "./commands/fuzz.ts"
import { start } from "./commands/start.ts"

const root = Command.make("fibervisor").pipe(
  Command.withDescription(
    "A bare-metal (type-1) x86 hypervisor on emulated hardware: boot guests, run conformance vectors, benchmark, fuzz"
  ),
  Command.withSubcommands([start, boot, bench, conformance, buildImages, fuzz])
)

root.pipe(Command.run({ version: "0.1.0" }), Effect.provide(NodeServices.layer), NodeRuntime.runMain)
