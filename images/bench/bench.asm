; bench: the compute loops of `fibervisor bench cpu` (issue 9) as a Multiboot
; guest, so the same image runs on fibervisor, v86 and QEMU TCG. Which loop
; and how many iterations come from the patchable block `bench_params`
; ("FVBENCH\0", u32 kind, u32 iterations): the bench patches a temp copy of
; this ELF. Kind 0 is the ALU loop, kind 1 the memory loop (its buffer has
; pages of its own, away from code and stack). Prints "[" on COM1 right
; before the loop and "]" right after it, then " eax=XXXXXXXX" and CRLF (the
; same value on every correct engine), and exits through the debug-exit
; port: 0 = success, 1 = unknown kind. Zero iterations skip the loop.
; The loop bodies are exactly the issue's; test/bench/cpu-peers.test.ts
; disassembles them from this ELF.
%include "multiboot.inc"
%include "serial.inc"

section .text
global _start
_start:
  mov esp, stack_top
  mov al, '['
  call serial_putc
  mov ecx, [bench_iterations]
  mov eax, 1
  mov ebx, 0x9e3779b9
  cmp dword [bench_kind], 1
  je memory_start
  ja bad_kind
  test ecx, ecx
  jz loop_done

global alu_loop, alu_end
alu_loop:
  add eax, ebx
  xor ebx, eax
  rol ebx, 3
  dec ecx
  jnz alu_loop
alu_end:
  jmp loop_done

memory_start:
  test ecx, ecx
  jz loop_done
global memory_loop, memory_end
memory_loop:
  mov edx, ecx
  and edx, 0xfff
  add eax, [bench_buf + edx*4]
  mov [bench_buf + edx*4], eax
  dec ecx
  jnz memory_loop
memory_end:

loop_done:
  mov edi, eax                    ; the loop's result, printed in hex
  mov al, ']'
  call serial_putc
  mov esi, result_prefix
  call serial_puts
  mov ecx, 8
.hex:
  rol edi, 4
  mov eax, edi
  and eax, 0xf
  mov al, [hex_digits + eax]
  call serial_putc
  dec ecx
  jnz .hex
  mov esi, crlf
  call serial_puts
  xor eax, eax
  jmp debug_exit

bad_kind:
  mov esi, bad_kind_message
  call serial_puts
  mov al, 1
  jmp debug_exit

; serial_putc: print AL on COM1. Clobbers EDX, AH.
serial_putc:
  mov ah, al
  mov dx, 0x3fd
.wait:
  in al, dx
  test al, 0x20
  jz .wait
  mov dx, 0x3f8
  mov al, ah
  out dx, al
  ret

section .rodata
result_prefix: db " eax=", 0
crlf: db 13, 10, 0
hex_digits: db "0123456789abcdef"
bad_kind_message: db "bench: unknown loop kind", 13, 10, 0

section .data
align 16
global bench_params, bench_kind, bench_iterations
bench_params:
  db "FVBENCH", 0
bench_kind: dd 0
bench_iterations: dd 1000

section .bss nobits alloc noexec write align=4096
alignb 4096
stack: resb 4096
stack_top:
global bench_buf
bench_buf: resd 0x1000              ; 16 KiB, page-aligned, nothing else on its pages
