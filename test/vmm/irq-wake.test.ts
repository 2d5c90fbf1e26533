/**
 * A vCPU halted in HLT with interrupts enabled and no timer armed sleeps in
 * the scheduler; an interrupt raised from outside its VM's own run (a
 * virtio-net frame from another VM, a back end completing) must wake it, as
 * INTR wakes a real CPU from HLT (SDM 3A 8.4 HLT: "an enabled interrupt").
 * Before vmm/vm.ts woke halted vCPUs from its IRQ sink, such a VM slept
 * until its next timer, or for ever without one.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { Kernel } from "../../kernel/boot.ts"
import { Worlds } from "../../kernel/sched/runtime.ts"
import { defaultVmConfig } from "../../vmm/config.ts"
import { createVm } from "../../vmm/vm.ts"
import { debugExitPort, flat32, flatTables, picInit, testMachine } from "./in-process.ts"

describe("interrupts from outside the VM's run", () => {
  it.effect("wake a vCPU halted with nothing armed", () =>
    Effect.gen(function* () {
      let out = ""
      const vm = yield* createVm(
        defaultVmConfig("irq-wake", "inline"),
        flat32(`
  cli
  lgdt [gdtr]
  lidt [idtr]
  mov eax, handler
  mov [idt + 0x25 * 8], ax
  shr eax, 16
  mov [idt + 0x25 * 8 + 6], ax
  mov esp, 0x90000
${picInit(0xdf)}                        ; PIC: vectors 0x20.., only IRQ 5
  mov dx, 0x3f8
  mov al, 'h'
  out dx, al
  sti
  hlt
  jmp $
handler:
  mov dx, 0x3f8
  mov al, 'w'
  out dx, al
  xor al, al
  out 0xf4, al
  hlt
${flatTables(0x26)}
`),
        {
          console: (b) => (out += String.fromCharCode(b)),
          ports: debugExitPort
        }
      )
      const worlds = yield* Worlds
      yield* worlds.runFor(5_000_000)
      expect(out).toBe("h")
      expect(vm.vcpus[0]!.halted).toBe(true)
      vm.platform.setIrq(5, true)
      yield* worlds.runFor(5_000_000)
      expect(out).toBe("hw")
      expect(vm.ended).toEqual({ _tag: "DebugExit", code: 0 })
    }).pipe(Effect.provide(Kernel.boot(testMachine())), Effect.scoped)
  )
})
