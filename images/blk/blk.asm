; blk: a virtio-blk driver in a few dozen instructions (OASIS virtio 1.1:
; 4.2 virtio-mmio, 3.1.1 driver initialization, 2.6 split virtqueues, 5.2
; block device). Finds the device at 0xFEB00000, negotiates VERSION_1, sets up
; one 8-entry queue, then keeps a boot counter in sector 0 (behind a
; signature): reads it, increments it, writes it, reads it back and checks.
; Prints the boot number; exits 0 when the write was read back intact.
; Needs a virtio-mmio disk, so it is not compared against QEMU's pc machine.
%include "multiboot.inc"
%include "serial.inc"
%include "virtio.inc"
%include "print.inc"

QSIZE               equ 8
T_IN                equ 0
T_OUT               equ 1

section .text
global _start
_start:
  mov esp, stack_top
  cmp dword [VIRTIO + MAGIC], 0x74726976
  jne no_device
  cmp dword [VIRTIO + VERSION], 2
  jne no_device
  cmp dword [VIRTIO + DEVICE_ID], 2
  jne no_device
  ; 3.1.1: reset, ACKNOWLEDGE, DRIVER, features, FEATURES_OK, queues, DRIVER_OK
  call virtio_begin
  jz bad_features
  xor eax, eax                                      ; no block features beyond VERSION_1
  call virtio_features
  jz bad_features
  mov dword [VIRTIO + QUEUE_SEL], 0
  cmp dword [VIRTIO + QUEUE_NUM_MAX], QSIZE
  jb bad_features
  mov dword [VIRTIO + QUEUE_NUM], QSIZE
  mov dword [VIRTIO + QUEUE_DESC], descriptors
  mov dword [VIRTIO + QUEUE_DESC + 4], 0
  mov dword [VIRTIO + QUEUE_DRIVER], available
  mov dword [VIRTIO + QUEUE_DRIVER + 4], 0
  mov dword [VIRTIO + QUEUE_DEVICE], used
  mov dword [VIRTIO + QUEUE_DEVICE + 4], 0
  mov dword [VIRTIO + QUEUE_READY], 1
  mov dword [VIRTIO + STATUS], STATUS_ACKNOWLEDGE | STATUS_DRIVER | STATUS_FEATURES_OK | STATUS_DRIVER_OK

  mov eax, T_IN                       ; read sector 0
  call request
  mov esi, sector
  mov edi, signature
  mov ecx, 8
  repe cmpsb
  mov eax, 0
  jne .fresh
  mov eax, [sector + 8]
  jmp .count
.fresh:
  mov esi, signature
  mov edi, sector
  mov ecx, 8
  rep movsb
  xor eax, eax
.count:
  inc eax
  mov [sector + 8], eax
  mov [boots], eax
  mov eax, T_OUT                      ; write it
  call request
  mov dword [sector + 8], 0
  mov eax, T_IN                       ; and read it back
  call request
  mov eax, [sector + 8]
  cmp eax, [boots]
  jne bad_data
  mov esi, msg_boot
  call serial_puts
  mov eax, [boots]
  call print_decimal
  mov esi, msg_verified
  call serial_puts
  xor eax, eax
  jmp debug_exit

; request: EAX = type (T_IN / T_OUT) for sector 0 with the 512-byte `sector` buffer;
; waits for the device to return the chain and checks the status byte
request:
  mov [header], eax
  mov dword [header + 4], 0
  mov dword [header + 8], 0
  mov dword [header + 12], 0
  mov byte [status], 0xff
  mov dword [descriptors + 0], header       ; 0: the 16-byte header (device reads)
  mov dword [descriptors + 4], 0
  mov dword [descriptors + 8], 16
  mov word [descriptors + 12], 1            ; NEXT
  mov word [descriptors + 14], 1
  mov dword [descriptors + 16], sector      ; 1: the data
  mov dword [descriptors + 20], 0
  mov dword [descriptors + 24], 512
  mov word [descriptors + 28], 1            ; NEXT (+ WRITE below for reads)
  cmp eax, T_IN
  jne .data_flags_done
  mov word [descriptors + 28], 3
.data_flags_done:
  mov word [descriptors + 30], 2
  mov dword [descriptors + 32], status      ; 2: the status byte (device writes)
  mov dword [descriptors + 36], 0
  mov dword [descriptors + 40], 1
  mov word [descriptors + 44], 2            ; WRITE
  mov word [descriptors + 46], 0
  movzx ecx, word [available + 2]           ; ring[idx % QSIZE] = head 0, then idx++
  mov ebx, ecx
  and ebx, QSIZE - 1
  mov word [available + 4 + ebx * 2], 0
  inc ecx
  mov [available + 2], cx
  mov dword [VIRTIO + QUEUE_NOTIFY], 0
.wait:
  pause
  cmp [used + 2], cx
  jne .wait
  mov eax, [VIRTIO + INTERRUPT_STATUS]
  mov [VIRTIO + INTERRUPT_ACK], eax
  cmp byte [status], 0
  jne bad_io
  ret

no_device:
  mov esi, msg_no_device
  jmp failed
bad_features:
  mov esi, msg_features
  jmp failed
bad_io:
  mov esi, msg_io
  jmp failed
bad_data:
  mov esi, msg_data
failed:
  call serial_puts
  mov al, 1
  jmp debug_exit

section .rodata
signature: db "FVBLKTST"
msg_boot: db "blk: boot ", 0
msg_verified: db ", sector 0 written and read back", 13, 10, 0
msg_no_device: db "blk: no virtio-blk device at 0xfeb00000", 13, 10, 0
msg_features: db "blk: feature negotiation failed", 13, 10, 0
msg_io: db "blk: the device reported an I/O error", 13, 10, 0
msg_data: db "blk: what was read back is not what was written", 13, 10, 0

section .bss
alignb 16
descriptors: resb 16 * QSIZE
alignb 4
available: resb 4 + 2 * QSIZE + 2
alignb 4
used: resb 4 + 8 * QSIZE + 2
alignb 16
header: resb 16
sector: resb 512
status: resb 4
boots: resd 1
stack: resb 4096
stack_top:
