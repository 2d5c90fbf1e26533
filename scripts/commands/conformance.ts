/**
 * `fibervisor conformance`: run hardware-captured CPU test vectors.
 */
import { Command } from "effect/cli"
import { failWithMessage } from "./user-error.ts"

export const conformance = Command.make("conformance", {}, () =>
  failWithMessage("fibervisor conformance: the CPU is not there yet", 1)
).pipe(Command.withDescription("Run hardware-captured CPU conformance vectors and print a per-form table"))
