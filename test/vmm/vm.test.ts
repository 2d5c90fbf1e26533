/**
 * Virtual machines end to end on the vmkernel: a real-mode guest (unrestricted
 * guest) printing on its COM1 and leaving through a debug-exit port, its
 * memory backed lazily, its exits counted; several VMs side by side on two
 * pCPUs with their own consoles; a triple fault ending only its own VM.
 */
import { readFileSync } from "node:fs"
import { fileURLToPath } from "node:url"
import { describe, expect, it } from "@effect/vitest"
import { Effect, Metric } from "effect"
import { resetGuestRegisters } from "../../hw/cpu/vmx/vmcs.ts"
import { Kernel } from "../../kernel/boot.ts"
import { MachineMemory } from "../../kernel/memory/service.ts"
import { Worlds } from "../../kernel/sched/runtime.ts"
import { vmExits } from "../../kernel/trace/metrics.ts"
import { decodeVmConfig, defaultVmConfig } from "../../vmm/config.ts"
import { planMultibootLoad } from "../../vmm/loader/multiboot.ts"
import { addStandardDevices } from "../../vmm/platform/standard.ts"
import { createVm, type VirtualMachine } from "../../vmm/vm.ts"
import { debugExitPort, flat32, realMode, STI_SHADOW_GUEST, testMachine } from "./in-process.ts"

const hello_elf = fileURLToPath(new URL("../../images/hello/hello.elf", import.meta.url))

const hello = (text: string, exitCode: number) =>
  realMode(`
  mov byte [0x9000], 1   ; first touch of an untouched page: an EPT violation backs it
  mov si, msg
  mov dx, 0x3f8
print:
  lodsb
  or al, al
  jz done
  out dx, al
  jmp print
done:
  mov al, ${exitCode}
  out 0xf4, al
  hlt
msg: db "${text}", 0
`)

/** SMP: the boot vCPU starts every AP with INIT + SIPI through its local APIC; each AP adds itself to a counter. */
const smpSource = (vcpus: number) => `
  mov esi, tramp
  mov edi, 0x8000
  mov ecx, tramp_end - tramp
  rep movsb
  mov dword [0xfee00310], 0
  mov dword [0xfee00300], 0x000c4500  ; INIT, all excluding self
  mov dword [0xfee00300], 0x000c4608  ; start-up IPI, vector 8 -> 0x8000
wait_aps:
  cmp word [0x9000], ${vcpus - 1}
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
`

/**
 * Flat 32-bit code that routes the PIT through the I/O APIC (8259A masked) to
 * vector 0x40, waits (with `waitInstruction`) until `ticks` ticks have
 * arrived, writes "T" and exits 0.
 */
const pitTicksThroughIoApic = (divisor: number, ticks: number, waitInstruction: "hlt" | "pause") =>
  flat32(`
  lgdt [gdtr]                       ; a GDT for the gate's code selector 0x08
  mov eax, on_tick                  ; an IDT gate for vector 0x40
  mov [idt + 0x40 * 8], ax
  mov word [idt + 0x40 * 8 + 2], 0x08
  mov word [idt + 0x40 * 8 + 4], 0x8e00
  shr eax, 16
  mov [idt + 0x40 * 8 + 6], ax
  lidt [idtr]
  mov al, 0xff                      ; the 8259A pair fully masked
  out 0x21, al
  out 0xa1, al
  mov dword [0xfee000f0], 0x1ff     ; local APIC software-enabled
  mov dword [0xfec00000], 0x15      ; I/O APIC pin 2 (the PIT): destination APIC 0
  mov dword [0xfec00010], 0
  mov dword [0xfec00000], 0x14      ; vector 0x40, fixed, edge, unmasked
  mov dword [0xfec00010], 0x40
  mov al, 0x34                      ; PIT rate generator at 1193182 Hz / divisor
  out 0x43, al
  mov ax, ${divisor}
  out 0x40, al
  mov al, ah
  out 0x40, al
  sti
wait_ticks:
  ${waitInstruction}
  cmp dword [ticks], ${ticks}
  jb wait_ticks
  cli
  mov dx, 0x3f8
  mov al, 'T'
  out dx, al
  xor al, al
  out 0xf4, al
  hlt
on_tick:
  inc dword [ticks]
  mov dword [0xfee000b0], 0         ; local APIC EOI
  iret
align 8
gdt: dq 0, 0x00cf9a000000ffff, 0x00cf92000000ffff
gdtr: dw 3 * 8 - 1
  dd gdt
idtr: dw 256 * 8 - 1
  dd idt
ticks: dd 0
align 8
idt: times 256 * 8 db 0`)

describe("virtual machines (hw mode)", () => {
  it.effect("a real-mode guest prints on COM1 and exits through the debug port", () => {
    const m = testMachine()
    let out = ""
    return Effect.gen(function* () {
      const vm = yield* createVm(defaultVmConfig("hello", "inline"), hello("hi from a VM", 0), {
        console: (b) => (out += String.fromCharCode(b)),
        ports: debugExitPort
      })
      yield* (yield* Worlds).runFor(50_000_000)
      expect(out).toBe("hi from a VM")
      expect(vm.ended).toEqual({ _tag: "DebugExit", code: 0 })
      expect(vm.counters.exit_io_out).toBe("hi from a VM".length + 1)
      // every guest instruction retired exactly once: the store that exits on first touch (EPT violation) is
      // re-executed and counted then; each OUT exits (not retired on the pCPU) and the VMM carries it out.
      // 3 before the loop, 5 per character, 3 for the final NUL, MOV AL and OUT 0xF4 (which ends the VM)
      expect(vm.instructions).toBe(3 + 5 * "hi from a VM".length + 3 + 2)
      // lazy backing: only the code page (written by the loader) and the page touched at 0x9000 are backed
      expect(vm.counters.exit_ept_backing).toBe(1)
      expect(vm.guest.frame(0x9000 >>> 12, false)).toBeDefined()
      expect(vm.guest.frame(0x100, false)).toBeUndefined()
    }).pipe(Effect.provide(Kernel.boot(m)), Effect.scoped)
  })

  it.effect("an interrupt pending at STI arrives right after the next instruction, even when that one exits", () => {
    // IRQ 0 (the PIT, vector 0x20) is pending while IF = 0; STI's shadow covers exactly one instruction,
    // CPUID, which exits to the VMM and completes there: the handler prints "ok" when the interrupted IP is
    // the instruction after CPUID, "l" when one more instruction ran first (SDM 3A 6.8.3)
    const m = testMachine()
    let out = ""
    return Effect.gen(function* () {
      const vm = yield* createVm(defaultVmConfig("sti-shadow", "inline"), realMode(STI_SHADOW_GUEST), {
        console: (b) => (out += String.fromCharCode(b)),
        ports: debugExitPort
      })
      yield* (yield* Worlds).runFor(20_000_000)
      expect(out).toBe("ok")
      expect(vm.ended).toEqual({ _tag: "DebugExit", code: 0 })
    }).pipe(Effect.provide(Kernel.boot(m)), Effect.scoped)
  })

  it.effect("per-VM, per-exit-reason counters become Effect metrics when the VM's scope closes", () => {
    const m = testMachine()
    return Effect.gen(function* () {
      yield* Effect.scoped(
        Effect.gen(function* () {
          yield* createVm(defaultVmConfig("counted", "inline"), hello("abc", 0), {
            console: () => {},
            ports: debugExitPort
          })
          yield* (yield* Worlds).runFor(10_000_000)
        })
      )
      const outs = yield* Metric.value(Metric.withAttributes(vmExits, { vm: "counted", reason: "exit_io_out" }))
      expect(outs.count).toBe(4)
    }).pipe(Effect.provide(Kernel.boot(m)), Effect.provideService(Metric.MetricRegistry, new Map()), Effect.scoped)
  })

  it.effect("eight VMs on two pCPUs, each with its own console, all finish", () => {
    const m = testMachine()
    const outs = new Map<string, string>()
    return Effect.gen(function* () {
      const vms: Array<VirtualMachine> = []
      for (let i = 0; i < 8; i++) {
        const name = `vm${i}`
        outs.set(name, "")
        vms.push(
          yield* createVm(defaultVmConfig(name, "inline"), hello(`I am ${name}`, i), {
            console: (b) => outs.set(name, outs.get(name)! + String.fromCharCode(b)),
            ports: debugExitPort
          })
        )
      }
      yield* (yield* Worlds).runFor(200_000_000)
      for (let i = 0; i < 8; i++) {
        expect(outs.get(`vm${i}`)).toBe(`I am vm${i}`)
        expect(vms[i]!.ended).toEqual({ _tag: "DebugExit", code: i })
      }
    }).pipe(Effect.provide(Kernel.boot(m)), Effect.scoped)
  })

  it.effect("an SMP guest starts its APs with INIT/SIPI and counts them (3 vCPUs on 2 pCPUs)", () => {
    const m = testMachine()
    let out = ""
    return Effect.gen(function* () {
      const config = { ...defaultVmConfig("smp", "inline"), vcpus: 3 }
      const vm = yield* createVm(config, flat32(smpSource(3)), {
        console: (b) => (out += String.fromCharCode(b)),
        ports: debugExitPort
      })
      yield* (yield* Worlds).runFor(100_000_000)
      expect(out).toBe("A2")
      expect(vm.ended).toEqual({ _tag: "DebugExit", code: 0 })
      expect(vm.vcpus.every((v) => v.instructions > 0)).toBe(true)
    }).pipe(Effect.provide(Kernel.boot(m)), Effect.scoped)
  })

  it.effect("pause stops a VM's vCPUs without releasing anything; resume continues where it stopped", () => {
    const m = testMachine()
    let out = ""
    return Effect.gen(function* () {
      const worlds = yield* Worlds
      const vm = yield* createVm(
        defaultVmConfig("ticker", "inline"),
        realMode(`
  mov dx, 0x3f8
again:
  mov al, '.'
  out dx, al
  mov cx, 2000
spin:
  loop spin
  jmp again`),
        { console: (b) => (out += String.fromCharCode(b)) }
      )
      yield* worlds.runFor(2_000_000)
      const before = out.length
      expect(before).toBeGreaterThan(10)
      vm.pause()
      expect(vm.state).toBe("paused")
      yield* worlds.runFor(5_000_000)
      const paused = out.length
      expect(paused - before).toBeLessThanOrEqual(1) // at most the dot of the quantum in flight
      vm.resume()
      yield* worlds.runFor(2_000_000)
      expect(out.length).toBeGreaterThan(paused + 10)
    }).pipe(Effect.provide(Kernel.boot(m)), Effect.scoped)
  })

  it.effect("reset reloads the kernel image and restarts the boot vCPU; guest RAM outside the image survives", () => {
    const m = testMachine()
    let out = ""
    return Effect.gen(function* () {
      const vm = yield* createVm(
        defaultVmConfig("resetter", "inline"),
        realMode(`
  inc byte [0x9000]
  mov al, [0x9000]
  add al, '0'
  mov dx, 0x3f8
  out dx, al
  cmp al, '3'
  jae finish
  out 0xf8, al          ; the test's reset port
  hlt
finish:
  xor al, al
  out 0xf4, al
  hlt`),
        {
          console: (b) => (out += String.fromCharCode(b)),
          ports: (v) => [
            ...debugExitPort(v),
            [0xf8, 1, { name: "reset", read: () => 0xff, write: () => v.reset() }] as const
          ]
        }
      )
      yield* (yield* Worlds).runFor(20_000_000)
      expect(out).toBe("123")
      expect(vm.resets).toBe(2)
      expect(vm.ended).toEqual({ _tag: "DebugExit", code: 0 })
    }).pipe(Effect.provide(Kernel.boot(m)), Effect.scoped)
  })

  it.effect(
    "an invalid config, a truncated ELF and an image outside RAM fail alone with clear messages; the running VM is untouched",
    () => {
      const m = testMachine()
      let out = ""
      return Effect.gen(function* () {
        const worlds = yield* Worlds
        const good = yield* createVm(
          defaultVmConfig("steady", "inline"),
          realMode(`
  mov dx, 0x3f8
  mov cx, 3
again:
  mov al, '.'
  out dx, al
  push cx
  mov cx, 5000
spin:
  loop spin
  pop cx
  loop again
  xor al, al
  out 0xf4, al
  hlt`),
          { console: (b) => (out += String.fromCharCode(b)), ports: debugExitPort }
        )
        yield* worlds.runFor(100_000)
        // an invalid VM config: every problem listed, nothing created
        const badConfig = yield* Effect.flip(
          decodeVmConfig("bad.json", JSON.stringify({ ...defaultVmConfig("x", "k"), name: "", vcpus: 0, mode: "bt" }))
        )
        expect(badConfig.message).toContain('["name"]')
        expect(badConfig.message).toContain('["vcpus"]')
        // a truncated ELF: the loader refuses it with its reason
        const truncated = planMultibootLoad(readFileSync(hello_elf).subarray(0, 100), { ramBytes: 16 << 20 })
        expect(truncated._tag).toBe("Failure")
        if (truncated._tag === "Failure") expect(truncated.failure.message).toMatch(/^truncated|^not-multiboot/)
        // an image that places bytes outside the VM's RAM: createVm fails, nothing half-started
        const outside = yield* Effect.flip(
          createVm(
            { ...defaultVmConfig("too-big", "inline"), memoryMiB: 2 },
            { writes: [{ address: 3 << 20, bytes: Uint8Array.of(0xf4) }], registers: resetGuestRegisters() },
            { console: () => {} }
          )
        )
        expect(outside.message).toContain("outside its 2 MiB of RAM")
        expect((yield* (yield* MachineMemory).stats).vms.map((v) => v.vm)).not.toContain("too-big")
        yield* worlds.runFor(50_000_000)
        expect(out).toBe("...")
        expect(good.ended).toEqual({ _tag: "DebugExit", code: 0 })
        expect((yield* worlds.stats).vms.map((v) => v.name)).toEqual(["steady"])
      }).pipe(Effect.provide(Kernel.boot(m)), Effect.scoped)
    }
  )

  it.effect("device interrupts also reach the I/O APIC: PIT ticks routed through it with the 8259A masked", () => {
    const m = testMachine()
    let out = ""
    return Effect.gen(function* () {
      const vm = yield* createVm(defaultVmConfig("ioapic", "inline"), pitTicksThroughIoApic(1193, 3, "hlt"), {
        console: (b) => (out += String.fromCharCode(b))
      })
      addStandardDevices(vm)
      yield* (yield* Worlds).runFor(20_000_000)
      expect(out).toBe("T")
      expect(vm.ended).toEqual({ _tag: "DebugExit", code: 0 })
    }).pipe(Effect.provide(Kernel.boot(m)), Effect.scoped)
  })

  it.effect("a compute-bound guest gets its 10 kHz PIT ticks on time, not once per scheduler quantum", () => {
    const m = testMachine()
    let out = ""
    return Effect.gen(function* () {
      // divisor 119: a tick every 99.7 us; the guest never halts, so only the preemption timer,
      // armed for the next device deadline, stops it for the tick (SDM 3C 26.5.1)
      const vm = yield* createVm(defaultVmConfig("busy", "inline"), pitTicksThroughIoApic(119, 20, "pause"), {
        console: (b) => (out += String.fromCharCode(b))
      })
      addStandardDevices(vm)
      yield* (yield* Worlds).runFor(50_000_000)
      expect(out).toBe("T")
      expect(vm.ended).toEqual({ _tag: "DebugExit", code: 0 })
      // 20 ticks take 19-20 periods (1.89-1.99 ms: programming the counter may itself raise OUT0, an
      // edge); were ticks delivered only at 1 ms quantum boundaries it would take ~20 ms
      expect(vm.now).toBeGreaterThan(1_850_000)
      expect(vm.now).toBeLessThan(2_200_000)
    }).pipe(Effect.provide(Kernel.boot(m)), Effect.scoped)
  })

  it.effect("a triple fault ends only its own VM", () => {
    const m = testMachine()
    let out = ""
    return Effect.gen(function* () {
      const bad = yield* createVm(defaultVmConfig("crasher", "inline"), realMode("lidt [zero]\nint 3\nzero: dq 0"), {
        console: () => {},
        ports: debugExitPort
      })
      const good = yield* createVm(defaultVmConfig("survivor", "inline"), hello("still here", 0), {
        console: (b) => (out += String.fromCharCode(b)),
        ports: debugExitPort
      })
      yield* (yield* Worlds).runFor(50_000_000)
      expect(bad.ended).toEqual({ _tag: "TripleFault" })
      expect(good.ended).toEqual({ _tag: "DebugExit", code: 0 })
      expect(out).toBe("still here")
    }).pipe(Effect.provide(Kernel.boot(m)), Effect.scoped)
  })
})
