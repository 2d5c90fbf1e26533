/**
 * The committed PV builds (images/<name>/<name>-pv.elf, `%ifdef PV` in the
 * same sources) boot with `fibervisor boot --mode pv` and do the job their
 * native builds do: hello, minios and blk print what the native image prints
 * under hw (minios but its first line, which names the hardware it set up),
 * timer counts its events, nanobench measures every operation. And the CLI
 * refuses a PV image in another mode, before starting anything.
 */
import { mkdtempSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { describe, expect, it } from "@effect/vitest"
import { fibervisorCli } from "../../scripts/cli.ts"

const cli = fibervisorCli(120_000)
/** The console lines of VM `name` in `boot`'s output (without the "name | " prefix). */
const consoleOf = (stdout: string, name: string) =>
  stdout
    .split("\n")
    .filter((l) => l.startsWith(`${name} | `))
    .map((l) => l.slice(name.length + 3))

describe("pv: the PV builds of the images", () => {
  it("hello-pv prints what hello prints, and succeeds", () => {
    const pv = cli("boot", "--mode", "pv", "images/hello/hello-pv.elf")
    const hw = cli("boot", "images/hello/hello.elf")
    expect(pv.status).toBe(0)
    expect(consoleOf(pv.stdout, "hello-pv")).toEqual(consoleOf(hw.stdout, "hello"))
    expect(pv.stdout).toMatch(/hello-pv\s+success/)
  })

  it("minios-pv runs the same job with the same output and counts as minios under hw", () => {
    const pv = cli("boot", "--mode", "pv", "images/minios/minios-pv.elf")
    const hw = cli("boot", "images/minios/minios.elf")
    expect(pv.status).toBe(0)
    const pvLines = consoleOf(pv.stdout, "minios-pv")
    const hwLines = consoleOf(hw.stdout, "minios")
    expect(pvLines[0]).toContain("(Xen PV)")
    expect(pvLines.slice(1)).toEqual(hwLines.slice(1))
    expect(pvLines.at(-1)).toBe("minios: 6 processes, 17 page faults, 51 system calls, all exited correctly")
  })

  it("timer-pv counts ten VIRQ_TIMER events at 100 Hz in 100 ms of virtual time", () => {
    const r = cli("boot", "--mode", "pv", "images/timer/timer-pv.elf")
    expect(r.status).toBe(0)
    expect(consoleOf(r.stdout, "timer-pv")).toEqual([
      "Xen PV timer: 10 VIRQ_TIMER events at 100 Hz (set_timer_op, re-armed by each event)"
    ])
    const vm = JSON.parse(cli("boot", "--mode", "pv", "images/timer/timer-pv.elf", "--json").stdout).vms[0]
    expect(vm.simulatedMs).toBeGreaterThanOrEqual(100)
    expect(vm.engine.pv_upcalls).toBe(10)
  })

  it("nanobench-pv measures every operation, a null hypercall in place of IN", () => {
    const r = cli("boot", "--mode", "pv", "images/nanobench/nanobench-pv.elf")
    expect(r.status).toBe(0)
    const names = consoleOf(r.stdout, "nanobench-pv")
      .map((l) => /^nanobench: (\S+) \d+$/.exec(l)?.[1])
      .filter((n) => n !== undefined)
    expect(names).toEqual(["syscall", "hypercall", "cr-write", "call/ret", "pgfault", "divzero", "ptemod"])
  })

  it("blk-pv keeps its boot counter on a datastore disk through the split block driver", () => {
    const disk = join(mkdtempSync(join(tmpdir(), "pv-blk-")), "datastore.img")
    const first = cli("boot", "--mode", "pv", "images/blk/blk-pv.elf", "--disk", disk)
    expect(first.status).toBe(0)
    expect(consoleOf(first.stdout, "blk-pv")).toEqual(["blk: boot 1, sector 0 written and read back"])
    const second = cli("boot", "--mode", "pv", "images/blk/blk-pv.elf", "--disk", disk)
    expect(consoleOf(second.stdout, "blk-pv")).toEqual(["blk: boot 2, sector 0 written and read back"])
    expect(second.stdout).toMatch(/pv_blk_requests=3/)
  })

  it("a pv VM with two vCPUs is refused before anything starts", () => {
    const r = cli("boot", "--mode", "pv", "--vcpus", "2", "images/hello/hello-pv.elf")
    expect(r.status).toBe(2)
    expect(r.stderr).toContain("VM hello-pv: pv mode runs one vCPU per domain, not 2")
    expect(r.stdout).toBe("")
  })

  it("a PV image in another mode is refused with the reason, exit 2, nothing started", () => {
    for (const mode of ["hw", "bt", "emu"]) {
      const r = cli("boot", "--mode", mode, "images/hello/hello-pv.elf")
      expect(r.status).toBe(2)
      expect(r.stderr).toContain(
        `hello-pv.elf: xen-pv-image: a paravirtualized (Xen) kernel (fibervisor), built for --mode pv, not --mode ${mode}`
      )
      expect(r.stdout).toBe("")
    }
  })
})
