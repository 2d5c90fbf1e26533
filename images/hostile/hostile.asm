; hostile: a guest that tries every escape it knows, then triple faults.
; 1. stores across the whole 32-bit guest-physical space outside its RAM
;    (where other VMs' or the host's memory would be, were it reachable);
; 2. writes 0xFF to nearly every I/O port (not the ones that reset or end
;    this VM, so it gets to the end);
; 3. bogus virtio rings, on every virtio-mmio device it finds (with
;    `boot --disk --net` it has a disk and a NIC; QEMU's pc machine has none,
;    so there it finds nothing and prints the same): descriptors pointing
;    outside its RAM, with absurd lengths, in a NEXT loop, an INDIRECT table
;    at the top of the address space, an avail index far ahead of the queue,
;    rings placed outside RAM, then all-ones written to every register;
; 4. page-table games: paging on, with mappings to physical addresses far
;    beyond its RAM and a page directory that maps itself;
; 5. an empty IDT and INT3: a triple fault.
; Whatever it does, only this VM may be affected. The serial output is the
; same on QEMU; QEMU exits on the triple fault (-no-reboot), fibervisor ends
; the VM with "triple fault".
%include "multiboot.inc"
%include "serial.inc"
%include "virtio.inc"

VIRTIO_WINDOWS      equ 8                  ; devices probed: 0xFEB00000 + n * 0x200
VIRTQ_DESC_F_NEXT   equ 1
VIRTQ_DESC_F_WRITE  equ 2
VIRTQ_DESC_F_INDIRECT equ 4

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

  ; 3. bogus virtio rings (OASIS virtio 1.1, 2.6 split virtqueues) on each device present
  mov ebx, VIRTIO
  mov ecx, VIRTIO_WINDOWS
.device:
  cmp dword [ebx + MAGIC], 0x74726976      ; "virt"
  jne .next_device
  mov dword [ebx + STATUS], 0
  mov dword [ebx + STATUS], STATUS_ACKNOWLEDGE | STATUS_DRIVER
  mov dword [ebx + DRIVER_FEATURES_SEL], 1
  mov dword [ebx + DRIVER_FEATURES], 1
  mov dword [ebx + STATUS], STATUS_ACKNOWLEDGE | STATUS_DRIVER | STATUS_FEATURES_OK
  ; (a) rings in its own RAM whose contents point everywhere else
  mov dword [ebx + QUEUE_SEL], 0
  mov dword [ebx + QUEUE_NUM], 8
  mov dword [ebx + QUEUE_DESC], bogus_desc
  mov dword [ebx + QUEUE_DESC + 4], 0
  mov dword [ebx + QUEUE_DRIVER], bogus_avail
  mov dword [ebx + QUEUE_DRIVER + 4], 0
  mov dword [ebx + QUEUE_DEVICE], bogus_used
  mov dword [ebx + QUEUE_DEVICE + 4], 0
  mov dword [ebx + QUEUE_READY], 1
  mov dword [ebx + STATUS], STATUS_ACKNOWLEDGE | STATUS_DRIVER | STATUS_FEATURES_OK | STATUS_DRIVER_OK
  mov dword [ebx + QUEUE_NOTIFY], 0
  mov dword [ebx + QUEUE_NOTIFY], 1
  mov dword [ebx + QUEUE_NOTIFY], 0xffff
  ; (b) the rings themselves outside RAM (and a 64-bit address above 4 GiB)
  mov dword [ebx + QUEUE_SEL], 1
  mov dword [ebx + QUEUE_READY], 0
  mov dword [ebx + QUEUE_NUM], 0xffff
  mov dword [ebx + QUEUE_DESC], 0xfffff000
  mov dword [ebx + QUEUE_DRIVER], 0xfffffff0
  mov dword [ebx + QUEUE_DRIVER + 4], 0xffffffff
  mov dword [ebx + QUEUE_DEVICE], 0xe0000000
  mov dword [ebx + QUEUE_READY], 1
  mov dword [ebx + QUEUE_NOTIFY], 1
  mov dword [ebx + QUEUE_NOTIFY], 0
  ; (c) all-ones into every register of the window, then read them all back
  xor edx, edx
.register:
  mov dword [ebx + edx], 0xffffffff
  mov eax, [ebx + edx]
  add edx, 4
  cmp edx, 0x200
  jb .register
  mov dword [ebx + QUEUE_NOTIFY], 0
.next_device:
  add ebx, 0x200
  dec ecx
  jnz .device
  mov esi, msg_virtio
  call serial_puts

  ; 4. paging with hostile mappings: identity-map the first 4 MiB (so this code
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

  ; 5. triple fault
  mov esi, msg_fault
  call serial_puts
  lidt [empty_idt]
  int3
  jmp $

section .rodata
msg_start: db "hostile: trying to escape", 13, 10, 0
msg_memory: db "hostile: stored outside my RAM", 13, 10, 0
msg_ports: db "hostile: wrote to every port", 13, 10, 0
msg_virtio: db "hostile: abused every virtio device it found", 13, 10, 0
msg_paging: db "hostile: played page-table games", 13, 10, 0
msg_fault: db "hostile: triple faulting now", 13, 10, 0
empty_idt:
  dw 0
  dd 0

; A descriptor table that goes everywhere but its own buffers (2.6.5): outside
; RAM with a 256 MiB length, a writable 4 GiB-long buffer, a NEXT chain that
; loops 0 -> 1 -> 2 -> 0, an INDIRECT table at the top of the address space,
; and a NEXT pointing past the table.
section .data
align 16
bogus_desc:
  dq 0xf0000000
  dd 0x10000000
  dw VIRTQ_DESC_F_NEXT, 1
  dq bogus_desc
  dd 0xffffffff
  dw VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE, 2
  dq 0
  dd 512
  dw VIRTQ_DESC_F_NEXT, 0
  dq 0xfffffff0
  dd 0xfff0
  dw VIRTQ_DESC_F_INDIRECT, 0
  dq 0x7fffffffffff0000
  dd 16
  dw VIRTQ_DESC_F_NEXT, 0xfffe
  times 3 dq 0, 0
; the avail ring: its index 0x8000 entries ahead of the device, heads in and out of range
bogus_avail:
  dw 0, 0x8000
  dw 0, 3, 4, 0xffff, 2, 1, 7, 0x100
  dw 0
align 4
bogus_used:
  times 6 + 8 * 8 db 0

section .bss
alignb 4096
page_directory: resb 4096
stack: resb 4096
stack_top:
