; minios: a tiny multitasking kernel. It turns on 32-bit paging (Intel SDM
; Vol. 3A 4.3) with the first 4 MiB identity-mapped for the kernel only
; (U/S = 0), loads a GDT with ring-0 and ring-3 segments and a TSS whose
; ESP0/SS0 give each process its own kernel stack (SDM 3A 7.2.1), and
; runs user processes in ring 3 (SDM 3A 5.8; an interrupt from ring 3
; switches to the TSS's ring-0 stack and IRET goes back, 6.12.1). Every
; process has its own page directory: the kernel's 4 MiB, one shared
; read-only user code page at USER_CODE, and a user stack below
; USER_STACK_TOP that starts unmapped: the first touch of each stack page
; is a page fault (#PF, SDM 3A 6.15; error code and CR2 in 4.7) that the
; kernel answers with a fresh zeroed frame.
; A user #PF on a present page (a protection violation) kills the process
; with exit code 255.
; System calls are INT 0x80 through a DPL-3 interrupt gate (SDM 3A 6.12.1.1),
; number in EAX, argument in EBX, result in EAX: exit, write, putnum, getpid,
; spawn, wait, yield. The PIT at 10 kHz (IRQ0 through the 8259A) drives a
; preemptive round-robin scheduler that switches kernel stacks, CR3 and
; TSS.ESP0.
; init (pid 1) spawns five children and waits for each in order: children
; 1-4 fill a 16 KiB array on their stack (4 demand faults each) with i*k and
; sum it many times over (spanning many timer ticks, so the timer switches
; between them), exiting with the sum; child 5 writes to the read-only code page
; and is killed. Only init prints (at points that do not depend on when the
; timer fires), so the output is the same on any machine. At the end the
; kernel checks init's verdict, the page-fault count, that every child was
; reaped and that IRQ0 preempted a process at least once, prints how many
; processes it created, demand page faults it served and system calls it
; took (the same on any machine: `fibervisor bench minios` reads them), then
; exits 0.
;
; Built with -DPV (minios-pv.elf, `boot --mode pv`: docs/pv.md) it is the same
; kernel as a Xen PV guest at ring 1, with the same processes, system calls
; and final line; what changes:
;   - no GDT or TSS: Xen's flat ring-1/ring-3 selectors, and stack_switch
;     where the native kernel sets TSS.ESP0
;   - no IDT: set_trap_table (#PF, and INT 0x80 with DPL 3)
;   - no 8259A or PIT: VIRQ_TIMER on an event channel, set_timer_op armed
;     100 us ahead (10 kHz) and re-armed by each event; the timer is a
;     handler pv_event_entry calls; kernel code runs with events masked (the
;     native kernel with IF = 0)
;   - CR2 from vcpu_info.arch.cr2; CR3 loads are MMUEXT_NEW_BASEPTR; paging
;     is on from the start (the builder's tables) and the kernel switches
;     to init's tables instead of setting CR0.PG
;   - page tables are read-only once in use: every frame that becomes a page
;     directory or table is mapped read-only in the kernel's page table
;     before it is used (protect_table), a new one is filled with plain
;     stores before that, and a live one (a stack page's PTE) is updated
;     with mmu_update
;   - the frame pool starts after the builder's start-of-day region
;     (pv_first_free), not at image_end
;   - IRET is HYPERVISOR_iret (it restores the event mask from EFLAGS.IF)
%ifdef PV
%include "pv.inc"
%else
%include "multiboot.inc"
%include "serial.inc"
%endif
%include "print.inc"
%ifndef PV
%include "idt.inc"
%include "pic.inc"
%endif

%ifdef PV
KERNEL_CS      equ FLAT_RING1_CS       ; Xen's flat selectors: no GDT of its own
KERNEL_DS      equ FLAT_RING1_DS
USER_CS        equ FLAT_RING3_CS
USER_DS        equ FLAT_RING3_DS
TIMER_NS       equ 100000              ; 10 kHz
%else
%include "gdt.inc"                     ; KERNEL_CS.., the GDT and the TSS
%endif
USER_CODE      equ 0x40000000          ; the shared user code page
USER_STACK_TOP equ 0x80000000          ; stacks grow down from here...
STACK_MAX      equ 0x10000             ; ...by at most 64 KiB
POOL_END       equ 0x400000            ; frames come from the identity-mapped 4 MiB
MAXPROC        equ 8
NCHILD         equ 5                   ; children 1-4 compute, child 5 misbehaves
SUM            equ 4095 * 4096 / 2     ; 0 + 1 + ... + 4095
ROUNDS         equ 192                 ; sums per child: long enough to be preempted
PTE_P          equ 1
PTE_W          equ 2
PTE_U          equ 4
FREE           equ 0                   ; process states
RUNNABLE       equ 1
BLOCKED        equ 2
ZOMBIE         equ 3

; the trap frame every entry builds (offsets from EBP = ESP after the pushes)
F_EBX equ 24
F_EAX equ 36
F_ERR equ 40

SYS_EXIT   equ 0
SYS_WRITE  equ 1
SYS_PUTNUM equ 2
SYS_GETPID equ 3
SYS_SPAWN  equ 4
SYS_WAIT   equ 5
SYS_YIELD  equ 6
NSYS       equ 7

section .text
global _start
_start:
  mov esp, boot_stack_top
%ifdef PV
  call pv_start
  ; the trap table: #PF, INT 0x80 callable from ring 3; the timer: VIRQ_TIMER
  mov ebx, trap_table
  HYPERCALL_CHECKED set_trap_table
  mov ebx, VIRQ_TIMER
  mov edx, on_timer
  call pv_bind_virq
  ; the frame pool starts at the first page after the builder's region
  mov eax, [pv_first_free]
  mov [pool_next], eax
%else
  call gdt_init                           ; GDT and TSS (ESP0 is set per process)
  ; IDT: #PF, IRQ0 (vector 0x20 after the remap), INT 0x80 callable from ring 3
  call idt_init
  mov ecx, 14
  mov edx, on_page_fault
  call idt_set
  mov ecx, 0x20
  mov edx, on_timer
  call idt_set
  mov ecx, 0x27                           ; IRQ7 can be spurious
  mov edx, on_spurious
  call idt_set
  mov ecx, 0x80
  mov edx, on_syscall
  call idt_set
  mov byte [idt + 0x80 * 8 + 5], 0xee     ; present, DPL 3, 32-bit interrupt gate
  ; the frame pool starts at the first page after the image
  mov eax, image_end + 4095
  and eax, ~4095
  mov [pool_next], eax
%endif
  ; the kernel page table: 0-4 MiB identity, supervisor, writable
  call alloc_frame
  mov [kernel_pt], eax
  mov edi, eax
  mov eax, PTE_P | PTE_W
  mov ecx, 1024
.identity:
  stosd
  add eax, 4096
  loop .identity
%ifdef PV
  mov eax, [kernel_pt]                    ; read-only: itself and the builder's
  call protect_table                      ; tables (plain stores: not in use yet)
  mov esi, [pv_start_info]
  mov eax, [esi + SI_PT_BASE]
  mov ecx, [esi + SI_NR_PT_FRAMES]
.builders:
  call protect_table
  add eax, 4096
  loop .builders
%endif
  ; the user code page (a copy of user_start..user_end), mapped read-only for ring 3
  call alloc_frame
  mov edi, eax
  mov esi, user_start
  mov ecx, user_end - user_start
  rep movsb
  or eax, PTE_P | PTE_U
  mov ebx, eax
  call alloc_frame
  mov [user_code_pt], eax
  mov [eax + ((USER_CODE >> 12) & 0x3ff) * 4], ebx
%ifdef PV
  call protect_table
%endif
  ; init, then paging on in its address space, and into ring 3
  mov esi, msg_boot
  call serial_puts
  mov dword [current], 0
  xor ebx, ebx
  call spawn
  mov eax, [p_cr3]
%ifdef PV
  call pv_new_baseptr                     ; paging is on already: init's tables
  mov byte [tables_live], 1
  mov eax, TIMER_NS
  call pv_timer_periodic
%else
  mov cr3, eax
  mov eax, cr0
  or eax, 0x80000000
  mov cr0, eax
  call pic_init
  mov cx, 119                             ; 1193182 / 119 = 10 kHz
  call pit_periodic
%endif
  xor eax, eax
  mov esp, [p_kesp]                       ; a fresh process's kernel stack...
  jmp resume                              ; ...returns into trap_return

; Entries. Each builds the same frame: error code (0 if the CPU pushes none),
; PUSHAD, DS, ES; then the kernel's data segments and EBP = frame.
on_page_fault:
  pushad
  push ds
  push es
  call enter_kernel
  call page_fault
  jmp trap_return

%ifdef PV
on_timer:                                 ; VIRQ_TIMER: pv_event_entry saved the registers
  call pv_timer_rearm                     ; one-shot: the next tick in 100 us
  call pick_next
  cmp eax, [current]
  je .same
  inc dword [preemptions]
  call switch_to
.same:
  ret
%else
on_timer:
  push 0
  pushad
  push ds
  push es
  call enter_kernel
  call pic_eoi
  call pick_next
  cmp eax, [current]
  je trap_return
  inc dword [preemptions]
  call switch_to
  jmp trap_return
%endif

on_syscall:
  push 0
  pushad
  push ds
  push es
  call enter_kernel
%ifdef PV
  call pv_cli                             ; in case INT 0x80 took the fast path, which leaves events alone
%endif
  inc dword [syscalls_taken]
  mov eax, [ebp + F_EAX]
  cmp eax, NSYS
  jae .bad
  call [syscalls + eax * 4]
  jmp trap_return
.bad:
  mov dword [ebp + F_EAX], -1
  jmp trap_return

%ifndef PV
on_spurious:
  iret
%endif

enter_kernel:
  mov ax, KERNEL_DS
  mov ds, ax
  mov es, ax
  lea ebp, [esp + 4]
  ret

trap_return:
  pop es
  pop ds
  popad
  add esp, 4
%ifdef PV
  jmp HYPERVISOR_iret
%else
  iret
%endif

; switch_to: run process EAX (kernel stack, address space, TSS.ESP0); returns
; when this process is switched back to. Clobbers EAX, ECX, EDX.
switch_to:
  push ebp
  push edi
  push esi
  push ebx
  mov ecx, [current]
  mov [p_kesp + ecx * 4], esp
  mov esp, [p_kesp + eax * 4]
resume:
  mov [current], eax
  mov edx, [p_cr3 + eax * 4]
%ifdef PV
  push eax
  mov eax, edx
  call pv_new_baseptr
  pop eax
%else
  mov cr3, edx
%endif
  inc eax
  shl eax, 12
  add eax, kernel_stacks
%ifdef PV
  mov ebx, KERNEL_DS                      ; ESP0: the top of its kernel stack
  mov ecx, eax
  HYPERCALL_CHECKED stack_switch
%else
  mov [tss + 4], eax                      ; ESP0: the top of its kernel stack
%endif
  pop ebx
  pop esi
  pop edi
  pop ebp
  ret

; pick_next: EAX = the next runnable process after the current one (itself
; last), or -1 if none is. Clobbers ECX.
pick_next:
  mov ecx, 1
.next:
  mov eax, [current]
  add eax, ecx
  and eax, MAXPROC - 1
  cmp dword [p_state + eax * 4], RUNNABLE
  je .found
  inc ecx
  cmp ecx, MAXPROC
  jbe .next
  mov eax, -1
.found:
  ret

; schedule: give the CPU to the next runnable process (maybe this one).
schedule:
  call pick_next
  cmp eax, -1
  je deadlock
  cmp eax, [current]
  jne switch_to
  ret

; alloc_frame: EAX = a zeroed 4 KiB frame from the pool. Clobbers ECX, EDI.
alloc_frame:
  mov eax, [pool_next]
  cmp eax, POOL_END
  jae out_of_memory
  add dword [pool_next], 4096
  mov edi, eax
  push eax
  xor eax, eax
  mov ecx, 1024
  rep stosd
  pop eax
  ret

%ifdef PV
; protect_table: EAX = a frame (in the first 4 MiB) about to become a page
; directory or table: map it read-only in kernel_pt, with a plain store
; before kernel_pt is in use, else with update_va_mapping. Preserves all.
protect_table:
  pushad
  cmp byte [tables_live], 0
  jne .live
  mov edx, [kernel_pt]
  mov ecx, eax
  shr ecx, 12
  or eax, PTE_P
  mov [edx + ecx * 4], eax
  popad
  ret
.live:
  mov ebx, eax
  lea ecx, [eax + PTE_P]
  mov edx, UVMF_INVLPG
  call pv_update_va_mapping
  popad
  ret
%endif

; spawn: a new process running the user code with EBX = argument; its
; parent is the current process. EAX = its index (pid - 1), or -1.
spawn:
  xor eax, eax
.find:
  cmp dword [p_state + eax * 4], FREE
  je .found
  inc eax
  cmp eax, MAXPROC
  jb .find
  mov eax, -1
  ret
.found:
  push ebx
  mov ebx, eax
  call alloc_frame                        ; its page directory
  mov [p_cr3 + ebx * 4], eax
  mov esi, eax
  mov eax, [kernel_pt]
  or eax, PTE_P | PTE_W
  mov [esi], eax                          ; 0-4 MiB: the kernel's
  mov eax, [user_code_pt]
  or eax, PTE_P | PTE_W | PTE_U
  mov [esi + (USER_CODE >> 22) * 4], eax
  call alloc_frame                        ; its (empty) stack page table
  mov [p_stack_pt + ebx * 4], eax
%ifdef PV
  call protect_table
%endif
  or eax, PTE_P | PTE_W | PTE_U
  mov [esi + ((USER_STACK_TOP - 1) >> 22) * 4], eax
%ifdef PV
  mov eax, esi                            ; the page directory is complete
  call protect_table
%endif
  ; its kernel stack: a trap frame to IRET to ring 3, under what switch_to pops
  lea edi, [ebx + 1]
  shl edi, 12
  add edi, kernel_stacks
  pop eax                                 ; the argument
  mov dword [edi - 4], USER_DS            ; SS
  mov dword [edi - 8], USER_STACK_TOP     ; ESP
  mov dword [edi - 12], 0x202             ; EFLAGS: IF
  mov dword [edi - 16], USER_CS
  mov dword [edi - 20], USER_CODE         ; EIP
  sub edi, 64
  mov ecx, 8                              ; error code, PUSHAD: all 0...
  xor edx, edx
.zero:
  mov [edi + 8 + ecx * 4], edx
  dec ecx
  jns .zero
  mov [edi + F_EBX], eax                  ; ...but EBX = the argument
  mov dword [edi + 4], USER_DS            ; DS
  mov dword [edi], USER_DS                ; ES
  mov dword [edi - 4], trap_return        ; what switch_to returns to
  sub edi, 20                             ; under EBX, ESI, EDI, EBP for it to pop
  mov [p_kesp + ebx * 4], edi
  mov eax, [current]
  mov [p_parent + ebx * 4], eax
  mov dword [p_state + ebx * 4], RUNNABLE
  inc dword [spawned]
  mov eax, ebx
  ret

; page_fault: a first touch of a user stack page gets a zeroed frame; any
; other user fault kills the process; a kernel fault is fatal.
page_fault:
%ifdef PV
  mov eax, [pv_shared_info]               ; CR2 is privileged: Xen copies it to vcpu_info.arch.cr2
  mov eax, [eax + VCPU_CR2]
%else
  mov eax, cr2
%endif
  mov edx, [ebp + F_ERR]
  test edx, PTE_U                         ; error code bit 2: from ring 3
  jz kernel_fault
  test edx, PTE_P                         ; bit 0: a protection violation
  jnz .kill
  cmp eax, USER_STACK_TOP - STACK_MAX
  jb .kill
  cmp eax, USER_STACK_TOP
  jae .kill
  push eax
  call alloc_frame
  pop ecx
  or eax, PTE_P | PTE_W | PTE_U
  mov edx, [current]
  mov edx, [p_stack_pt + edx * 4]
  shr ecx, 12
  and ecx, 0x3ff
%ifdef PV
  lea edx, [edx + ecx * 4]                ; a live page table: mmu_update
  call pv_mmu_update
%else
  mov [edx + ecx * 4], eax
%endif
  inc dword [faults]
  ret
.kill:
  mov ebx, 255
  jmp exit_current

; System calls: EBP = the caller's frame.
sys_exit:
  mov ebx, [ebp + F_EBX]
exit_current:                             ; EBX = exit code; never returns
  mov eax, [current]
  mov [p_exit + eax * 4], ebx
  mov dword [p_state + eax * 4], ZOMBIE
  test eax, eax
  jz finish                               ; init is done: so is the system
  mov ecx, [p_parent + eax * 4]
  cmp dword [p_state + ecx * 4], BLOCKED
  jne .gone
  cmp [p_wait + ecx * 4], eax
  jne .gone
  mov dword [p_state + ecx * 4], RUNNABLE
.gone:
  call schedule
  jmp deadlock                            ; a zombie never runs again

sys_write:
  mov esi, [ebp + F_EBX]
  jmp serial_puts

sys_putnum:
  mov eax, [ebp + F_EBX]
  jmp print_decimal

sys_getpid:
  mov eax, [current]
  inc eax
  mov [ebp + F_EAX], eax
  ret

sys_spawn:
  mov ebx, [ebp + F_EBX]
  call spawn
  cmp eax, -1
  je .done
  inc eax
.done:
  mov [ebp + F_EAX], eax
  ret

sys_wait:                                 ; EBX = pid of a child: EAX = its exit code
  mov eax, [ebp + F_EBX]
  dec eax
  cmp eax, MAXPROC
  jae .bad
  mov ecx, [current]
  cmp [p_parent + eax * 4], ecx
  jne .bad
  cmp eax, ecx
  je .bad
.check:
  mov edx, [p_state + eax * 4]
  cmp edx, FREE
  je .bad
  cmp edx, ZOMBIE
  je .reap
  mov ecx, [current]
  mov dword [p_state + ecx * 4], BLOCKED
  mov [p_wait + ecx * 4], eax
  push eax
  call schedule
  pop eax
  jmp .check
.reap:
  mov dword [p_state + eax * 4], FREE
  mov eax, [p_exit + eax * 4]
  mov [ebp + F_EAX], eax
  ret
.bad:
  mov dword [ebp + F_EAX], -1
  ret

sys_yield:
  jmp schedule

; init exited: check everything, print the totals, end the guest.
finish:
  mov esi, msg_init_failed
  mov al, 3
  cmp dword [p_exit], 0
  jne fail
  mov esi, msg_bad_faults
  mov al, 4
  cmp dword [faults], 1 + 4 * (NCHILD - 1)
  jne fail
  mov esi, msg_no_preemption
  mov al, 5
  cmp dword [preemptions], 0
  je fail
  mov esi, msg_unreaped
  mov al, 6
  cmp dword [spawned], 1 + NCHILD
  jne fail
  mov ecx, 1
.reaped:
  cmp dword [p_state + ecx * 4], FREE
  jne fail
  inc ecx
  cmp ecx, MAXPROC
  jb .reaped
  mov esi, msg_minios
  call serial_puts
  mov eax, [spawned]
  call print_decimal
  mov esi, msg_processes
  call serial_puts
  mov eax, [faults]
  call print_decimal
  mov esi, msg_page_faults
  call serial_puts
  mov eax, [syscalls_taken]
  call print_decimal
  mov esi, msg_success
  call serial_puts
  xor eax, eax
  jmp debug_exit

kernel_fault:
  mov esi, msg_kernel_fault
  mov al, 2
  jmp fail
deadlock:
  mov esi, msg_deadlock
  mov al, 7
  jmp fail
out_of_memory:
  mov esi, msg_out_of_memory
  mov al, 8
fail:                                     ; ESI = diagnosis, AL = exit code
  push eax
  call serial_puts
  pop eax
  jmp debug_exit

; The user program, copied to USER_CODE and run in ring 3 by every process:
; position-independent but for its strings, addressed with U().
%define U(label) (USER_CODE + (label) - user_start)
user_start:
  mov eax, SYS_GETPID
  int 0x80
  cmp eax, 1
  jne child
  ; init: spawn the children (pids kept on its demand-paged stack)...
  mov eax, SYS_WRITE
  mov ebx, U(msg_init)
  int 0x80
  sub esp, 32
  mov esi, 1
.spawn:
  mov eax, SYS_SPAWN
  mov ebx, esi
  int 0x80
  mov [esp + esi * 4], eax
  inc esi
  cmp esi, NCHILD
  jbe .spawn
  ; ...then wait for each in order and check its exit code
  xor edi, edi                            ; failures
  mov esi, 1
.wait:
  mov eax, SYS_WAIT
  mov ebx, [esp + esi * 4]
  int 0x80
  mov ebp, eax
  mov eax, SYS_WRITE
  mov ebx, U(msg_child)
  int 0x80
  mov eax, SYS_PUTNUM
  mov ebx, esi
  int 0x80
  mov eax, SYS_WRITE
  mov ebx, U(msg_exited)
  int 0x80
  mov eax, SYS_PUTNUM
  mov ebx, ebp
  int 0x80
  mov eax, SYS_WRITE
  mov ebx, U(msg_newline)
  int 0x80
  imul eax, esi, SUM                      ; expected: k * SUM, or 255 (killed)
  cmp esi, NCHILD
  jne .compare
  mov eax, 255
.compare:
  cmp ebp, eax
  je .ok
  inc edi
.ok:
  inc esi
  cmp esi, NCHILD
  jbe .wait
  mov eax, SYS_EXIT
  mov ebx, edi
  int 0x80

child:                                    ; EBX = k
  cmp ebx, NCHILD
  jne .work
  mov dword [USER_CODE], 0                ; a read-only page: killed here
  mov eax, SYS_EXIT
  mov ebx, 1
  int 0x80
.work:
  sub esp, 0x4000                         ; 4 stack pages, each faulted in on first touch
  xor ecx, ecx
.fill:
  mov eax, ecx
  imul eax, ebx
  mov [esp + ecx * 4], eax
  inc ecx
  cmp ecx, 4096
  jb .fill
  mov eax, SYS_YIELD
  int 0x80
  mov edx, ROUNDS
  xor edi, edi
.round:
  xor eax, eax
  xor ecx, ecx
.sum:
  add eax, [esp + ecx * 4]
  inc ecx
  cmp ecx, 4096
  jb .sum
  test edi, edi
  jnz .same
  mov edi, eax                            ; the first round's sum
.same:
  cmp eax, edi
  jne .wrong
  dec edx
  jnz .round
  mov ebx, eax
  mov eax, SYS_EXIT
  int 0x80
.wrong:
  mov eax, SYS_EXIT
  mov ebx, 1
  int 0x80

msg_init:    db "minios: init (pid 1) in ring 3, spawning 5 children", 13, 10, 0
msg_child:   db "minios: child ", 0
msg_exited:  db " exited with ", 0
msg_newline: db 13, 10, 0
user_end:

section .rodata
%ifdef PV
msg_boot:          db "minios: paging, trap table, event channels and VIRQ_TIMER at 10 kHz set up (Xen PV)", 13, 10, 0
%else
msg_boot:          db "minios: paging, GDT/TSS, IDT, 8259A and PIT at 10 kHz set up", 13, 10, 0
%endif
msg_minios:        db "minios: ", 0
msg_processes:     db " processes, ", 0
msg_page_faults:   db " page faults, ", 0
msg_success:       db " system calls, all exited correctly", 13, 10, 0
msg_init_failed:   db "minios: init saw a wrong exit code", 13, 10, 0
msg_bad_faults:    db "minios: unexpected number of page faults", 13, 10, 0
msg_no_preemption: db "minios: the timer never preempted a process", 13, 10, 0
msg_unreaped:      db "minios: a process was not reaped", 13, 10, 0
msg_kernel_fault:  db "minios: page fault in the kernel", 13, 10, 0
msg_deadlock:      db "minios: no runnable process", 13, 10, 0
msg_out_of_memory: db "minios: out of frames", 13, 10, 0

syscalls: dd sys_exit, sys_write, sys_putnum, sys_getpid, sys_spawn, sys_wait, sys_yield

section .data
%ifdef PV
align 4
trap_table:                               ; the IDT, for set_trap_table
  TRAP 14, TI_MASK_EVENTS, on_page_fault  ; like an interrupt gate: events masked
  TRAP 0x80, 3 | TI_MASK_EVENTS, on_syscall ; DPL 3
  TRAP_TABLE_END
tables_live: db 0                         ; kernel_pt is in use: page tables need hypercalls
%endif

section .bss
alignb 4
%ifndef PV
%endif
current: resd 1
pool_next: resd 1
kernel_pt: resd 1
user_code_pt: resd 1
spawned: resd 1
faults: resd 1
preemptions: resd 1
syscalls_taken: resd 1
p_state: resd MAXPROC
p_kesp: resd MAXPROC
p_cr3: resd MAXPROC
p_stack_pt: resd MAXPROC
p_parent: resd MAXPROC
p_wait: resd MAXPROC
p_exit: resd MAXPROC
kernel_stacks: resb 4096 * MAXPROC
boot_stack: resb 4096
boot_stack_top:
image_end:
