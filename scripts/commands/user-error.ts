/**
 * How a command reports a user's mistake (bad config, bad path, unknown
 * benchmark): one clear message on stderr and exit code 2, no stack trace.
 */
import { Console, Effect } from "effect"

export const failWithMessage = (message: string, exitCode = 2) =>
  Console.error(message).pipe(
    Effect.andThen(
      Effect.sync(() => {
        process.exitCode = exitCode
      })
    )
  )
