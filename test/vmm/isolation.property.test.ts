/**
 * Isolation (issue 6 Must show): random guest programs (random bytes, and
 * random port / memory writes) in one VM, next to victim VMs on the same
 * 2-pCPU host. Every run: the hypervisor never throws, every victim finishes
 * with its own correct output, and each victim's guest memory and device
 * state are bit-identical to a baseline run where the hostile VM just halts.
 * Deterministic seed; counterexamples print the hostile program's bytes.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import fc from "fast-check"
import { resetGuestRegisters } from "../../hw/cpu/vmx/vmcs.ts"
import { decodeMachineConfig, defaultMachineConfig } from "../../hw/machine/config.ts"
import { Machine } from "../../hw/machine/machine.ts"
import { Kernel } from "../../kernel/boot.ts"
import { Worlds } from "../../kernel/sched/runtime.ts"
import { defaultVmConfig } from "../../vmm/config.ts"
import { type BootPayload, createVm, type VirtualMachine } from "../../vmm/vm.ts"
import { assemble } from "../hw/cpu/harness.ts"

const VICTIMS = 4

const payload = (bytes: Uint8Array, mode: "real" | "flat32"): BootPayload => {
  const registers = resetGuestRegisters()
  if (mode === "real") {
    registers.cs = { selector: 0, base: 0, limit: 0xffff, access: 0x9b }
    registers.eip = 0x7c00
    return { writes: [{ address: 0x7c00, bytes }], registers }
  }
  const data = { selector: 0x10, base: 0, limit: 0xffffffff, access: 0xc093 }
  registers.cr0 = 0x11
  registers.cs = { selector: 0x08, base: 0, limit: 0xffffffff, access: 0xc09b }
  registers.ds = registers.es = registers.ss = registers.fs = registers.gs = data
  registers.eip = 0x100000
  registers.esp = 0x80000
  return { writes: [{ address: 0x100000, bytes }], registers }
}

/** A victim fills a page with its own pattern, prints "ok<i>" and exits 0. */
const victim = (i: number) =>
  payload(
    assemble(`bits 16
org 0x7c00
  xor ax, ax
  mov es, ax
  mov di, 0x2000
  mov cx, 4096
  mov al, ${0x40 + i}
  rep stosb
  mov dx, 0x3f8
  mov al, 'o'
  out dx, al
  mov al, 'k'
  out dx, al
  mov al, '${i}'
  out dx, al
  xor al, al
  out 0xf4, al
  hlt`).bytes,
    "real"
  )

const debugPorts = (vm: VirtualMachine) =>
  [
    [
      0xf4,
      4,
      {
        name: "debug-exit",
        read: () => 0xffffffff,
        write: (_o: number, _s: number, v: number) => vm.end({ _tag: "DebugExit", code: v })
      }
    ]
  ] as const

/** Everything a victim owns that the hostile VM must not change: its console, its memory, its devices. */
const fingerprint = (vm: VirtualMachine, console: string) => {
  const memory: Array<string> = []
  for (let gfn = 0; gfn < vm.guest.ramBytes / 4096; gfn++) {
    if (vm.guest.frame(gfn, false) === undefined) continue
    const bytes = vm.guest.read(gfn * 4096, 4096)!
    let h = 0x811c9dc5
    for (const b of bytes) h = Math.imul(h ^ b, 0x01000193)
    memory.push(`${gfn}:${(h >>> 0).toString(16)}`)
  }
  return JSON.stringify({
    console,
    ended: vm.ended,
    memory,
    uart: vm.platform.uart.snapshot(),
    pic: vm.platform.pic.snapshot(),
    pit: vm.platform.pit.snapshot(),
    lapic: vm.platform.lapics[0]!.snapshot()
  })
}

const runHost = (hostile: BootPayload) => {
  const machine = new Machine(
    Effect.runSync(decodeMachineConfig("t", JSON.stringify({ ...defaultMachineConfig, ramMiB: 96 })))
  )
  const consoles = new Map<string, string>()
  return Effect.gen(function* () {
    const victims: Array<VirtualMachine> = []
    for (let i = 0; i < VICTIMS; i++) {
      consoles.set(`victim${i}`, "")
      victims.push(
        yield* createVm(defaultVmConfig(`victim${i}`, "inline"), victim(i), {
          console: (b) => consoles.set(`victim${i}`, consoles.get(`victim${i}`)! + String.fromCharCode(b)),
          ports: debugPorts
        })
      )
    }
    const bad = yield* createVm(defaultVmConfig("hostile", "inline"), hostile, { console: () => {}, ports: debugPorts })
    // 5 ms of virtual time: victims finish in microseconds; a hostile VM that never halts runs every cycle of it
    yield* (yield* Worlds).runFor(5_000_000)
    return { victims: victims.map((v, i) => fingerprint(v, consoles.get(`victim${i}`)!)), hostile: bad }
  }).pipe(Effect.provide(Kernel.boot(machine)), Effect.scoped)
}

/** Structured hostile code: port writes to random ports and stores to random (often out-of-RAM) addresses. */
const structured = fc
  .array(
    fc.oneof(
      fc.tuple(fc.integer({ min: 0, max: 0xffff }), fc.integer({ min: 0, max: 255 })).map(([port, v]) => [
        0xba,
        port & 0xff,
        port >>> 8,
        0x00,
        0x00, // mov edx, port
        0xb0,
        v, // mov al, v
        0xee // out dx, al
      ]),
      fc.tuple(fc.integer({ min: 0, max: 0xffffffff }), fc.integer({ min: 0, max: 0xffffffff })).map(([addr, v]) => [
        0xc7,
        0x05,
        addr & 0xff,
        (addr >>> 8) & 0xff,
        (addr >>> 16) & 0xff,
        addr >>> 24,
        v & 0xff,
        (v >>> 8) & 0xff,
        (v >>> 16) & 0xff,
        v >>> 24 // mov dword [addr], v
      ])
    ),
    { minLength: 1, maxLength: 40 }
  )
  .map((parts) => Uint8Array.from(parts.flat()))

describe("isolation between VMs", () => {
  it("random code in one VM changes nothing of the other VMs and never hurts the hypervisor", async () => {
    const baseline = await Effect.runPromise(runHost(payload(Uint8Array.of(0xf4), "real")))
    for (let i = 0; i < VICTIMS; i++) expect(JSON.parse(baseline.victims[i]!).console).toBe(`ok${i}`)
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(
          fc.tuple(
            fc.uint8Array({ minLength: 1, maxLength: 256 }),
            fc.constantFrom("real" as const, "flat32" as const)
          ),
          fc.tuple(structured, fc.constant("flat32" as const))
        ),
        async ([bytes, mode]) => {
          const run = await Effect.runPromise(runHost(payload(bytes, mode)))
          expect(run.victims).toEqual(baseline.victims)
        }
      ),
      { seed: 0x150_1a7e, numRuns: 20 }
    )
  })
})
