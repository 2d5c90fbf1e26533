; smp: a multiprocessor guest. The boot CPU asks fw_cfg how many CPUs there
; are (QEMU's fw_cfg, key 0x05), starts the others with INIT and a start-up
; IPI through its local APIC (Intel SDM Vol. 3A 8.4.4), and every CPU adds its
; share of 1..1000 to a shared total with LOCK ADD. The application
; processors enter protected mode through a real-mode trampoline copied to
; 0x8000 (SIPI vector 8). Prints the CPU count and the total; exits 0 when the
; total is 500500.
%include "multiboot.inc"
%include "serial.inc"
%include "print.inc"

LAPIC     equ 0xfee00000
TRAMPOLINE equ 0x8000
N         equ 1000

section .text
global _start
_start:
  mov esp, bsp_stack_top
  ; the CPU count from fw_cfg: select key 0x0005 (16-bit write to 0x510), read 2 bytes at 0x511
  mov dx, 0x510
  mov ax, 0x0005
  out dx, ax
  inc dx
  in al, dx
  mov bl, al
  in al, dx
  mov bh, al
  movzx eax, bx
  mov [cpus], eax
  ; the trampoline to 0x8000
  mov esi, trampoline
  mov edi, TRAMPOLINE
  mov ecx, trampoline_end - trampoline
  rep movsb
  mov dword [LAPIC + 0x310], 0
  mov dword [LAPIC + 0x300], 0x000c4500   ; INIT to all excluding self
  mov dword [LAPIC + 0x300], 0x000c4608   ; start-up IPI, vector 8
  ; the boot CPU's share is slice 0
  xor eax, eax
  call add_share
  ; wait for every AP
  mov ebx, [cpus]
  dec ebx
.wait:
  pause
  cmp [aps_done], ebx
  jb .wait
  mov esi, msg_cpus
  call serial_puts
  mov eax, [cpus]
  call print_decimal
  mov esi, msg_total
  call serial_puts
  mov eax, [total]
  call print_decimal
  mov esi, newline
  call serial_puts
  xor eax, eax
  cmp dword [total], N * (N + 1) / 2
  je .ok
  mov al, 1
.ok:
  jmp debug_exit

; add_share: EAX = slice index; add the slice's part of 1..N (slice i gets the k with k mod cpus = i) to [total]
add_share:
  mov ecx, eax
  inc ecx                  ; first k = index + 1
  xor edx, edx             ; partial sum
.loop:
  cmp ecx, N
  ja .done
  add edx, ecx
  add ecx, [cpus]
  jmp .loop
.done:
  lock add [total], edx
  ret

; protected-mode entry of an application processor (after the trampoline)
ap_entry:
  mov ax, 0x10
  mov ds, ax
  mov es, ax
  mov ss, ax
  mov eax, 1
  lock xadd [next_slice], eax     ; slices 1, 2, ... in arrival order
  mov esp, eax
  shl esp, 12
  add esp, ap_stacks
  call add_share
  lock inc dword [aps_done]
.sleep:
  cli
  hlt
  jmp .sleep

; the real-mode trampoline, copied to 0x8000 and entered at CS:IP = 0800:0000
trampoline:
bits 16
  cli
  xor ax, ax
  mov ds, ax
  o32 lgdt [TRAMPOLINE + (ap_gdt_descriptor - trampoline)]
  mov eax, cr0
  or eax, 1
  mov cr0, eax
  jmp dword 0x08:ap_entry
align 8
ap_gdt:
  dq 0
  dq 0x00cf9a000000ffff            ; 0x08: flat 32-bit code
  dq 0x00cf92000000ffff            ; 0x10: flat data
ap_gdt_descriptor:
  dw 3 * 8 - 1
  dd TRAMPOLINE + (ap_gdt - trampoline)
trampoline_end:
bits 32

section .rodata
msg_cpus: db "smp: ", 0
msg_total: db " CPUs summed 1..1000 = ", 0
newline: db 13, 10, 0

section .data
align 4
cpus: dd 1
total: dd 0
aps_done: dd 0
next_slice: dd 1

section .bss
align 16
bsp_stack: resb 4096
bsp_stack_top:
ap_stacks: resb 4096 * 16
