/**
 * `fibervisor fuzz`: Run the isolation and robustness fuzzers (issue 8).
 * Not available yet: it says so and exits 1 rather than pretending to work.
 */
import { Command } from "effect/cli"
import { failWithMessage } from "./user-error.ts"

export const fuzz = Command.make("fuzz", {}, () =>
  failWithMessage("fibervisor fuzz: not available yet (Run the isolation and robustness fuzzers (issue 8))", 1)
).pipe(Command.withDescription("Run the isolation and robustness fuzzers (issue 8)"))
