/**
 * Running the `fibervisor` CLI as a user does (the project's Node 24, from
 * the project root), for the tests of its commands.
 */
import { spawnSync } from "node:child_process"
import { join } from "node:path"
import { fileURLToPath } from "node:url"

export const root = fileURLToPath(new URL("../..", import.meta.url))

/** A runner of `fibervisor ARGS...` that kills a run after `timeoutMs`; its exit status and output. */
export const fibervisorCli =
  (timeoutMs: number) =>
  (...args: Array<string>) => {
    const r = spawnSync(join(root, "node_modules/.bin/node"), [join(root, "scripts/fibervisor.ts"), ...args], {
      cwd: root,
      encoding: "utf8",
      timeout: timeoutMs
    })
    return { status: r.status, stdout: r.stdout, stderr: r.stderr }
  }
