/**
 * The hostile guest (issue 7): it stores all over the guest-physical space
 * outside its RAM, writes nearly every port, plays page-table games and
 * triple faults, booted next to well-behaved guests on the same host. It
 * must end with only itself affected.
 */
import { spawnSync } from "node:child_process"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { describe, expect, it } from "@effect/vitest"

const root = fileURLToPath(new URL("../..", import.meta.url))

describe("the hostile guest", () => {
  it("ends in a triple fault while hello and timer, on the same host, succeed", () => {
    const r = spawnSync(
      join(root, "node_modules/.bin/node"),
      [
        join(root, "scripts/fibervisor.ts"),
        "boot",
        "images/hostile/hostile.elf",
        "images/hello/hello.elf",
        "images/timer/timer.elf",
        "--json"
      ],
      { cwd: root, encoding: "utf8", timeout: 60_000 }
    )
    const summary = JSON.parse(r.stdout) as {
      vms: Array<{ vm: string; result: string; exits: Record<string, number> }>
    }
    expect(summary.vms.map((v) => [v.vm, v.result])).toEqual([
      ["hostile", "triple fault"],
      ["hello", "success"],
      ["timer", "success"]
    ])
    // it really tried: tens of thousands of port writes and thousands of stores outside its RAM
    expect(summary.vms[0]!.exits.exit_io_out).toBeGreaterThan(60_000)
    expect(summary.vms[0]!.exits.exit_mmio_write).toBeGreaterThan(3_000)
    expect(r.status).toBe(1)
  })
})
