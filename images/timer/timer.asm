; timer: timer interrupts in a guest. Ten PIT (8254) interrupts at 100 Hz
; through the 8259A, then ten local APIC timer interrupts in periodic mode
; (Intel SDM Vol. 3A 10.5.4), each counted by its handler; the guest sleeps
; in HLT between them. Prints what it counted and exits with success.
%include "multiboot.inc"
%include "serial.inc"
%include "idt.inc"
%include "pic.inc"

LAPIC equ 0xfee00000

section .text
global _start
_start:
  mov esp, stack_top
  call idt_init
  mov ecx, 0x20
  mov edx, on_pit
  call idt_set
  mov ecx, 0x27                   ; IRQ7 can be spurious
  mov edx, on_spurious
  call idt_set
  mov ecx, 0x30
  mov edx, on_apic_timer
  call idt_set
  mov ecx, 0xff                   ; the local APIC's spurious vector
  mov edx, on_spurious
  call idt_set
  call pic_init
  mov cx, 11932                   ; 1193182 / 11932 = 100 Hz
  call pit_periodic
  sti
.pit:
  hlt
  cmp dword [pit_ticks], 10
  jb .pit
  cli
  mov al, 0xff                    ; mask the PIC again
  out 0x21, al
  mov esi, pit_done
  call serial_puts

  mov dword [LAPIC + 0xf0], 0x1ff         ; SVR: software enable, spurious vector 0xFF
  mov dword [LAPIC + 0x3e0], 0x3          ; divide by 16
  mov dword [LAPIC + 0x320], 0x20030      ; LVT timer: periodic, vector 0x30
  mov dword [LAPIC + 0x380], 100000       ; initial count
  sti
.apic:
  hlt
  cmp dword [apic_ticks], 10
  jb .apic
  cli
  mov dword [LAPIC + 0x320], 0x10030      ; mask the timer
  mov esi, apic_done
  call serial_puts
  xor eax, eax
  jmp debug_exit

on_pit:
  inc dword [pit_ticks]
  push eax
  call pic_eoi
  pop eax
  iret

on_apic_timer:
  inc dword [apic_ticks]
  mov dword [LAPIC + 0xb0], 0             ; EOI
  iret

on_spurious:
  iret

section .rodata
pit_done: db "PIT: 10 interrupts at 100 Hz", 13, 10, 0
apic_done: db "local APIC timer: 10 periodic interrupts", 13, 10, 0

section .data
align 4
pit_ticks: dd 0
apic_ticks: dd 0

section .bss
align 16
stack: resb 4096
stack_top:
