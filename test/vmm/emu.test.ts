/**
 * The `emu` execution engine (vmm/engines/emu.ts), in-process VMs on the
 * vmkernel: every guest instruction on the vCPU's own software CPU over the
 * VM's guest-physical space, none on the pCPU.
 *
 *   - a real-mode guest: COM1 through the VM's port bus, INT n through its own
 *     IVT, a debug exit; no VM exit counted, every instruction emulated;
 *   - an interrupt pending at STI arrives right after the one instruction in
 *     its shadow (the interrupt-window request honoured);
 *   - HLT woken by the PIT, in protected mode, ten times;
 *   - a triple fault ends the VM (TripleFault), through the guest's own IVT;
 *   - SMP start-up (INIT/SIPI into real mode) and a reset;
 *   - the emulation cost: the same program retires the same instructions as
 *     under `hw` and its TSC (the VM's clock) advances by at least the
 *     profile's `emulatedInstruction` per instruction more.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { Kernel } from "../../kernel/boot.ts"
import { Worlds } from "../../kernel/sched/runtime.ts"
import { defaultVmConfig, type ExecutionMode, type VmConfig } from "../../vmm/config.ts"
import { type BootPayload, createVm, type VirtualMachine, type VmIo } from "../../vmm/vm.ts"
import {
  debugExitPort,
  flat32,
  flatTables,
  picInit,
  REAL_MODE_PRINT_AND_INT,
  realMode,
  STI_SHADOW_GUEST,
  testMachine
} from "./in-process.ts"

const config = (name: string, vcpus = 1, mode: ExecutionMode = "emu"): VmConfig => ({
  ...defaultVmConfig(name, "inline"),
  vcpus,
  mode
})

/** Port 0xF4 ends the VM with the value written; port 0xF0 records 32-bit values (`values`). */
const testPorts =
  (values: Array<number>) =>
  (vm: VirtualMachine): ReturnType<NonNullable<VmIo["ports"]>> => [
    ...debugExitPort(vm),
    [0xf0, 4, { name: "record", read: () => 0xffffffff, write: (_o: number, _s: number, v: number) => values.push(v) }],
    [0xf8, 1, { name: "reset", read: () => 0xff, write: () => vm.reset() }]
  ]

const run = (vmConfig: VmConfig, payload: BootPayload, ns: number) => {
  let out = ""
  const values: Array<number> = []
  return Effect.gen(function* () {
    const vm = yield* createVm(vmConfig, payload, {
      console: (b) => (out += String.fromCharCode(b)),
      ports: testPorts(values)
    })
    yield* (yield* Worlds).runFor(ns)
    return { vm, out: () => out, values }
  })
}

const noExits = (vm: VirtualMachine) => Object.values(vm.counters).reduce((sum, n) => sum + n, 0)

