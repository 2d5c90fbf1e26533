/**
 * `fibervisor build-images`: Rebuild guest images from source and check they match the committed ELFs (issue 7).
 * Not available yet: it says so and exits 1 rather than pretending to work.
 */
import { Command } from "effect/cli"
import { failWithMessage } from "./user-error.ts"

export const buildImages = Command.make("build-images", {}, () =>
  failWithMessage(
    "fibervisor build-images: not available yet (Rebuild guest images from source and check they match the committed ELFs (issue 7))",
    1
  )
).pipe(Command.withDescription("Rebuild guest images from source and check they match the committed ELFs (issue 7)"))
