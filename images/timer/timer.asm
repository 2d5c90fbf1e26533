; timer: timer interrupts in a guest. Ten PIT (8254) interrupts at 100 Hz
; through the 8259A, then ten local APIC timer interrupts in periodic mode
; (Intel SDM Vol. 3A 10.5.4), each counted by its handler; the guest sleeps
; in HLT between them. Prints what it counted and exits with success.
; Built with -DPV (timer-pv.elf, `boot --mode pv`: docs/pv.md) a Xen PV
; kernel has no PIT, 8259A or local APIC: it binds VIRQ_TIMER to an event
; channel and arms the one-shot set_timer_op 10 ms ahead, again from each
; event (100 Hz), sleeping in SCHEDOP_block instead of HLT; it counts ten
; events, checks that they took at least 100 ms of Xen system time, and
; prints its own line.
%ifdef PV
%include "pv.inc"
%else
%include "multiboot.inc"
%include "serial.inc"
%include "idt.inc"
%include "pic.inc"
%endif

LAPIC equ 0xfee00000

section .text
global _start
_start:
  mov esp, stack_top
%ifdef PV
  call pv_start
  mov ebx, VIRQ_TIMER                     ; the timer is an event channel...
  mov edx, on_timer_event
  call pv_bind_virq
  call pv_system_time
  mov [start_time], eax
  mov [start_time + 4], edx
  mov eax, 10000000                       ; ...armed 10 ms ahead (100 Hz)
  call pv_timer_periodic
.event:
  call pv_block                           ; STI; HLT
  cmp dword [timer_events], 10
  jb .event
  call pv_cli
  call pv_timer_stop
  call pv_system_time                     ; ten events at 100 Hz: 100 ms at least
  sub eax, [start_time]
  sbb edx, [start_time + 4]
  jnz .slow_enough
  cmp eax, 100000000
  jb .too_early
.slow_enough:
  mov esi, virq_done
  call serial_puts
  xor eax, eax
  jmp debug_exit
.too_early:
  mov esi, virq_too_early
  call serial_puts
  mov al, 1
  jmp debug_exit

on_timer_event:                           ; VIRQ_TIMER's handler (pv_event_entry calls it)
  inc dword [timer_events]
  jmp pv_timer_rearm                      ; set_timer_op is one-shot: the next event in 10 ms
%else
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
%endif

section .rodata
pit_done: db "PIT: 10 interrupts at 100 Hz", 13, 10, 0
apic_done: db "local APIC timer: 10 periodic interrupts", 13, 10, 0

%ifdef PV
virq_done: db "Xen PV timer: 10 VIRQ_TIMER events at 100 Hz (set_timer_op, re-armed by each event)", 13, 10, 0
virq_too_early: db "Xen PV timer: 10 events at 100 Hz took less than 100 ms of system time", 13, 10, 0
%endif

section .data
align 4
pit_ticks: dd 0
apic_ticks: dd 0
%ifdef PV
timer_events: dd 0
start_time: dd 0, 0
%endif

section .bss
align 16
stack: resb 4096
stack_top:
