; net: two VMs ping each other through the vSwitch (OASIS virtio 1.1: 4.2
; virtio-mmio, 3.1.1 initialization, 2.6 split virtqueues, 5.1 network
; device). Negotiates VERSION_1 and MAC, posts receive buffers on queue 0,
; then broadcasts a frame from its own MAC on queue 1 until it hears another
; VM's frame, answers once more (so the peer hears it too), and prints
; "net: <my MAC> heard <peer MAC>". Needs virtio-mmio: not compared on QEMU.
; Built with -DPV (net-pv.elf, `boot --mode pv`: docs/pv.md) the same job
; runs over Xen's split network driver instead (io/netif.h): the front end
; finds its vif and MAC in xenstore, grants the back end a TX and an RX ring
; and its buffers (grant tables), binds an event channel, posts RX requests
; and sends netif_tx_requests.
%ifdef PV
%include "pv.inc"
%include "xenbus.inc"
%else
%include "multiboot.inc"
%include "serial.inc"
%include "virtio.inc"
%endif

QSIZE               equ 8
RX_BUFFERS          equ 4
BUFFER              equ 1536
HEADER              equ 12                  ; struct virtio_net_hdr with VERSION_1

section .text
global _start
_start:
  mov esp, stack_top
%ifdef PV
  call pv_start
  call netfront_connect
%else
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
%endif

.ping:
  call send
  mov ecx, 20000                                   ; listen for a while
.listen:
%ifdef PV
  cmp dword [rx_ring + RING_RSP_PROD], 0           ; a first RX response
%else
  cmp word [rx_used + 2], 0
%endif
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
%ifdef PV
  movsx eax, word [rx_ring + RING_ENTRIES + 6]     ; the first netif_rx_response: status = length
  cmp eax, 14
  jl bad_rx
  movzx eax, word [rx_ring + RING_ENTRIES]         ; its id: which buffer
  cmp eax, RX_BUFFERS
  jae bad_rx
  shl eax, 12
  movzx edx, word [rx_ring + RING_ENTRIES + 2]     ; offset
  add eax, edx
  lea esi, [rx_buffers + eax + 6]                  ; the sender's MAC in the received frame
%else
  mov eax, [rx_used + 4]                           ; first used element: id
  imul eax, BUFFER
  lea esi, [rx_buffers + eax + HEADER + 6]         ; the sender's MAC in the received frame
%endif
  call print_mac
  mov esi, newline
  call serial_puts
  xor eax, eax
  jmp debug_exit

%ifdef PV
RING_ENTRIES        equ 64
TX_RING_SIZE        equ 256                 ; (4096 - 64) / 12, rounded down to a power of two
TX_SLOT             equ 12                  ; netif_tx_request {u32 gref, u16 offset, flags, id, size}
RX_SLOT             equ 8                   ; netif_rx_request {u16 id, u16 pad, u32 gref}
TX_RING_GREF        equ 8                   ; grant references 0-7 are the toolstack's
RX_RING_GREF        equ 9
TX_PAGE_GREF        equ 10
RX_BUFFER_GREF      equ 11                  ; 11 .. 11 + RX_BUFFERS - 1

; netfront_connect: the xenbus handshake with the back end (io/netif.h,
; xenbus.h states): read our MAC, initialise and grant both rings, the
; transmit page and the receive buffers, post the buffers, allocate an event
; channel, publish tx-ring-ref, rx-ring-ref, event-channel, request-rx-copy
; and state 3 (Initialised); the back end must then be 4 (Connected), and so
; are we. The frame to broadcast ends up in the granted transmit page.
netfront_connect:
  call xenbus_init
  mov esi, path_backend                 ; is there a vif at all?
  call xenbus_find_backend
  test eax, eax
  js no_device
  mov esi, path_mac                     ; our MAC, "aa:bb:cc:dd:ee:ff", into the frame
  call xs_read
  cmp eax, 17
  jne bad_mac
  mov esi, xs_reply
  mov edi, frame + 6
  mov ecx, 6
.mac_byte:
  call hex_nibble
  jc bad_mac
  shl al, 4
  mov ah, al
  call hex_nibble
  jc bad_mac
  or al, ah
  stosb
  inc esi                               ; the ':'
  loop .mac_byte
  mov esi, frame                        ; the frame, in the page the back end reads it from
  mov edi, tx_page
  mov ecx, frame_end - frame
  rep movsb
  mov edx, tx_ring                      ; SHARED_RING_INIT, both rings
  call ring_init
  mov edx, rx_ring
  call ring_init
  mov eax, tx_ring
  mov ebx, TX_RING_GREF
  call grant_access
  mov eax, rx_ring
  mov ebx, RX_RING_GREF
  call grant_access
  mov eax, tx_page
  mov ebx, TX_PAGE_GREF
  call grant_access_readonly
  xor ecx, ecx                          ; post the receive buffers: request i = buffer i
.post:
  mov eax, ecx
  shl eax, 12
  add eax, rx_buffers
  lea ebx, [ecx + RX_BUFFER_GREF]
  call grant_access
  mov [rx_ring + RING_ENTRIES + ecx * RX_SLOT], cx          ; id
  mov word [rx_ring + RING_ENTRIES + ecx * RX_SLOT + 2], 0
  mov [rx_ring + RING_ENTRIES + ecx * RX_SLOT + 4], ebx     ; gref
  inc ecx
  cmp ecx, RX_BUFFERS
  jb .post
  mov dword [rx_ring + RING_REQ_PROD], RX_BUFFERS
  call evtchn_alloc_unbound
  mov [net_port], eax
  mov edi, port_text
  call to_decimal
  mov esi, path_tx_ring_ref
  mov edi, text_tx_ring_ref
  call xs_write
  mov esi, path_rx_ring_ref
  mov edi, text_rx_ring_ref
  call xs_write
  mov esi, path_event_channel
  mov edi, port_text
  call xs_write
  mov esi, path_request_rx_copy
  mov edi, text_one
  call xs_write
  mov esi, path_state
  call xenbus_connect
  test eax, eax
  jnz no_backend
  ret

; hex_nibble: AL = the value of the hex digit at ESI (ESI advances); CF set if it is not one.
hex_nibble:
  lodsb
  cmp al, '0'
  jb .bad
  cmp al, '9'
  jbe .digit
  or al, 0x20                           ; lower case
  cmp al, 'a'
  jb .bad
  cmp al, 'f'
  ja .bad
  sub al, 'a' - 10
  clc
  ret
.digit:
  sub al, '0'
  clc
  ret
.bad:
  stc
  ret

; send: one netif_tx_request for the frame in the granted transmit page, a
; notify on the event channel, then its response must be NETIF_RSP_OKAY.
; Clobbers EAX, EBX, ECX, EDX.
send:
  mov edx, tx_ring
  mov ecx, [edx + RING_REQ_PROD]
  mov ebx, ecx
  and ebx, TX_RING_SIZE - 1
  imul ebx, ebx, TX_SLOT
  lea ebx, [edx + RING_ENTRIES + ebx]
  mov dword [ebx], TX_PAGE_GREF         ; gref
  mov word [ebx + 4], 0                 ; offset
  mov word [ebx + 6], 0                 ; flags: one slot, no offloads
  mov [ebx + 8], cx                     ; id
  mov word [ebx + 10], frame_end - frame ; size
  inc ecx
  mov [edx + RING_REQ_PROD], ecx        ; publish req_prod, then notify
  mov eax, [net_port]
  call evtchn_notify
.wait:
  cmp [edx + RING_RSP_PROD], ecx        ; answered?
  je .answered
  call pv_yield
  jmp .wait
.answered:
  dec ecx                               ; the response is in the request's slot
  and ecx, TX_RING_SIZE - 1
  imul ecx, ecx, TX_SLOT
  cmp word [edx + RING_ENTRIES + ecx + 2], 0    ; netif_tx_response.status: NETIF_RSP_OKAY
  jne bad_tx
  ret
%else
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
%endif

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

%ifdef PV
no_backend:
  mov esi, msg_no_backend
  jmp failed
bad_mac:
  mov esi, msg_bad_mac
  jmp failed
bad_tx:
  mov esi, msg_bad_tx
  jmp failed
bad_rx:
  mov esi, msg_bad_rx
failed:
  call serial_puts
  mov al, 1
  jmp debug_exit
%endif

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
%ifdef PV
msg_no_device: db "net: no virtual network interface in xenstore (device/vif/0)", 13, 10, 0
msg_no_backend: db "net: the network back end did not connect", 13, 10, 0
msg_bad_mac: db "net: device/vif/0/mac is not a MAC address", 13, 10, 0
msg_bad_tx: db "net: the back end refused a frame", 13, 10, 0
msg_bad_rx: db "net: a receive buffer came back with an error", 13, 10, 0
path_backend: db "device/vif/0/backend", 0
path_mac: db "device/vif/0/mac", 0
path_tx_ring_ref: db "device/vif/0/tx-ring-ref", 0
path_rx_ring_ref: db "device/vif/0/rx-ring-ref", 0
path_event_channel: db "device/vif/0/event-channel", 0
path_request_rx_copy: db "device/vif/0/request-rx-copy", 0
path_state: db "device/vif/0/state", 0
text_tx_ring_ref: db "8", 0
text_rx_ring_ref: db "9", 0
text_one: db "1", 0

section .bss
alignb 4096
tx_ring: resb 4096                      ; the shared netif TX ring (granted)
rx_ring: resb 4096                      ; the shared netif RX ring (granted)
tx_page: resb 4096                      ; the frame the back end sends (granted read-only)
rx_buffers: resb 4096 * RX_BUFFERS      ; one granted page per posted receive buffer
net_port: resd 1
port_text: resb 12
%else
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
%endif
stack: resb 4096
stack_top:
