; hello: the smallest fibervisor guest. Prints a greeting on COM1 and exits
; with success through the debug-exit port. Boots the same way on
; `fibervisor boot` and on `qemu-system-i386 -kernel hello.elf`.
; Built with -DPV (hello-pv.elf, `boot --mode pv`: docs/pv.md) it is a Xen PV
; kernel: Xen ELF notes instead of the Multiboot header, and pv.inc's
; serial_puts (the console ring) and debug_exit (SCHEDOP_shutdown).
%ifdef PV
%include "pv.inc"
%else
%include "multiboot.inc"
%include "serial.inc"
%endif

section .text
global _start
_start:
  mov esp, stack_top
%ifdef PV
  call pv_start                   ; ESI = start_info: find the console ring
%endif
  mov esi, greeting
  call serial_puts
  xor eax, eax
  jmp debug_exit

section .rodata
greeting: db "Hello from a fibervisor guest!", 13, 10, 0

section .bss
align 16
stack: resb 4096
stack_top:
