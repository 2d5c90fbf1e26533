; hello: the smallest fibervisor guest. Prints a greeting on COM1 and exits
; with success through the debug-exit port. Boots the same way on
; `fibervisor boot` and on `qemu-system-i386 -kernel hello.elf`.
%include "multiboot.inc"
%include "serial.inc"

section .text
global _start
_start:
  mov esp, stack_top
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
