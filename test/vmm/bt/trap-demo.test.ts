/**
 * Why `bt` translates (issue 10): x86 cannot be virtualized by trap-and-
 * emulate alone (Popek & Goldberg 1974; Robin & Irvine 2000; Adams & Agesen,
 * ASPLOS 2006, section 2). images/sensitive checks at CPL 0 what the
 * sensitive-but-unprivileged instructions show the guest, one "ok   NAME" or
 * "FAIL NAME: got X, expected Y" line each, and exits with the number of
 * failures. The image is booted through the CLI under
 *
 *   hw    VT-x: the guest runs at ring 0 of non-root operation: all ok;
 *   bt    the guest kernel deprivileged to ring 1 under the monitor's
 *         GDT/IDT/TSS, its code translated: every one of these instructions
 *         becomes a callout that runs it on the virtual CPU: all ok, the
 *         same COM1 bytes as hw (and as QEMU: test/images/qemu-differential);
 *   trap  the same deprivileging without the translator: the privileged
 *         instructions still trap and are emulated, but these run directly
 *         at ring 1 against the pCPU's state, so exactly the checks listed
 *         in `trapFailures` fail, each for the reason given there; the VM
 *         still ends cleanly (the guest's own verdict, no monitor error).
 */
import { spawnSync } from "node:child_process"
import { mkdtempSync, readFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { beforeAll, describe, expect, it } from "@effect/vitest"
import {
  GDT_LIMIT,
  GDT_LINEAR,
  IDT_LIMIT,
  IDT_LINEAR,
  TSS_SELECTOR_BASE
} from "../../../vmm/engines/bt/monitor-region.ts"
import { root } from "../../scripts/cli.ts"

const IMAGE = "images/sensitive/sensitive.elf"

interface Summary {
  readonly result: string
  readonly exitCode: number | null
  readonly engine?: Record<string, number>
}

interface Check {
  readonly name: string
  readonly ok: boolean
  readonly got?: number
  readonly expected?: number
}

interface Run {
  readonly status: number | null
  readonly stderr: string
  readonly serial: string
  readonly vm: Summary
  readonly checks: ReadonlyArray<Check>
}

/** `fibervisor boot images/sensitive/sensitive.elf --mode MODE`, its summary and its check lines. */
const boot = (mode: "hw" | "bt" | "trap"): Run => {
  const serialFile = join(mkdtempSync(join(tmpdir(), "fibervisor-trap-demo-")), "com1")
  const r = spawnSync(
    join(root, "node_modules/.bin/node"),
    [join(root, "scripts/fibervisor.ts"), "boot", IMAGE, "--mode", mode, "--serial", serialFile, "--json"],
    { cwd: root, encoding: "utf8", timeout: 60_000 }
  )
  let vms: Array<Summary>
  try {
    vms = (JSON.parse(r.stdout) as { vms: Array<Summary> }).vms
  } catch {
    throw new Error(`${mode}: no JSON summary (status ${r.status})\n${r.stdout}\n${r.stderr}`)
  }
  const serial = readFileSync(serialFile, "latin1")
  const checks = serial
    .split("\r\n")
    .map((line) => /^(ok {3}|FAIL )(.*?)(?:: got 0x([0-9a-f]{8}), expected 0x([0-9a-f]{8}))?$/.exec(line))
    .filter((m) => m !== null)
    .map(
      (m): Check =>
        m[1] === "ok   "
          ? { name: m[2]!, ok: true }
          : { name: m[2]!, ok: false, got: Number.parseInt(m[3]!, 16), expected: Number.parseInt(m[4]!, 16) }
    )
  return { status: r.status, stderr: r.stderr, serial, vm: vms[0]!, checks }
}

/** Every check the image makes, in the order it prints them. */
const allChecks = [
  "mov from cs reads the guest's selector, RPL 0",
  "push cs pushes the guest's selector, RPL 0",
  "mov from ss reads the guest's selector, RPL 0",
  "pushf after cli shows IF = 0",
  "pushf after sti shows IF = 1",
  "popf sets IF",
  "popf clears IF",
  "IRQ0 requested while IF = 0",
  "popf clears IF: the pending IRQ0 is held off",
  "sti lets the held-off IRQ0 in",
  "popf sets IOPL = 3",
  "popf sets IOPL = 0",
  "sgdt returns the guest's GDT base",
  "sgdt returns the guest's GDT limit",
  "sidt returns the guest's IDT base",
  "sidt returns the guest's IDT limit",
  "sldt returns the guest's LDT selector",
  "str returns the guest's TSS selector",
  "mov from cr0: PE = 1, PG = 0",
  "smsw returns the guest's CR0",
  "lar: the guest's code segment",
  "lar: the guest's DPL-3 data segment",
  "lar: the guest's busy TSS",
  "lsl: the guest's byte-granular limit",
  "lsl: the guest's page-granular limit",
  "lsl: the guest's LDT segment",
  "verr: the guest's readable code segment",
  "verr: the guest's execute-only code segment is not readable",
  "verw: the guest's data segment",
  "verw: the guest's code segment is not writable",
  "mov from cr0: PE = 1, PG = 1 after the guest set it",
  "smsw returns the guest's CR0 with paging on"
]

/** LAR/LSL leave their destination alone when ZF = 0: the image preloads this marker. */
const NOT_LOADED = 0xbad0bad0

/**
 * The checks that fail under `trap`, why, and (where it is the monitor's
 * state leaking through) what the guest got instead.
 */
const trapFailures: ReadonlyArray<{ name: string; why: string; got?: number }> = [
  {
    name: "mov from cs reads the guest's selector, RPL 0",
    why: "MOV from CS does not trap: it shows CS with RPL 1, the ring the guest kernel really runs at",
    got: 0x08 | 1
  },
  { name: "push cs pushes the guest's selector, RPL 0", why: "PUSH CS does not trap: RPL 1 again", got: 0x08 | 1 },
  {
    name: "mov from ss reads the guest's selector, RPL 0",
    why: "MOV from SS does not trap: SS.RPL = CPL = 1 on the deprivileged pCPU",
    got: 0x10 | 1
  },
  {
    name: "pushf after sti shows IF = 1",
    why: "STI traps (CPL 1 > IOPL 0) and sets the virtual IF, but PUSHF does not trap and pushes the pCPU's IF, kept 0 at ring 1",
    got: 0
  },
  {
    name: "popf sets IF",
    why: "POPF at CPL > IOPL leaves IF alone without a fault: the monitor never learns the guest enabled interrupts",
    got: 0
  },
  {
    name: "popf clears IF: the pending IRQ0 is held off",
    why: "POPF did not clear the virtual IF either, so the monitor delivered IRQ0 while the guest believed interrupts were off",
    got: 1
  },
  { name: "popf sets IOPL = 3", why: "POPF at CPL > 0 leaves IOPL alone without a fault", got: 0 },
  { name: "sgdt returns the guest's GDT base", why: "SGDT does not trap: the monitor's GDT", got: GDT_LINEAR },
  { name: "sgdt returns the guest's GDT limit", why: "SGDT does not trap: the monitor's GDT", got: GDT_LIMIT },
  { name: "sidt returns the guest's IDT base", why: "SIDT does not trap: the monitor's IDT", got: IDT_LINEAR },
  { name: "sidt returns the guest's IDT limit", why: "SIDT does not trap: the monitor's IDT", got: IDT_LIMIT },
  { name: "sldt returns the guest's LDT selector", why: "SLDT does not trap: the pCPU runs with no LDT", got: 0 },
  {
    name: "str returns the guest's TSS selector",
    why: "STR does not trap: the monitor's TSS",
    got: TSS_SELECTOR_BASE
  },
  {
    name: "smsw returns the guest's CR0",
    why: "SMSW does not trap: the pCPU's CR0, with the monitor's PG and WP (MOV from CR0 traps and is right)"
  },
  {
    name: "lar: the guest's code segment",
    why: "LAR does not trap: it looks in the monitor's GDT, whose guest slots are empty (ZF = 0)",
    got: NOT_LOADED
  },
  { name: "lar: the guest's DPL-3 data segment", why: "LAR: the monitor's GDT", got: NOT_LOADED },
  { name: "lar: the guest's busy TSS", why: "LAR: the monitor's GDT", got: NOT_LOADED },
  { name: "lsl: the guest's byte-granular limit", why: "LSL does not trap: the monitor's GDT", got: NOT_LOADED },
  { name: "lsl: the guest's page-granular limit", why: "LSL: the monitor's GDT", got: NOT_LOADED },
  { name: "lsl: the guest's LDT segment", why: "LSL: the pCPU has no LDT", got: NOT_LOADED },
  { name: "verr: the guest's readable code segment", why: "VERR does not trap: the monitor's GDT", got: 0 },
  { name: "verw: the guest's data segment", why: "VERW does not trap: the monitor's GDT", got: 0 },
  {
    name: "smsw returns the guest's CR0 with paging on",
    why: "SMSW: the pCPU's CR0 has the monitor's WP, which the guest did not set"
  }
]

describe("trap-and-emulate cannot virtualize x86, binary translation can (images/sensitive)", () => {
  const runs: Partial<Record<"hw" | "bt" | "trap", Run>> = {}
  beforeAll(() => {
    runs.hw = boot("hw")
    runs.bt = boot("bt")
    runs.trap = boot("trap")
  }, 180_000)

  it("hw: every check ok, exit code 0", () => {
    const hw = runs.hw!
    expect(hw.checks.map((c) => c.name)).toEqual(allChecks)
    expect(hw.checks.filter((c) => !c.ok)).toEqual([])
    expect(hw.serial).toContain(`sensitive: 0 of ${allChecks.length} checks failed\r\n`)
    expect(hw.vm.result).toBe("success")
    expect(hw.vm.exitCode).toBe(0)
    expect(hw.status).toBe(0)
  })

  it("bt: every check ok, the same COM1 bytes as hw", () => {
    const bt = runs.bt!
    expect(bt.serial).toBe(runs.hw!.serial)
    expect(bt.vm.result).toBe("success")
    expect(bt.vm.exitCode).toBe(0)
    expect(bt.status).toBe(0)
  })

  it("bt: the sensitive instructions ran as callouts to the monitor, not directly", () => {
    const engine = runs.bt!.vm.engine ?? {}
    for (const mnemonic of ["pushf", "popf", "sgdt", "sidt", "sldt", "str", "smsw", "lar", "lsl", "verr", "verw"]) {
      expect(engine[`callout_${mnemonic}`], mnemonic).toBeGreaterThan(0)
    }
  })

  it("trap: a clean VM end with the guest's verdict (no monitor error)", () => {
    const trap = runs.trap!
    expect(trap.checks.map((c) => c.name)).toEqual(allChecks)
    const failed = trap.checks.filter((c) => !c.ok).length
    expect(trap.serial).toContain(`sensitive: ${failed} of ${allChecks.length} checks failed\r\n`)
    expect(trap.vm.result).toBe(`failure (exit code ${failed})`)
    expect(trap.vm.exitCode).toBe(failed)
    expect(trap.status).toBe(1)
    expect(trap.stderr).not.toMatch(/Error|bt:/)
    // nothing was translated: the guest kernel ran directly at ring 1
    expect(trap.vm.engine?.blocks_translated).toBe(0)
  })

  it("trap: exactly the checks on sensitive-but-unprivileged instructions fail", () => {
    const failed = runs.trap!.checks.filter((c) => !c.ok).map((c) => c.name)
    expect(failed).toEqual(trapFailures.map((f) => f.name))
  })

  for (const failure of trapFailures) {
    it(`trap: FAIL ${failure.name} -- ${failure.why}`, () => {
      const check = runs.trap!.checks.find((c) => c.name === failure.name)
      expect(check?.ok).toBe(false)
      if (failure.got !== undefined) expect(check?.got).toBe(failure.got)
    })
  }

  // the pCPU happens to agree with the guest (its IF is 0 at ring 1, its IOPL 0),
  // the instruction is privileged and traps (MOV from CR0), or ZF = 0 is both
  // the right answer and what the monitor's empty GDT slots give
  it("trap: ok where the pCPU happens to agree or the instruction is privileged (which proves nothing)", () => {
    const passed = runs.trap!.checks.filter((c) => c.ok).map((c) => c.name)
    expect(passed).toEqual(
      expect.arrayContaining([
        "pushf after cli shows IF = 0", // the pCPU's IF is 0 at ring 1 anyway
        "popf clears IF", // PUSHF shows the pCPU's IF, 0 anyway: the IRQ0 check shows the virtual IF stayed 1
        "popf sets IOPL = 0", // IOPL is 0 anyway
        "mov from cr0: PE = 1, PG = 0", // MOV from CR0 is privileged: it traps and is emulated
        "mov from cr0: PE = 1, PG = 1 after the guest set it",
        "verr: the guest's execute-only code segment is not readable", // ZF = 0, as for an empty slot
        "verw: the guest's code segment is not writable"
      ])
    )
  })
})