describe("emu: every instruction on the VM's own software CPU", () => {
  it.effect("a real-mode guest: COM1, INT n through its own IVT, debug exit; no VM exit", () =>
    Effect.gen(function* () {
      const { vm, out } = yield* run(config("real"), realMode(REAL_MODE_PRINT_AND_INT), 50_000_000)
      expect(out()).toBe("real mode, emulated")
      expect(vm.ended).toEqual({ _tag: "DebugExit", code: 0 })
      expect(noExits(vm), "no VM exit: nothing runs in VMX").toBe(0)
      const stats = vm.engineStats()
      expect(stats.emulated_instructions).toBe(vm.instructions)
      expect(stats.device_accesses, "19 OUTs to COM1 and the debug exit").toBe(20)
      expect(vm.shadow, "no shadow page tables").toBeUndefined()
    }).pipe(Effect.provide(Kernel.boot(testMachine())), Effect.scoped)
  )

  it.effect("an interrupt pending at STI arrives right after the one instruction in its shadow", () =>
    // IRQ 0 pending while IF = 0 (the loop asks for the interrupt window); the handler prints "ok" when the
    // interrupted IP is the instruction after STI's shadow (CPUID)
    Effect.gen(function* () {
      const { vm, out } = yield* run(config("sti-shadow"), realMode(STI_SHADOW_GUEST), 50_000_000)
      expect(out()).toBe("ok")
      expect(vm.ended).toEqual({ _tag: "DebugExit", code: 0 })
      expect(vm.engineStats().injected_events).toBe(1)
    }).pipe(Effect.provide(Kernel.boot(testMachine())), Effect.scoped)
  )

  it.effect("HLT sleeps until the PIT's interrupt wakes it (protected mode, its own IDT, ten ticks)", () =>
    Effect.gen(function* () {
      const { vm, out } = yield* run(
        config("hlt-timer"),
        flat32(`
  cli
  lgdt [gdtr]
  lidt [idtr]
  mov eax, timer
  mov [idt + 0x20 * 8], ax
  shr eax, 16
  mov [idt + 0x20 * 8 + 6], ax
  mov esp, 0x90000
${picInit(0xfe)}                        ; PIC: vectors 0x20.., only IRQ 0
  mov al, 0x34          ; PIT channel 0, rate generator, 1 kHz
  out 0x43, al
  mov ax, 1193
  out 0x40, al
  mov al, ah
  out 0x40, al
  xor ebx, ebx
sleep:
  sti
  hlt
  cmp ebx, 10
  jb sleep
  cli
  mov dx, 0x3f8
  mov al, 'T'
  out dx, al
  xor eax, eax
  out 0xf4, al
  hlt
timer:
  inc ebx
  mov al, 0x20
  out 0x20, al
  iret
${flatTables(0x21)}
`),
        100_000_000
      )
      expect(out()).toBe("T")
      expect(vm.ended).toEqual({ _tag: "DebugExit", code: 0 })
      expect(vm.engineStats().injected_events).toBe(10)
      // ten 1 ms ticks slept through (the first one ~1 ms after programming): ~9 ms of the VM's clock, on a
      // few hundred instructions
      expect(vm.now).toBeGreaterThan(8_500_000)
      expect(vm.instructions).toBeLessThan(1_000)
    }).pipe(Effect.provide(Kernel.boot(testMachine())), Effect.scoped)
  )

  it.effect("a triple fault (an event with no IVT to go through) ends the VM", () =>
    Effect.gen(function* () {
      const { vm, out } = yield* run(
        config("triple"),
        realMode(`
  mov dx, 0x3f8
  mov al, '!'
  out dx, al
  lidt [empty]
  int 0x10              ; #GP (past the IVT limit) -> #DF -> shutdown
  mov al, 'x'
  out dx, al
  hlt
empty:
  dw 0
  dd 0
`),
        20_000_000
      )
      expect(out()).toBe("!")
      expect(vm.ended).toEqual({ _tag: "TripleFault" })
    }).pipe(Effect.provide(Kernel.boot(testMachine())), Effect.scoped)
  )

  it.effect("SMP: the APs start in real mode from INIT/SIPI on their own software CPUs (3 vCPUs, 2 pCPUs)", () =>
    Effect.gen(function* () {
      const { vm, out } = yield* run(
        config("smp", 3),
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
  mov eax, 1
  cpuid
  shr ebx, 24
  mov [0x9004], bl
  xor eax, eax
  out 0xf4, al
  hlt
tramp:
bits 16
  mov eax, 1
  cpuid
  shr ebx, 24
  mov [0x9010 + bx], bl
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
      // CPUID's initial APIC ID is the vCPU's index on each software CPU
      expect(Array.from(vm.guest.read(0x9011, 2)!)).toEqual([1, 2])
      expect(vm.guest.read(0x9004, 1)![0]).toBe(0)
    }).pipe(Effect.provide(Kernel.boot(testMachine())), Effect.scoped)
  )

  it.effect("reset reloads the image and restarts the boot vCPU on fresh state", () =>
    Effect.gen(function* () {
      const { vm, out } = yield* run(
        config("resetter"),
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
        20_000_000
      )
      expect(out()).toBe("123")
      expect(vm.resets).toBe(2)
      expect(vm.ended).toEqual({ _tag: "DebugExit", code: 0 })
    }).pipe(Effect.provide(Kernel.boot(testMachine())), Effect.scoped)
  )

  it.effect("the emulation cost: the same instructions take longer in the guest's time than under hw", () =>
    Effect.gen(function* () {
      const program = flat32(`
  rdtsc
  mov ebx, eax
  mov ecx, 10000
spin:
  dec ecx
  jnz spin
  rdtsc
  sub eax, ebx
  out 0xf0, eax
  xor eax, eax
  out 0xf4, al
  hlt
`)
      const m = testMachine()
      const measure = (mode: ExecutionMode) =>
        run(config(`cost-${mode}`, 1, mode), program, 50_000_000).pipe(
          Effect.map(({ vm, values }) => ({ vm, tsc: values[0]!, instructions: vm.instructions })),
          Effect.provide(Kernel.boot(m)),
          Effect.scoped
        )
      const hw = yield* measure("hw")
      const emu = yield* measure("emu")
      expect(hw.vm.ended).toEqual({ _tag: "DebugExit", code: 0 })
      expect(emu.vm.ended).toEqual({ _tag: "DebugExit", code: 0 })
      expect(emu.instructions).toBe(hw.instructions)
      // 20,000 loop instructions between the two RDTSCs, each charged `emulatedInstruction` on top
      const extra = m.profile.emulatedInstruction * 20_000
      expect(emu.tsc - hw.tsc).toBeGreaterThanOrEqual(extra)
      expect(emu.tsc - hw.tsc).toBeLessThan(extra + 2_000)
    })
  )
})
