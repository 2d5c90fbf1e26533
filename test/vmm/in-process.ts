/**
 * Small in-process guests shared by the per-mode VM tests
 * (test/vmm/modes.test.ts for `hw --ept off`, test/vmm/emu.test.ts): the
 * same program must behave the same whichever engine runs it.
 */
import { Effect } from "effect"
import { decodeMachineConfig, defaultMachineConfig } from "../../hw/machine/config.ts"
import { Machine } from "../../hw/machine/machine.ts"
import { flat32Payload, realModePayload } from "../../vmm/loader/raw-payload.ts"
import type { BootPayload, VirtualMachine } from "../../vmm/vm.ts"
import { assemble } from "../hw/cpu/harness.ts"

/** A 64 MiB host with the default machine configuration. */
export const testMachine = () =>
  new Machine(Effect.runSync(decodeMachineConfig("test", JSON.stringify({ ...defaultMachineConfig, ramMiB: 64 }))))

/** A test-only debug-exit port at 0xF4 (the platform's own arrives with the PC device set): ends `vm` with the value. */
export const debugExitPort = (vm: VirtualMachine) =>
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

/**
 * Assembly (16- or 32-bit) that programs the 8259A pair: ICW1..ICW4 for the master, vectors from 0x20, then
 * the interrupt mask `mask` (a clear bit lets that IRQ through). Clobbers AL.
 */
export const picInit = (mask: number) => `
  mov al, 0x11
  out 0x20, al
  mov al, 0x20
  out 0x21, al
  mov al, 0x04
  out 0x21, al
  mov al, 0x01
  out 0x21, al
  mov al, 0x${mask.toString(16)}
  out 0x21, al
`

/**
 * Assembly data for flat 32-bit code: a GDT (0x08 code, 0x10 data, base 0, 4 GiB) and an IDT of `vectors`
 * DPL-0 interrupt gates through 0x08 with offset 0 (the program writes each handler's address into the gates
 * it uses), labels `gdtr` and `idtr` for LGDT / LIDT and `idt` for the gates.
 */
export const flatTables = (vectors: number) => `
align 8
gdt:
  dq 0
  dq 0x00cf9a000000ffff
  dq 0x00cf92000000ffff
gdtr:
  dw 3 * 8 - 1
  dd gdt
idt:
  times ${vectors} dq 0x00008e0000080000
idtr:
  dw ${vectors} * 8 - 1
  dd idt
`

export const realMode = (source: string): BootPayload =>
  realModePayload(assemble(`bits 16\norg 0x7c00\n${source}`).bytes)
export const flat32 = (source: string): BootPayload => flat32Payload(assemble(`bits 32\norg 0x100000\n${source}`).bytes)

/**
 * Real mode: prints "real mode, emulated" on COM1, then INT 0x77 through its
 * own IVT, whose handler writes 0 to the debug-exit port.
 */
export const REAL_MODE_PRINT_AND_INT = `
  xor ax, ax
  mov ds, ax
  mov word [0x77 * 4], handler
  mov word [0x77 * 4 + 2], 0
  mov si, msg
  mov dx, 0x3f8
print:
  lodsb
  or al, al
  jz done
  out dx, al
  jmp print
done:
  int 0x77
  hlt
handler:
  xor al, al
  out 0xf4, al
  hlt
msg: db "real mode, emulated", 0
`

/**
 * Real mode: IRQ 0 (PIT through the remapped PIC) becomes pending while
 * IF = 0; then STI; CPUID. The handler prints "ok" when the interrupted IP is
 * right after CPUID (the one instruction in STI's shadow ran first), "l"
 * otherwise, and writes 0 to the debug-exit port.
 */
export const STI_SHADOW_GUEST = `
  cli
  xor ax, ax
  mov ds, ax
  mov ss, ax
  mov sp, 0x7000
  mov word [0x20 * 4], handler
  mov word [0x20 * 4 + 2], 0
${picInit(0xfe)}
  mov al, 0x34                  ; PIT channel 0, mode 2, divisor 16 (75 kHz)
  out 0x43, al
  mov al, 0x10
  out 0x40, al
  xor al, al
  out 0x40, al
  mov cx, 0xffff                ; with IF = 0, long enough for a tick to be pending
spin:
  loop spin
  sti
  cpuid
after_cpuid:
  inc cx
  jmp after_cpuid
handler:
  mov bp, sp
  mov dx, 0x3f8
  cmp word [bp], after_cpuid
  jne late
  mov al, 'o'
  out dx, al
  mov al, 'k'
  out dx, al
  jmp done
late:
  mov al, 'l'
  out dx, al
done:
  xor al, al
  out 0xf4, al
  hlt
`
