; hostile: a guest that tries every escape it knows, then triple faults.
; 1. stores across the whole 32-bit guest-physical space outside its RAM
;    (where other VMs' or the host's memory would be, were it reachable);
; 2. writes 0xFF to nearly every I/O port (not the ones that reset or end
;    this VM, so it gets to the end);
; 3. page-table games: paging on, with mappings to physical addresses far
;    beyond its RAM and a page directory that maps itself;
; 4. an empty IDT and INT3: a triple fault.
; Whatever it does, only this VM may be affected. The serial output is the
; same on QEMU; QEMU exits on the triple fault (-no-reboot), fibervisor ends
; the VM with "triple fault".
%include "multiboot.inc"
%include "serial.inc"

section .text
global _start
_start:
  mov esp, stack_top
  mov esi, msg_start
  call serial_puts

  ; 1. stores outside RAM: 16 MiB .. 3.75 GiB in 1 MiB steps
  mov edi, 0x01000000
.store:
  mov dword [edi], 0xdeadbeef
  add edi, 0x00100000
  cmp edi, 0xf0000000
  jb .store
  mov esi, msg_memory
  call serial_puts

  ; 2. port writes, skipping 0x20-0xa1 (interrupt controllers, A20/reset, PS/2),
  ;    0x3f8-0x3ff (its console), 0xcf8-0xcff (PCI reset) and 0xf4-0xf7 (debug exit)
  mov edx, 0x100
.port:
  cmp dx, 0x3f8
  jb .write
  cmp dx, 0x3ff
  jbe .skip
  cmp dx, 0xcf8
  jb .write
  cmp dx, 0xcff
  jbe .skip
.write:
  mov al, 0xff
  out dx, al
.skip:
  inc edx
  cmp edx, 0x10000
  jb .port
  mov esi, msg_ports
  call serial_puts

  ; 3. paging with hostile mappings: identity-map the first 4 MiB (so this code
  ;    keeps running), map 4 MiB-8 MiB onto physical 0xE0000000 (nothing of
  ;    its own there) with a 4 MiB page, and make the last PDE point at the
  ;    page directory itself
  mov edi, page_directory
  mov dword [edi], 0x00000083              ; 0-4 MiB, present, writable, 4 MiB page
  mov dword [edi + 4], 0xe0000083          ; 4-8 MiB -> 0xE0000000
  mov eax, page_directory
  or eax, 3
  mov [edi + 1023 * 4], eax                ; self-map
  mov eax, cr4
  or eax, 0x10                             ; PSE
  mov cr4, eax
  mov eax, page_directory
  mov cr3, eax
  mov eax, cr0
  or eax, 0x80000000
  mov cr0, eax
  mov dword [0x00400000], 0x12345678       ; through the hostile mapping
  mov eax, [0x00400000]
  mov dword [0xffc00000], 0                ; through the self-map: its own page directory
  mov esi, msg_paging
  call serial_puts

  ; 4. triple fault
  mov esi, msg_fault
  call serial_puts
  lidt [empty_idt]
  int3
  jmp $

section .rodata
msg_start: db "hostile: trying to escape", 13, 10, 0
msg_memory: db "hostile: stored outside my RAM", 13, 10, 0
msg_ports: db "hostile: wrote to every port", 13, 10, 0
msg_paging: db "hostile: played page-table games", 13, 10, 0
msg_fault: db "hostile: triple faulting now", 13, 10, 0
empty_idt:
  dw 0
  dd 0

section .bss
alignb 4096
page_directory: resb 4096
stack: resb 4096
stack_top:
