/**
 * `fibervisor build-images [--write]`: rebuild every guest image from its
 * source (nasm + ld, Debian packages) and fail if a committed ELF differs
 * from what its source builds to; --write updates the committed ELFs.
 */
import { fileURLToPath } from "node:url"
import { Console, Effect } from "effect"
import { Command, Flag } from "effect/cli"
import {
  buildImage,
  listImageSources,
  sameBytes,
  staleGeneratedSources,
  writeGeneratedSources,
  writeImage
} from "../images/build.ts"
import { failWithMessage } from "./user-error.ts"

const write = Flag.Boolean("write").pipe(
  Flag.withDescription("Write the rebuilt ELFs next to their sources"),
  Flag.withDefault(false)
)

export const buildImages = Command.make("build-images", { write }, ({ write }) =>
  Effect.gen(function* () {
    const root = fileURLToPath(new URL("../..", import.meta.url))
    if (write) writeGeneratedSources(root)
    const staleGenerated = staleGeneratedSources(root)
    if (staleGenerated.length > 0) {
      return yield* failWithMessage(
        `generated sources are stale: ${staleGenerated.map((g) => g.path).join(", ")} (run with --write to regenerate them)`,
        1
      )
    }
    const sources = listImageSources(root)
    const builds = yield* Effect.try({
      try: () => sources.map((s) => buildImage(root, s)),
      catch: (e) =>
        `build failed (are Debian's nasm and binutils installed?): ${(e as { stderr?: Buffer }).stderr?.toString() ?? String(e)}`
    }).pipe(Effect.catch((message: string) => failWithMessage(message, 1).pipe(Effect.as([]))))
    if (builds.length === 0 && sources.length > 0) return
    const stale: Array<string> = []
    for (const b of builds) {
      const same = sameBytes(b.built, b.committed)
      if (!same && write) writeImage(b)
      if (!same && !write) stale.push(b.name)
      yield* Console.log(
        `${b.name.padEnd(16)} ${b.built.length} bytes  ${same ? "matches its source" : write ? "written" : "DIFFERS from its source"}`
      )
    }
    if (stale.length > 0) {
      yield* failWithMessage(
        `committed images differ from their sources: ${stale.join(", ")} (run with --write to update them)`,
        1
      )
    }
  })
).pipe(Command.withDescription("Rebuild guest images from source (nasm, ld) and check them against the committed ELFs"))
