; blk: a virtio-blk driver in a few dozen instructions (OASIS virtio 1.1:
; 4.2 virtio-mmio, 3.1.1 driver initialization, 2.6 split virtqueues, 5.2
; block device). Finds the device at 0xFEB00000, negotiates VERSION_1, sets up
; one 8-entry queue, then keeps a boot counter in sector 0 (behind a
; signature): reads it, increments it, writes it, reads it back and checks.
; Prints the boot number; exits 0 when the write was read back intact.
; Needs a virtio-mmio disk, so it is not compared against QEMU's pc machine.
; Built with -DPV (blk-pv.elf, `boot --mode pv`: docs/pv.md) the same job
; runs over Xen's split block driver instead (io/blkif.h): the front end
; finds its back end in xenstore, grants it the ring and the data page
; (grant tables), binds an event channel and queues blkif requests.
%ifdef PV
%include "pv.inc"
%include "xenbus.inc"
%else
%include "multiboot.inc"
%include "serial.inc"
%include "virtio.inc"
%endif
%include "print.inc"

QSIZE               equ 8
T_IN                equ 0
T_OUT               equ 1

section .text
global _start
_start:
  mov esp, stack_top
%ifdef PV
  call pv_start
  call blkfront_connect
%else
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
%endif

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

%ifdef PV
RING_SIZE  equ 32                       ; (4096 - 64) / 108, rounded down to a power of two
REQ_SIZE   equ 108                      ; blkif_request on x86-32
RING_GREF  equ 8                        ; grant references 0-7 are the toolstack's
DATA_GREF  equ 9

; blkfront_connect: the xenbus handshake with the back end (io/blkif.h,
; xenbus.h states): grant the ring and the data page, allocate an event
; channel, publish ring-ref and event-channel, state 3 (Initialised); the
; back end must then be 4 (Connected), and so are we.
blkfront_connect:
  call xenbus_init
  mov esi, path_backend                 ; is there a disk at all?
  call xenbus_find_backend
  test eax, eax
  js no_device
  mov edx, ring
  call ring_init
  mov eax, ring
  mov ebx, RING_GREF
  call grant_access
  mov eax, sector
  mov ebx, DATA_GREF
  call grant_access
  call evtchn_alloc_unbound
  mov [blk_port], eax
  mov edi, port_text
  call to_decimal
  mov esi, path_ring_ref
  mov edi, text_ring_ref
  call xs_write
  mov esi, path_event_channel
  mov edi, port_text
  call xs_write
  mov esi, path_state
  call xenbus_connect
  test eax, eax
  jnz no_backend
  ret

; request: EAX = BLKIF_OP_READ (T_IN) or BLKIF_OP_WRITE (T_OUT) of sector 0 into
; or from the granted `sector` page: one blkif_request on the ring, a notify on
; the event channel, then the response's status.
request:
  mov edx, ring
  mov ecx, [edx]                        ; req_prod
  mov ebx, ecx
  and ebx, RING_SIZE - 1
  imul ebx, ebx, REQ_SIZE
  lea ebx, [edx + 64 + ebx]
  mov [ebx], al                         ; operation
  mov byte [ebx + 1], 1                 ; nr_segments
  mov word [ebx + 2], 768               ; handle
  mov [ebx + 4], ecx                    ; id
  mov dword [ebx + 8], 0
  mov dword [ebx + 12], 0               ; sector_number
  mov dword [ebx + 16], 0
  mov dword [ebx + 20], DATA_GREF       ; seg[0]: the data page, sectors 0..0
  mov byte [ebx + 24], 0
  mov byte [ebx + 25], 0
  inc ecx
  mov [edx], ecx                        ; publish req_prod, then notify
  mov eax, [blk_port]
  call evtchn_notify
.wait:
  mov eax, [edx + 8]                    ; rsp_prod
  cmp eax, [rsp_cons]
  jne .response
  call pv_yield
  jmp .wait
.response:
  mov ebx, [rsp_cons]
  and ebx, RING_SIZE - 1
  imul ebx, ebx, REQ_SIZE
  inc dword [rsp_cons]
  cmp word [edx + 64 + ebx + 10], 0     ; BLKIF_RSP_OKAY
  jne bad_io
  ret

no_backend:
  mov esi, msg_no_backend
  jmp failed
%else
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
%endif

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
%ifdef PV
msg_no_device: db "blk: no virtual block device in xenstore (device/vbd/768)", 13, 10, 0
msg_no_backend: db "blk: the block back end did not connect", 13, 10, 0
path_backend: db "device/vbd/768/backend", 0
path_ring_ref: db "device/vbd/768/ring-ref", 0
path_event_channel: db "device/vbd/768/event-channel", 0
path_state: db "device/vbd/768/state", 0
text_ring_ref: db "8", 0
%else
msg_no_device: db "blk: no virtio-blk device at 0xfeb00000", 13, 10, 0
%endif
msg_features: db "blk: feature negotiation failed", 13, 10, 0
msg_io: db "blk: the device reported an I/O error", 13, 10, 0
msg_data: db "blk: what was read back is not what was written", 13, 10, 0

section .bss
%ifdef PV
alignb 4096
ring: resb 4096                         ; the shared blkif ring (granted)
sector: resb 4096                       ; the data page (granted); sector 0 is its first 512 bytes
blk_port: resd 1
rsp_cons: resd 1
port_text: resb 12
boots: resd 1
%else
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
%endif
stack: resb 4096
stack_top:
