; net: two VMs ping each other through the vSwitch (OASIS virtio 1.1: 4.2
; virtio-mmio, 3.1.1 initialization, 2.6 split virtqueues, 5.1 network
; device). Negotiates VERSION_1 and MAC, posts receive buffers on queue 0,
; then broadcasts a frame from its own MAC on queue 1 until it hears another
; VM's frame, answers once more (so the peer hears it too), and prints
; "net: <my MAC> heard <peer MAC>". Needs virtio-mmio: not compared on QEMU.
%include "multiboot.inc"
%include "serial.inc"
%include "virtio.inc"

QSIZE               equ 8
RX_BUFFERS          equ 4
BUFFER              equ 1536
HEADER              equ 12                  ; struct virtio_net_hdr with VERSION_1

section .text
global _start
_start:
  mov esp, stack_top
  cmp dword [VIRTIO + DEVICE_ID], 1
  jne no_device
  call virtio_begin
  jz no_device
  mov eax, 1 << 5                                  ; VIRTIO_NET_F_MAC
  call virtio_features
  jz no_device
  ; queue 0: receive, queue 1: transmit
  mov dword [VIRTIO + QUEUE_SEL], 0
  mov dword [VIRTIO + QUEUE_NUM], QSIZE
  mov dword [VIRTIO + QUEUE_DESC], rx_desc
  mov dword [VIRTIO + QUEUE_DRIVER], rx_avail
  mov dword [VIRTIO + QUEUE_DEVICE], rx_used
  mov dword [VIRTIO + QUEUE_READY], 1
  mov dword [VIRTIO + QUEUE_SEL], 1
  mov dword [VIRTIO + QUEUE_NUM], QSIZE
  mov dword [VIRTIO + QUEUE_DESC], tx_desc
  mov dword [VIRTIO + QUEUE_DRIVER], tx_avail
  mov dword [VIRTIO + QUEUE_DEVICE], tx_used
  mov dword [VIRTIO + QUEUE_READY], 1
  mov dword [VIRTIO + STATUS], STATUS_ACKNOWLEDGE | STATUS_DRIVER | STATUS_FEATURES_OK | STATUS_DRIVER_OK
  ; our MAC from config space, into the frame's source field
  mov esi, VIRTIO + CONFIG                         ; the MAC is the first 6 config bytes
  mov edi, frame + 6
  mov ecx, 6
  rep movsb
  ; post the receive buffers: descriptor i -> rx_buffers + i * BUFFER, device-writable
  xor ecx, ecx
.post:
  mov eax, ecx
  imul eax, BUFFER
  add eax, rx_buffers
  mov edx, ecx
  shl edx, 4                                       ; 16-byte descriptors
  mov [rx_desc + edx], eax
  mov dword [rx_desc + edx + 4], 0
  mov dword [rx_desc + edx + 8], BUFFER
  mov word [rx_desc + edx + 12], 2                 ; WRITE
  mov [rx_avail + 4 + ecx * 2], cx
  inc ecx
  cmp ecx, RX_BUFFERS
  jb .post
  mov word [rx_avail + 2], RX_BUFFERS
  mov dword [VIRTIO + QUEUE_NOTIFY], 0
  ; the transmit descriptor: header + frame, device-readable
  mov dword [tx_desc], tx_buffer
  mov dword [tx_desc + 4], 0
  mov dword [tx_desc + 8], HEADER + frame_end - frame
  mov word [tx_desc + 12], 0
  mov esi, frame
  mov edi, tx_buffer + HEADER
  mov ecx, frame_end - frame
  rep movsb

.ping:
  call send
  mov ecx, 20000                                   ; listen for a while
.listen:
  cmp word [rx_used + 2], 0
  jne .heard
  pause
  dec ecx
  jnz .listen
  jmp .ping
.heard:
  call send                                        ; once more, so the peer hears us too
  mov esi, msg_net
  call serial_puts
  mov esi, frame + 6
  call print_mac
  mov esi, msg_heard
  call serial_puts
  mov eax, [rx_used + 4]                           ; first used element: id
  imul eax, BUFFER
  lea esi, [rx_buffers + eax + HEADER + 6]         ; the sender's MAC in the received frame
  call print_mac
  mov esi, newline
  call serial_puts
  xor eax, eax
  jmp debug_exit

; send: queue the transmit descriptor once more and notify queue 1
send:
  movzx ecx, word [tx_avail + 2]
  mov ebx, ecx
  and ebx, QSIZE - 1
  mov word [tx_avail + 4 + ebx * 2], 0
  inc ecx
  mov [tx_avail + 2], cx
  mov dword [VIRTIO + QUEUE_NOTIFY], 1
  ret

; print_mac: the 6 bytes at ESI as aa:bb:cc:dd:ee:ff
print_mac:
  mov ecx, 6
.byte:
  push ecx
  lodsb
  push esi
  mov ah, al
  shr al, 4
  call hex_digit
  mov [hex_pair], al
  mov al, ah
  and al, 0x0f
  call hex_digit
  mov [hex_pair + 1], al
  mov esi, hex_pair
  call serial_puts
  pop esi
  pop ecx
  dec ecx
  jz .done
  push esi
  push ecx
  mov esi, colon
  call serial_puts
  pop ecx
  pop esi
  jmp .byte
.done:
  ret

hex_digit:
  add al, '0'
  cmp al, '9'
  jbe .ok
  add al, 'a' - '9' - 1
.ok:
  ret

no_device:
  mov esi, msg_no_device
  call serial_puts
  mov al, 1
  jmp debug_exit

section .data
frame:
  db 0xff, 0xff, 0xff, 0xff, 0xff, 0xff            ; broadcast
  db 0, 0, 0, 0, 0, 0                              ; our MAC (filled in)
  db 0x88, 0xb5                                    ; IEEE local experimental EtherType
  db "fibervisor ping"
  times 60 - ($ - frame) db 0
frame_end:
hex_pair: db 0, 0, 0

section .rodata
msg_net: db "net: ", 0
msg_heard: db " heard ", 0
colon: db ":", 0
newline: db 13, 10, 0
msg_no_device: db "net: no virtio-net device at 0xfeb00000", 13, 10, 0

section .bss
alignb 16
rx_desc: resb 16 * QSIZE
tx_desc: resb 16 * QSIZE
alignb 4
rx_avail: resb 4 + 2 * QSIZE + 2
alignb 4
tx_avail: resb 4 + 2 * QSIZE + 2
alignb 4
rx_used: resb 4 + 8 * QSIZE + 2
alignb 4
tx_used: resb 4 + 8 * QSIZE + 2
alignb 16
tx_buffer: resb BUFFER
rx_buffers: resb BUFFER * RX_BUFFERS
stack: resb 4096
stack_top:
