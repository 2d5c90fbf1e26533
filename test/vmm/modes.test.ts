/**
 * Every built execution mode on every committed guest image (issue 10 "Must
 * show"): `hw` (VT-x with EPT), `hw --ept off` (first-generation VT-x: shadow
 * page tables, real mode stepped in the emulator; vmm/shadow/
 * vmx-shadow-paging.ts, vmm/engines/invalid-guest-state.ts) and `bt` (ring
 * deprivileging + binary translation + shadow page tables on a pCPU without
 * the extension; vmm/engines/bt/) and `emu` (pure emulation: every
 * instruction on the VM's own software CPU; vmm/engines/emu.ts):
 *
 *   - every image boots through the CLI under the four to the same COM1
 *     bytes, the same result and exit code per VM and the same exit status
 *     (a timing image, boot.json `"timing": true`: the same lines once their
 *     numbers are taken out, and success everywhere);
 *   - the summary's engine counters show each engine at work: with EPT none;
 *     without EPT the shadow (minios: CR3 switches, writes to traced page
 *     tables, true faults for its demand paging; smp: real mode emulated);
 *     in bt no VM exit at all, the translator (blocks translated, TC hits,
 *     chained jumps, callouts) and the shadow (hidden faults; minios: CR3
 *     switches, true faults, IRET and MOV CR3 callouts; smp: its APs' real
 *     mode interpreted); in emu no VM exit either, every instruction
 *     emulated;
 *   - the hostile guest next to blk, hello and timer, without EPT and in bt:
 *     only it is affected;
 *   - VMs made in-process (as vm.test.ts) without EPT: a real-mode guest
 *     (emulated), an interrupt arriving after STI's shadow in emulated real
 *     mode, SMP start-up (INIT/SIPI into real mode), reset;
 *   - the configuration: `ept` in a VM config, `--ept on|off`, `--mode` and
 *     their errors.
 */
