/**
 * The nanobench guest (images/nanobench: the nanobenchmarks of Adams &
 * Agesen, ASPLOS 2006, section 6.2) booted through the CLI under hw, bt and
 * emu: it prints seven TSC-tick costs per operation, one line each. Every
 * number must be positive and finite, and the relations that hold on any
 * x86 must hold in every mode: a near CALL/RET is cheaper than a system
 * call, a page fault, a #DE or a PTE store with INVLPG, and a page fault
 * (an exception plus a PTE update) costs more than a #DE. In hw and emu,
 * CALL/RET is the cheapest of all seven; bt hands RET (an indirect jump) to
 * its monitor, so there it can cost as much as an IN or a CR3 write.
 * The paper's orderings across modes (and native) are asserted by
 * test/bench/modes.test.ts on `bench modes`; here each mode is checked on
 * its own. The table is printed.
 */
import { spawnSync } from "node:child_process"
import { mkdtempSync, readFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { describe, expect, it } from "@effect/vitest"
import { root } from "../scripts/cli.ts"

const BENCHMARKS = ["syscall", "in", "cr-write", "call/ret", "pgfault", "divzero", "ptemod"] as const
type Benchmark = (typeof BENCHMARKS)[number]
const MODES = ["hw", "bt", "emu"] as const

/** The `nanobench: <name> <ticks>` lines of a COM1 transcript. */
const parseNanobench = (serial: string): Partial<Record<Benchmark, number>> => {
  const out: Partial<Record<Benchmark, number>> = {}
  for (const m of serial.matchAll(/^nanobench: (\S+) (\d+)\r?$/gm)) {
    if ((BENCHMARKS as ReadonlyArray<string>).includes(m[1]!)) out[m[1] as Benchmark] = Number(m[2])
  }
  return out
}

const boot = (mode: string) => {
  const serial = join(mkdtempSync(join(tmpdir(), "fibervisor-nanobench-")), "com1")
  const r = spawnSync(
    join(root, "node_modules/.bin/node"),
    [
      join(root, "scripts/fibervisor.ts"),
      "boot",
      join(root, "images/nanobench/nanobench.elf"),
      "--mode",
      mode,
      "--json",
      "--serial",
      serial
    ],
    { cwd: root, encoding: "utf8", timeout: 120_000 }
  )
  const vms = (JSON.parse(r.stdout) as { vms: Array<{ result: string; exitCode: number | null }> }).vms
  return { status: r.status, vm: vms[0]!, serial: readFileSync(serial, "latin1") }
}

describe("nanobench: the ASPLOS 2006 nanobenchmarks under hw, bt and emu", () => {
  it("parses its lines", () => {
    expect(parseNanobench("nanobench: title 1000 x\r\nnanobench: syscall 140\r\nnanobench: call/ret 2\r\n")).toEqual({
      syscall: 140,
      "call/ret": 2
    })
  })

  it("seven positive costs per mode, with the relations every x86 shows", { timeout: 300_000 }, () => {
    const table: Record<string, Partial<Record<Benchmark, number>>> = {}
    for (const mode of MODES) {
      const run = boot(mode)
      expect(run.status, `${mode}: exit status`).toBe(0)
      expect([run.vm.result, run.vm.exitCode], mode).toEqual(["success", 0])
      expect(run.serial).toContain("nanobench: done")
      table[mode] = parseNanobench(run.serial)
    }
    const width = 10
    const lines = [
      ["mode", ...BENCHMARKS].map((s) => s.padStart(width)).join(""),
      ...MODES.map((mode) =>
        [mode, ...BENCHMARKS.map((b) => String(table[mode]![b] ?? "-"))].map((s) => s.padStart(width)).join("")
      )
    ]
    console.log(`nanobench, TSC ticks per operation (default cost profile):\n${lines.join("\n")}`)

    for (const mode of MODES) {
      const t = table[mode]!
      expect(Object.keys(t).sort(), mode).toEqual([...BENCHMARKS].sort())
      for (const b of BENCHMARKS) {
        expect(Number.isFinite(t[b]), `${mode} ${b}`).toBe(true)
        expect(t[b], `${mode} ${b}`).toBeGreaterThan(0)
      }
      const callRet = t["call/ret"]!
      for (const b of ["syscall", "pgfault", "divzero", "ptemod"] as const)
        expect(t[b], `${mode}: ${b} costs more than call/ret`).toBeGreaterThan(callRet)
      expect(t.pgfault, `${mode}: pgfault costs more than divzero`).toBeGreaterThan(t.divzero!)
      if (mode !== "bt") {
        for (const b of BENCHMARKS)
          if (b !== "call/ret") expect(t[b], `${mode}: call/ret is the cheapest (${b})`).toBeGreaterThan(callRet)
      }
    }
  })
})
