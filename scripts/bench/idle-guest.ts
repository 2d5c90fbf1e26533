/**
 * The idle guest `bench density` packs by the thousand: a 72-byte real-mode
 * program at 0x7C00 (as a boot sector would sit) that does what an idle OS
 * does between timer ticks, and nothing else:
 *
 *   - points IVT vector 8 at its tick handler, programs the master 8259A
 *     (ICW1-4: vector base 8, 8086 mode; only IRQ 0 unmasked) and the 8254's
 *     channel 0 as a 100 Hz rate generator (1193182 / 11932);
 *   - loops `sti; hlt`: the vCPU sleeps (HLT exit, its world halts) until
 *     the next tick;
 *   - the handler counts the tick in a word at TICKS_ADDRESS and sends a
 *     non-specific EOI (an I/O exit) before IRET.
 *
 * It touches two guest pages (page 0: the IVT; page 7: code, stack, counter),
 * so with its EPT (PML4, PDPT, PD, PT) it owns six machine frames. test/bench
 * checks the bytes disassemble to the listing and that it really sleeps.
 */

import { realModePayload } from "../../vmm/loader/raw-payload.ts"
import type { BootPayload } from "../../vmm/vm.ts"

export const IDLE_CODE = 0x7c00
/** The tick counter (a 16-bit word) the handler increments. */
export const TICKS_ADDRESS = 0x7c46
/** Timer interrupts per second of guest time. */
export const IDLE_TICK_HZ = 100

const HANDLER = 0x7c3a

export const idleGuestSource: ReadonlyArray<string> = [
  "cli",
  "xor ax, ax",
  "mov ds, ax",
  "mov ss, ax",
  "mov sp, 0x7c00",
  "mov word [0x20], 0x7c3a",
  "mov word [0x22], 0x0",
  "mov al, 0x11",
  "out 0x20, al",
  "mov al, 0x8",
  "out 0x21, al",
  "mov al, 0x4",
  "out 0x21, al",
  "mov al, 0x1",
  "out 0x21, al",
  "mov al, 0xfe",
  "out 0x21, al",
  "mov al, 0x34",
  "out 0x43, al",
  "mov al, 0x9c",
  "out 0x40, al",
  "mov al, 0x2e",
  "out 0x40, al",
  "sti",
  "hlt",
  "jmp 0x7c36",
  "push ax",
  "inc word [0x7c46]",
  "mov al, 0x20",
  "out 0x20, al",
  "pop ax",
  "iret"
]

const lo = (n: number) => n & 0xff
const hi = (n: number) => (n >>> 8) & 0xff

/** The program's bytes (IDLE_CODE onward), the counter word (zero) included. */
export const idleGuestBytes: ReadonlyArray<number> = [
  0xfa, // cli
  0x31,
  0xc0, // xor ax, ax
  0x8e,
  0xd8, // mov ds, ax
  0x8e,
  0xd0, // mov ss, ax
  0xbc,
  lo(IDLE_CODE),
  hi(IDLE_CODE), // mov sp, 0x7c00
  0xc7,
  0x06,
  0x20,
  0x00,
  lo(HANDLER),
  hi(HANDLER), // mov word [0x20], handler (IVT vector 8: offset)
  0xc7,
  0x06,
  0x22,
  0x00,
  0x00,
  0x00, // mov word [0x22], 0 (segment)
  0xb0,
  0x11,
  0xe6,
  0x20, // ICW1: edge, cascade, ICW4 needed
  0xb0,
  0x08,
  0xe6,
  0x21, // ICW2: vector base 8
  0xb0,
  0x04,
  0xe6,
  0x21, // ICW3: slave on IRQ 2
  0xb0,
  0x01,
  0xe6,
  0x21, // ICW4: 8086 mode, normal EOI
  0xb0,
  0xfe,
  0xe6,
  0x21, // OCW1: only IRQ 0
  0xb0,
  0x34,
  0xe6,
  0x43, // PIT: channel 0, lobyte/hibyte, mode 2
  0xb0,
  lo(11932),
  0xe6,
  0x40, // 1193182 / 11932 = 100 Hz
  0xb0,
  hi(11932),
  0xe6,
  0x40,
  0xfb, // 0x7c36: sti
  0xf4, // hlt
  0xeb,
  0xfc, // jmp 0x7c36
  0x50, // 0x7c3a (HANDLER): push ax
  0xff,
  0x06,
  lo(TICKS_ADDRESS),
  hi(TICKS_ADDRESS), // inc word [ticks]
  0xb0,
  0x20,
  0xe6,
  0x20, // non-specific EOI
  0x58, // pop ax
  0xcf, // iret
  0x00, // 0x7c45: padding, so the counter is word-aligned
  0x00,
  0x00 // 0x7c46 (TICKS_ADDRESS): the tick counter
]

/** Bytes of code (the listing); a padding byte and the counter follow. */
export const IDLE_CODE_LENGTH = 0x45

/** The boot payload: the program at 0x7C00, the vCPU in real mode at 0000:7C00. */
export const idleGuestPayload = (): BootPayload => realModePayload(idleGuestBytes, IDLE_CODE)
