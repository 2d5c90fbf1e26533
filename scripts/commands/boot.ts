/**
 * `fibervisor boot`: Boot a guest image in a VM (arrives with the VMM, issues 6-7).
 * Not available yet: it says so and exits 1 rather than pretending to work.
 */
import { Command } from "effect/cli"
import { failWithMessage } from "./user-error.ts"

export const boot = Command.make("boot", {}, () =>
  failWithMessage(
    "fibervisor boot: not available yet (Boot a guest image in a VM (arrives with the VMM, issues 6-7))",
    1
  )
).pipe(Command.withDescription("Boot a guest image in a VM (arrives with the VMM, issues 6-7)"))
