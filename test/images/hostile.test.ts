/**
 * The hostile guest (issue 7): it stores all over the guest-physical space
 * outside its RAM, writes nearly every port, feeds its virtio disk and NIC
 * bogus rings and descriptors, plays page-table games and triple faults,
 * booted next to well-behaved guests on the same host (whose disks share
 * its datastore and whose NICs share its vSwitch). It must end with only
 * itself affected.
 */
import { mkdtempSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { describe, expect, it } from "@effect/vitest"
import { fibervisorCli } from "../scripts/cli.ts"

describe("the hostile guest", () => {
  it("ends in a triple fault while blk, hello and timer, on the same host, datastore and vSwitch, succeed", () => {
    const disk = join(mkdtempSync(join(tmpdir(), "fibervisor-hostile-")), "datastore.img")
    const r = fibervisorCli(60_000)(
      "boot",
      "images/hostile/hostile.elf",
      "images/blk/blk.elf",
      "images/hello/hello.elf",
      "images/timer/timer.elf",
      "--disk",
      disk,
      "--net",
      "--json"
    )
    const summary = JSON.parse(r.stdout) as {
      vms: Array<{ vm: string; result: string; exits: Record<string, number> }>
    }
    expect(summary.vms.map((v) => [v.vm, v.result])).toEqual([
      ["hostile", "triple fault"],
      ["blk", "success"],
      ["hello", "success"],
      ["timer", "success"]
    ])
    // it really tried: tens of thousands of port writes and thousands of stores outside its RAM
    expect(summary.vms[0]!.exits.exit_io_out).toBeGreaterThan(60_000)
    expect(summary.vms[0]!.exits.exit_mmio_write).toBeGreaterThan(3_000)
    // and found both its virtio devices: 8 probes, then 128 registers read back on each of the two
    expect(summary.vms[0]!.exits.exit_mmio_read).toBeGreaterThanOrEqual(8 + 2 * 128)
    expect(r.status).toBe(1)
  })
})