import { spawn, spawnSync } from "node:child_process"
import { existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { Kernel } from "../../kernel/boot.ts"
import { Worlds } from "../../kernel/sched/runtime.ts"
import { decodeVmConfig, defaultVmConfig, type VmConfig } from "../../vmm/config.ts"
import { type BootPayload, createVm, type VmIo } from "../../vmm/vm.ts"
import { timingLines } from "../images/timing.ts"
import { root } from "../scripts/cli.ts"
import {
  debugExitPort,
  flat32,
  REAL_MODE_PRINT_AND_INT,
  realMode,
  STI_SHADOW_GUEST,
  testMachine
} from "./in-process.ts"

// ---------------------------------------------------------------------------
// every image under every built mode, through the CLI

interface Summary {
  readonly vm: string
  readonly result: string
  readonly exitCode: number | null
  readonly instructions: number
  readonly exits: Record<string, number>
  readonly engine?: Record<string, number>
}

/** The modes compared, as `fibervisor boot` flags. */
const modes = {
  hw: ["--mode", "hw"],
  "hw --ept off": ["--mode", "hw", "--ept", "off"],
  bt: ["--mode", "bt"],
  emu: ["--mode", "emu"]
} as const
type Mode = keyof typeof modes

/** `fibervisor boot ARGS...` in a child process (asynchronous, so one image's modes boot side by side). */
const fibervisor = (args: ReadonlyArray<string>, timeoutMs = 120_000) =>
  new Promise<{ status: number | null; stdout: string; stderr: string }>((resolve, reject) => {
    const child = spawn(join(root, "node_modules/.bin/node"), [join(root, "scripts/fibervisor.ts"), ...args], {
      cwd: root,
      timeout: timeoutMs
    })
    let stdout = ""
    let stderr = ""
    child.stdout.setEncoding("utf8").on("data", (s: string) => (stdout += s))
    child.stderr.setEncoding("utf8").on("data", (s: string) => (stderr += s))
    child.on("error", reject)
    child.on("close", (status) => resolve({ status, stdout, stderr }))
  })

const summaries = (r: { stdout: string; stderr: string }, what: string): Array<Summary> => {
  try {
    return (JSON.parse(r.stdout) as { vms: Array<Summary> }).vms
  } catch {
    throw new Error(`${what}: no JSON summary\n${r.stdout}\n${r.stderr}`)
  }
}

/** images/<name>/<name>.elf, with how it is booted: vCPUs from its boot.json, a disk, a NIC pair. */
const images = readdirSync(join(root, "images"))
  .filter((dir) => existsSync(join(root, "images", dir, `${dir}.elf`)))
  .map((name) => {
    const settings = join(root, "images", name, "boot.json")
    const parsed = existsSync(settings)
      ? (JSON.parse(readFileSync(settings, "utf8")) as { vcpus?: number; timing?: boolean })
      : {}
    return { name, image: `images/${name}/${name}.elf`, vcpus: parsed.vcpus ?? 1, timing: parsed.timing === true }
  })

const bootImage = async (image: { name: string; image: string; vcpus: number }, mode: Mode) => {
  const dir = mkdtempSync(join(tmpdir(), "fibervisor-modes-"))
  const serial = join(dir, "com1")
  const args = ["boot", image.image, "--vcpus", String(image.vcpus), ...modes[mode], "--serial", serial, "--json"]
  // blk needs its disk (a fresh datastore: every run sees "boot 1"); net pings a second VM through the vSwitch
  if (image.name === "blk") args.push("--disk", join(dir, "datastore.img"))
  if (image.name === "net") args.splice(2, 0, image.image, "--net")
  const r = await fibervisor(args)
  const vms = summaries(r, `${image.name} under ${mode}`)
  return { status: r.status, serial: readFileSync(serial, "latin1"), vms }
}

/** The sum of the `callout_<mnemonic>` counters: guest instructions a translated block handed to the monitor. */
const callouts = (engine: Record<string, number>) =>
  Object.entries(engine)
    .filter(([name]) => name.startsWith("callout_"))
    .reduce((sum, [, n]) => sum + n, 0)

describe("every image under hw, hw --ept off, bt and emu: the same COM1 bytes, results and exit status", () => {
  it("has the images the task names", () => {
    expect(images.map((i) => i.name)).toEqual(
      expect.arrayContaining(["hello", "timer", "minios", "smp", "blk", "net", "cpu-selftest", "hostile"])
    )
  })

  for (const image of images) {
    it(image.name, { timeout: 240_000 }, async () => {
      const [hw, off, bt, emu] = await Promise.all([
        bootImage(image, "hw"),
        bootImage(image, "hw --ept off"),
        bootImage(image, "bt"),
        bootImage(image, "emu")
      ])
      const outcome = (run: typeof hw) => run.vms.map((v) => [v.vm, v.result, v.exitCode])
      expect(hw.serial.length).toBeGreaterThan(0)
      if (image.timing) {
        // RDTSC measurements differ between modes: the same lines without their numbers, success everywhere
        expect(timingLines(off.serial), "hw --ept off: COM1 lines").toEqual(timingLines(hw.serial))
        expect(timingLines(bt.serial), "bt: COM1 lines").toEqual(timingLines(hw.serial))
        expect(timingLines(emu.serial), "emu: COM1 lines").toEqual(timingLines(hw.serial))
        for (const run of [hw, off, bt, emu]) {
          expect(run.vms.map((v) => [v.result, v.exitCode])).toEqual([["success", 0]])
          expect(run.status).toBe(0)
        }
      } else {
        expect(off.serial, "hw --ept off: COM1").toBe(hw.serial)
        expect(bt.serial, "bt: COM1").toBe(hw.serial)
        expect(emu.serial, "emu: COM1").toBe(hw.serial)
      }
      expect(outcome(off), "hw --ept off: results").toEqual(outcome(hw))
      expect(outcome(bt), "bt: results").toEqual(outcome(hw))
      expect(outcome(emu), "emu: results").toEqual(outcome(hw))
      expect(off.status, "hw --ept off: exit status").toBe(hw.status)
      expect(bt.status, "bt: exit status").toBe(hw.status)
      expect(emu.status, "emu: exit status").toBe(hw.status)

      // EPT: no engine counters, EPT backing; shadow paging: hidden faults on every image, no EPT exits
      for (const vm of hw.vms) expect(vm.engine).toBeUndefined()
      for (const vm of off.vms) {
        expect(vm.engine?.shadow_hidden_faults).toBeGreaterThan(0)
        expect(vm.exits.exit_ept_backing).toBeUndefined()
        expect(vm.exits.exit_exception).toBeGreaterThan(0)
      }
      // bt: no VT-x, so no VM exit at all; the translator and the shadow at work on every image (each has loops)
      for (const vm of bt.vms) {
        const engine = vm.engine!
        expect(vm.exits, `${vm.vm}: bt makes no VM exits`).toEqual({})
        expect(engine.blocks_translated).toBeGreaterThan(0)
        expect(engine.guest_instructions_translated).toBeGreaterThanOrEqual(engine.blocks_translated!)
        expect(engine.tc_hits).toBeGreaterThan(0)
        expect(engine.chained_jumps).toBeGreaterThan(0)
        expect(callouts(engine), "some sensitive instruction was a callout").toBeGreaterThan(0)
        expect(engine.shadow_hidden_faults).toBeGreaterThan(0)
        expect(engine.realmode_emulated_instructions, "hw --ept off's counter").toBeUndefined()
      }
      // emu: no VM exit, no shadow, no translation: every instruction the guest retired was emulated
      for (const vm of emu.vms) {
        const engine = vm.engine!
        expect(vm.exits, `${vm.vm}: emu makes no VM exits`).toEqual({})
        expect(engine.emulated_instructions).toBe(vm.instructions)
        expect(engine.device_accesses).toBeGreaterThan(0)
        expect(engine.shadow_hidden_faults).toBeUndefined()
        expect(engine.blocks_translated).toBeUndefined()
      }

      if (image.name === "minios") {
        expect(hw.serial).toContain("17 page faults")
        const shadow = off.vms[0]!.engine!
        // a CR3 switch per context switch; the kernel writes PTEs of live (traced) page tables on demand
        // faults; those faults (and child 5's write to its read-only code page) are true faults for the guest
        expect(shadow.shadow_cr3_switches).toBeGreaterThan(10)
        expect(shadow.shadow_traced_writes).toBeGreaterThan(0)
        expect(shadow.shadow_true_faults).toBeGreaterThanOrEqual(17)
        // bt: the same shadow work, the true faults reflected through the guest's IDT; IRET back to its
        // processes and the MOV to CR3 of each context switch are callouts (callout_mov also counts MOVs
        // to or from segment registers)
        const engine = bt.vms[0]!.engine!
        expect(engine.shadow_cr3_switches).toBeGreaterThan(10)
        expect(engine.shadow_true_faults).toBeGreaterThanOrEqual(17)
        expect(engine.reflected_exceptions).toBeGreaterThanOrEqual(engine.shadow_true_faults!)
        expect(engine.callout_iret).toBeGreaterThan(0)
        expect(engine.callout_mov).toBeGreaterThan(0)
      }
      if (image.name === "smp") {
        // the APs start in real mode (SIPI): VM entry cannot run it without unrestricted guest, and bt cannot
        // deprivilege it: both step it in the emulator
        expect(off.vms[0]!.engine!.realmode_emulated_instructions).toBeGreaterThan(0)
        expect(bt.vms[0]!.engine!.interpreted_instructions).toBeGreaterThan(0)
      }
    })
  }
})

describe("the hostile guest without EPT, in bt and in emu: only it is affected (as test/images/hostile.test.ts)", () => {
  const hostileHost = async (mode: Mode) => {
    const disk = join(mkdtempSync(join(tmpdir(), "fibervisor-hostile-modes-")), "datastore.img")
    const r = await fibervisor([
      "boot",
      "images/hostile/hostile.elf",
      "images/blk/blk.elf",
      "images/hello/hello.elf",
      "images/timer/timer.elf",
      "--disk",
      disk,
      "--net",
      ...modes[mode],
      "--json"
    ])
    const vms = summaries(r, `hostile under ${mode}`)
    expect(vms.map((v) => [v.vm, v.result])).toEqual([
      ["hostile", "triple fault"],
      ["blk", "success"],
      ["hello", "success"],
      ["timer", "success"]
    ])
    expect(r.status).toBe(1)
    return vms[0]!
  }

  it("hw --ept off: a triple fault while blk, hello and timer on the same host, datastore and vSwitch succeed", {
    timeout: 240_000
  }, async () => {
    const hostile = await hostileHost("hw --ept off")
    // its stores outside RAM are #PF exits the shadow MMU finds to be MMIO: emulated, never mapped
    expect(hostile.exits.exit_mmio_write).toBeGreaterThan(3_000)
    expect(hostile.exits.exit_io_out).toBeGreaterThan(60_000)
  })

  it("bt: a triple fault while blk, hello and timer on the same host, datastore and vSwitch succeed", {
    timeout: 240_000
  }, async () => {
    const hostile = await hostileHost("bt")
    const engine = hostile.engine!
    expect(hostile.exits).toEqual({})
    // every port write is an OUT the translator hands to the monitor
    expect(engine.callout_out).toBeGreaterThan(60_000)
    // its stores outside RAM (one per MiB, 16 MiB .. 3.75 GiB) fault into the monitor, which finds them to be
    // MMIO and emulates them: emulated without being callouts, and never mapped (a shadow fill each would be
    // thousands of hidden faults)
    expect(engine.emulated_instructions! - callouts(engine)).toBeGreaterThan(3_000)
    expect(engine.shadow_hidden_faults).toBeLessThan(100)
  })

  it("emu: a triple fault while blk, hello and timer on the same host, datastore and vSwitch succeed", {
    timeout: 240_000
  }, async () => {
    const hostile = await hostileHost("emu")
    // its port writes and its stores outside RAM reach the VM's devices from its own software CPU, no exit
    expect(hostile.exits).toEqual({})
    expect(hostile.engine!.device_accesses).toBeGreaterThan(60_000)
  })
})

// ---------------------------------------------------------------------------
// in-process VMs (as vm.test.ts), EPT off

const noEpt = (name: string, vcpus = 1): VmConfig => ({ ...defaultVmConfig(name, "inline"), vcpus, ept: false })

const run = (config: VmConfig, payload: BootPayload, ns: number, ports: VmIo["ports"] = debugExitPort) => {
  let out = ""
  return Effect.gen(function* () {
    const vm = yield* createVm(config, payload, { console: (b) => (out += String.fromCharCode(b)), ports })
    yield* (yield* Worlds).runFor(ns)
    return { vm, out: () => out }
  })
}

describe("VMs without EPT (in-process)", () => {
  it.effect("a real-mode guest runs in the emulator (no unrestricted guest); INT n goes through its own IVT", () =>
    Effect.gen(function* () {
      const { vm, out } = yield* run(noEpt("real"), realMode(REAL_MODE_PRINT_AND_INT), 50_000_000)
      expect(out()).toBe("real mode, emulated")
      expect(vm.ended).toEqual({ _tag: "DebugExit", code: 0 })
      const stats = vm.engineStats()
      expect(stats.realmode_emulated_instructions).toBe(vm.instructions)
      expect(stats.shadow_cr3_switches, "no VM entry ever happened").toBe(0)
      expect(vm.counters.exit_io_out, "the OUTs ran in the emulator, not as exits").toBe(0)
    }).pipe(Effect.provide(Kernel.boot(testMachine())), Effect.scoped)
  )

  it.effect(
    "an interrupt pending at STI arrives right after the one instruction in its shadow, in emulated real mode",
    () =>
      // as vm.test.ts: IRQ 0 pending while IF = 0; the handler prints "ok" when the interrupted IP is after CPUID
      Effect.gen(function* () {
        const { vm, out } = yield* run(noEpt("sti-shadow"), realMode(STI_SHADOW_GUEST), 50_000_000)
        expect(out()).toBe("ok")
        expect(vm.ended).toEqual({ _tag: "DebugExit", code: 0 })
      }).pipe(Effect.provide(Kernel.boot(testMachine())), Effect.scoped)
  )

  it.effect(
    "SMP: the APs start in real mode from INIT/SIPI (emulated), then run on shadow paging (3 vCPUs, 2 pCPUs)",
    () =>
      Effect.gen(function* () {
        const { vm, out } = yield* run(
          noEpt("smp", 3),
          flat32(`
  mov esi, tramp
  mov edi, 0x8000
  mov ecx, tramp_end - tramp
  rep movsb
  mov dword [0xfee00310], 0
  mov dword [0xfee00300], 0x000c4500  ; INIT, all excluding self
  mov dword [0xfee00300], 0x000c4608  ; start-up IPI, vector 8 -> 0x8000
wait_aps:
  cmp word [0x9000], 2
  jb wait_aps
  mov dx, 0x3f8
  mov al, 'A'
  out dx, al
  mov ax, [0x9000]
  add al, '0'
  out dx, al
  xor eax, eax
  out 0xf4, al
  hlt
tramp:
bits 16
  lock inc word [0x9000]
ap_sleep:
  cli
  hlt
  jmp ap_sleep
tramp_end:
`),
          100_000_000
        )
        expect(out()).toBe("A2")
        expect(vm.ended).toEqual({ _tag: "DebugExit", code: 0 })
        expect(vm.vcpus.every((v) => v.instructions > 0)).toBe(true)
        expect(vm.engineStats().realmode_emulated_instructions).toBeGreaterThanOrEqual(2 * 3)
      }).pipe(Effect.provide(Kernel.boot(testMachine())), Effect.scoped)
  )

  it.effect("SMP with paging: every vCPU turns paging on over one page directory; they share the VM's shadows", () =>
    // the BSP builds identity paging for 0-4 MiB and the local APIC, plus an alias at 0x40000000 of the
    // counter's page, turns it on, starts 3 APs (real mode -> protected mode -> paging on with the same CR3):
    // each adds 1 through the alias; then the BSP remaps the alias (a write to a live, traced page table) and
    // reads through it
    Effect.gen(function* () {
      const program = (vcpus: number) => `
PD equ 0x20000
PT0 equ 0x21000
PT1 equ 0x22000
COUNTER equ 0x23000
OTHER equ 0x24000
PT2 equ 0x25000
ALIAS equ 0x40000000
  mov edi, PD
  xor eax, eax
  mov ecx, 3 * 1024
  rep stosd
  mov edi, PT2
  mov ecx, 1024
  rep stosd
  mov dword [PD], PT0 | 3
  mov dword [PD + (ALIAS >> 22) * 4], PT1 | 3
  mov dword [PD + (0xfee00000 >> 22) * 4], PT2 | 3
  mov dword [PT2 + ((0xfee00000 >> 12) & 0x3ff) * 4], 0xfee00000 | 3   ; the local APIC
  mov edi, PT0
  mov eax, 3
fill:
  stosd
  add eax, 0x1000
  cmp edi, PT0 + 4096
  jb fill
  mov dword [PT1], COUNTER | 3
  mov dword [OTHER], 0x77
  mov eax, PD
  mov cr3, eax
  mov eax, cr0
  or eax, 0x80000000
  mov cr0, eax
  mov esi, tramp
  mov edi, 0x8000
  mov ecx, tramp_end - tramp
  rep movsb
  mov dword [0xfee00310], 0
  mov dword [0xfee00300], 0x000c4500
  mov dword [0xfee00300], 0x000c4608
wait_aps:
  cmp dword [ALIAS], ${vcpus - 1}
  jb wait_aps
  mov dx, 0x3f8
  mov al, 'P'
  out dx, al
  mov al, [COUNTER]
  add al, '0'
  out dx, al
  mov dword [PT1], OTHER | 3        ; remap the alias: no INVLPG (the shadow is coherent anyway)
  invlpg [ALIAS]
  mov al, [ALIAS]
  out dx, al
  mov eax, cr3
  cmp eax, PD
  jne bad
  xor eax, eax
  out 0xf4, al
  hlt
bad:
  mov al, 1
  out 0xf4, al
  hlt
ap32:
  mov ax, 0x10
  mov ds, ax
  mov es, ax
  mov ss, ax
  mov eax, PD
  mov cr3, eax
  mov eax, cr0
  or eax, 0x80000000
  mov cr0, eax
  lock inc dword [ALIAS]
ap_sleep:
  cli
  hlt
  jmp ap_sleep
tramp:
bits 16
  cli
  xor ax, ax
  mov ds, ax
  o32 lgdt [0x8000 + (gdtr - tramp)]
  mov eax, cr0
  or eax, 1
  mov cr0, eax
  jmp dword 0x08:ap32
align 8
gdt:
  dq 0
  dq 0x00cf9a000000ffff
  dq 0x00cf92000000ffff
gdtr:
  dw 3 * 8 - 1
  dd 0x8000 + (gdt - tramp)
tramp_end:
`
      const { vm, out } = yield* run(noEpt("smp-paging", 4), flat32(program(4)), 100_000_000)
      expect(out()).toBe(`P3${String.fromCharCode(0x77)}`)
      expect(vm.ended).toEqual({ _tag: "DebugExit", code: 0 })
      const stats = vm.engineStats()
      expect(stats.shadow_traced_writes).toBeGreaterThan(0)
      expect(stats.realmode_emulated_instructions).toBeGreaterThanOrEqual(3 * 7)
      // the same program with EPT gives the same bytes
      const withEpt = yield* run(
        { ...defaultVmConfig("smp-paging-ept", "inline"), vcpus: 4 },
        flat32(program(4)),
        100_000_000
      )
      expect(withEpt.out()).toBe(out())
    }).pipe(Effect.provide(Kernel.boot(testMachine())), Effect.scoped)
  )

  it.effect("reset reloads the image and restarts the boot vCPU; the shadows start afresh", () =>
    Effect.gen(function* () {
      const { vm, out } = yield* run(
        noEpt("resetter"),
        realMode(`
  inc byte [0x9000]
  mov al, [0x9000]
  add al, '0'
  mov dx, 0x3f8
  out dx, al
  cmp al, '3'
  jae finish
  out 0xf8, al
  hlt
finish:
  xor al, al
  out 0xf4, al
  hlt`),
        20_000_000,
        (v) => [...debugExitPort(v), [0xf8, 1, { name: "reset", read: () => 0xff, write: () => v.reset() }] as const]
      )
      expect(out()).toBe("123")
      expect(vm.resets).toBe(2)
      expect(vm.ended).toEqual({ _tag: "DebugExit", code: 0 })
    }).pipe(Effect.provide(Kernel.boot(testMachine())), Effect.scoped)
  )

  it.effect("with EPT (the default) the VM has no shadow and no engine counters", () =>
    Effect.gen(function* () {
      const { vm } = yield* run(defaultVmConfig("ept", "inline"), realMode("xor al, al\nout 0xf4, al\nhlt"), 10_000_000)
      expect(vm.shadow).toBeUndefined()
      expect(vm.engineStats()).toEqual({})
      expect(vm.ended).toEqual({ _tag: "DebugExit", code: 0 })
    }).pipe(Effect.provide(Kernel.boot(testMachine())), Effect.scoped)
  )
})

// ---------------------------------------------------------------------------
// configuration

describe("configuration: `ept` in a VM config, --ept on|off, --mode", () => {
  const decode = (fields: Record<string, unknown>) =>
    Effect.runSync(
      Effect.result(decodeVmConfig("vm.json", JSON.stringify({ ...defaultVmConfig("vm", "k.elf"), ...fields })))
    )

  it("ept is optional (EPT when left out), a boolean, and only for mode hw", () => {
    const left = decode({})
    expect(left._tag === "Success" && left.success.ept).toBeUndefined()
    const off = decode({ ept: false })
    expect(off._tag === "Success" && off.success.ept).toBe(false)
    const wrong = decode({ ept: "off" })
    expect(wrong._tag).toBe("Failure")
    if (wrong._tag === "Failure") expect(wrong.failure.message).toContain('["ept"]')
    const bt = decode({ mode: "bt", ept: false })
    expect(bt._tag).toBe("Failure")
    if (bt._tag === "Failure") expect(bt.failure.message).toContain('"ept" applies to mode "hw" only')
  })

  const cli = (...args: Array<string>) =>
    spawnSync(join(root, "node_modules/.bin/node"), [join(root, "scripts/fibervisor.ts"), ...args], {
      cwd: root,
      encoding: "utf8",
      timeout: 60_000
    })

  it("--ept with another value is refused with the reason, exit 2, nothing started", () => {
    const r = cli("boot", "images/hello/hello.elf", "--ept", "maybe")
    expect(r.status).toBe(2)
    expect(r.stderr).toContain("--ept maybe: give on or off")
    expect(r.stdout).toBe("")
  })

  it("--ept off with another mode, and an unmodified kernel in pv mode, are refused with the reason, exit 2", () => {
    const bt = cli("boot", "images/hello/hello.elf", "--mode", "bt", "--ept", "off")
    expect(bt.status).toBe(2)
    expect(bt.stderr).toContain("--ept off: only for --mode hw (not bt)")
    expect(bt.stdout).toBe("")
    const pv = cli("boot", "images/hello/hello.elf", "--mode", "pv")
    expect(pv.status).toBe(2)
    expect(pv.stderr).toContain("hello.elf: not-xen-pv: not a paravirtualized kernel")
    expect(pv.stdout).toBe("")
  })

  it("--mode bt prints the translator's and the shadow's counters in the summary", () => {
    const r = cli("boot", "images/hello/hello.elf", "--mode", "bt")
    expect(r.status).toBe(0)
    expect(r.stdout).toMatch(/hello\s+success/)
    expect(r.stdout).toMatch(/blocks_translated=[1-9]/)
    expect(r.stdout).toMatch(/tc_hits=[1-9]/)
    expect(r.stdout).toMatch(/shadow_hidden_faults=[1-9]/)
  })

  it("--ept off prints the engine's counters in the summary; a VM config file says `ept: false` itself", () => {
    const r = cli("boot", "images/hello/hello.elf", "--ept", "off")
    expect(r.status).toBe(0)
    expect(r.stdout).toMatch(/hello\s+success/)
    expect(r.stdout).toMatch(/engine/)
    expect(r.stdout).toMatch(/shadow_hidden_faults=[1-9]/)
    const plain = cli("boot", "images/hello/hello.elf")
    expect(plain.stdout).not.toContain("shadow_")
    const dir = mkdtempSync(join(tmpdir(), "fibervisor-ept-config-"))
    const file = join(dir, "noept.json")
    writeFileSync(file, JSON.stringify({ ept: false, boot: { kernel: join(root, "images/hello/hello.elf") } }))
    const config = cli("boot", file, "--json")
    expect(config.status).toBe(0)
    const vm = (JSON.parse(config.stdout) as { vms: Array<Summary> }).vms[0]!
    expect(vm.engine?.shadow_hidden_faults).toBeGreaterThan(0)
  })
})
