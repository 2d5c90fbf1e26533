; nanobench: the nanobenchmarks of Adams & Agesen, "A Comparison of Software
; and Hardware Techniques for x86 Virtualization" (ASPLOS 2006, section 6.2,
; figure 4) as a Multiboot guest. Each operation runs ITER times in a loop
; timed with RDTSC (SDM 2B RDTSC; CR4.TSD = 0, so ring 3 may read it too),
; next to a baseline loop that is the same loop without the operation; the
; line `nanobench: <name> <cycles per op>` on COM1 is (op loop - baseline
; loop) / ITER in TSC ticks, rounded down (0 if the baseline came out
; slower). Every loop runs once unmeasured first (a translator translates
; it, caches fill), then once measured. The benchmarks:
;
;   syscall   INT 0x80 from ring 3 through a DPL-3 interrupt gate (SDM 3A
;             6.12.1.1) to a handler that only IRETs back to ring 3
;   in        IN AL, 0x21: a port a PC's devices answer cheaply (the master
;             8259A's interrupt mask register; 0x80 is a POST port)
;   cr-write  MOV CR3, EAX with CR3's own value. The paper's cr8wr (a write
;             to the task-priority register CR8) exists only in 64-bit mode;
;             a CR3 write is the 32-bit control-register write every kernel
;             makes (on each context switch), is sensitive, traps under
;             first-generation VT-x and a shadow-paging monitor, and has no
;             architectural effect beyond flushing the TLB
;   call/ret  a near CALL to a RET
;   pgfault   a page fault on a not-present page at ring 0 (SDM 3A 6.15,
;             4.7): the #PF handler marks the PTE present and IRETs, the
;             access is retried and succeeds; the loop clears the PTE's P
;             bit and INVLPGs before each access (the baseline loop does
;             the same PTE store and INVLPG but leaves the page present, so
;             only the fault round trip is left)
;   divzero   DIV by zero at ring 0: the #DE handler (SDM 3A 6.15, vector 0;
;             a fault: the saved EIP is the DIV's) steps over the 2-byte DIV
;             and IRETs
;   ptemod    a store to a live page-table entry (toggling its R/W bit)
;             followed by INVLPG of the page it maps (SDM 3A 4.10.4)
;
; Paging is on: the first 4 MiB identity-mapped with 4 KiB pages, user and
; writable (ring 3 runs this same code); no interrupt is ever enabled. Then
; `nanobench: done` and a debug exit with 0 (any unexpected fault exits
; with 1 or 2). The numbers depend on the machine and the execution mode:
; images/nanobench/boot.json says "timing": true, so the QEMU and the modes
; tests compare only which lines it prints, not its bytes.
;
; Built with -DPV (nanobench-pv.elf, `boot --mode pv`: docs/pv.md) it is a
; Xen PV kernel at ring 1 and measures the same operations the PV way:
;   syscall   the same INT 0x80 from ring 3, to a DPL-3 trap-table entry
;             (Xen's fast system-call trap: no hypervisor on the way in, and
;             IRET to ring 3 is not privileged)
;   hypercall a PV guest has no ports: instead of `in`, a null hypercall
;             (xen_version(XENVER_version)), the cost every PV operation
;             starts from; printed as `nanobench: hypercall <ticks>`
;   cr-write  mmuext_op MMUEXT_NEW_BASEPTR with the current page directory:
;             the MOV CR3 of a PV kernel
;   pgfault   update_va_mapping(test_page, PTE without P, UVMF_INVLPG) (the
;             PTE store and INVLPG), then the true #PF: the guest's trap-table
;             handler reads CR2 from vcpu_info.arch.cr2 and sets P again with
;             update_va_mapping (page tables are read-only to the guest); the
;             baseline makes the same hypercall with P set
;   divzero   the same DIV and handler, but the #DE goes through the
;             hypervisor, which bounces it to the trap table's handler
;   ptemod    update_va_mapping toggling R/W with UVMF_INVLPG: the store to
;             a live PTE and INVLPG in one hypercall
; Its own page tables are built with plain stores before their first load
; (MMUEXT_NEW_BASEPTR), with every page-table frame mapped read-only; no GDT,
; TSS or IDT: Xen's flat selectors, stack_switch and set_trap_table. Events
; stay masked throughout (the native build never enables interrupts), so the
; handlers return with a plain IRET (ring 1 to ring 1 or 3: not privileged)
; rather than HYPERVISOR_iret, which would only restore the same mask.
%ifdef PV
%include "pv.inc"
%else
%include "multiboot.inc"
%include "serial.inc"
%endif
%include "print.inc"
%ifndef PV
%include "idt.inc"
%endif

%ifdef PV
KERNEL_CS equ FLAT_RING1_CS               ; Xen's flat selectors: no GDT of its own
KERNEL_DS equ FLAT_RING1_DS
USER_CS   equ FLAT_RING3_CS
USER_DS   equ FLAT_RING3_DS
%else
%include "gdt.inc"                        ; KERNEL_CS.., the GDT and the TSS
%endif
ITER      equ 1000
PTE_P     equ 1
PTE_W     equ 2
PTE_U     equ 4
PTE_A     equ 0x20
PTE_D     equ 0x40

; BENCH "name", op loop, baseline loop: measure in ring 0 and print the line
%macro BENCH 3
  mov esi, %2
  mov edi, %3
  call measure
  mov esi, %%name
  call report
[section .rodata]
%%name: db %1, 0
__SECT__
%endmacro

section .text
global _start
_start:
%ifdef PV
  mov esp, stack_top
  call pv_start
  mov eax, [pv_first_free]                ; everything the builder made must be in
  cmp eax, 0x400000                       ; the 4 MiB the page table below maps
  ja too_much_ram
  mov ebx, trap_table                     ; the IDT
  HYPERCALL_CHECKED set_trap_table
  mov ebx, KERNEL_DS                      ; TSS.ESP0/SS0: the stack for traps from ring 3
  mov ecx, trap_stack_top
  HYPERCALL_CHECKED stack_switch
%else
  cli
  mov esp, stack_top
  call gdt_init
  mov dword [tss + 4], trap_stack_top     ; ESP0
  call idt_init
  xor ecx, ecx
  mov edx, on_divide_error
  call idt_set
  mov ecx, 14
  mov edx, on_page_fault
  call idt_set
  mov ecx, 0x80
  mov edx, on_syscall
  call idt_set
  mov byte [idt + 0x80 * 8 + 5], 0xee     ; present, DPL 3, 32-bit interrupt gate
  mov ecx, 0x81
  mov edx, on_user_done
  call idt_set
  mov byte [idt + 0x81 * 8 + 5], 0xee
%endif
  ; paging: 0-4 MiB identity, user, writable
  mov edi, page_table
  mov eax, PTE_P | PTE_W | PTE_U
  mov ecx, 1024
.identity:
  stosd
  add eax, 4096
  loop .identity
  mov edi, page_directory
  xor eax, eax
  mov ecx, 1024
  rep stosd
  mov eax, page_table
  or eax, PTE_P | PTE_W | PTE_U
  mov [page_directory], eax
  mov eax, test_page                      ; the PTE that maps test_page
  shr eax, 12
  lea eax, [page_table + eax * 4]
  mov [test_pte], eax
%ifdef PV
  call protect_page_tables
  mov eax, page_directory                 ; paging is on already: switch to these tables
  call pv_new_baseptr
  mov eax, page_directory
  shr eax, 12
  mov [cr3_op + 4], eax                   ; for cr-write
%else
  mov eax, page_directory
  mov cr3, eax
  mov eax, cr0
  or eax, 0x80000000
  mov cr0, eax
%endif
  mov esi, msg_title
  call serial_puts

  ; syscall: measured in ring 3, which comes back with INT 0x81
  mov [kernel_esp], esp
  push USER_DS                            ; SS
  push user_stack_top                     ; ESP
  push 0x002                              ; EFLAGS: IF = 0
  push USER_CS
  push user_bench
  iret
back_in_kernel:
  mov eax, [user_result]
  mov esi, name_syscall
  call report

%ifdef PV
  BENCH "hypercall", hypercall_loop, empty_loop
%else
  BENCH "in", in_loop, empty_loop
%endif
  BENCH "cr-write", cr_loop, empty_loop
  BENCH "call/ret", call_loop, empty_loop
  BENCH "pgfault", pgfault_loop, pgfault_base
  BENCH "divzero", divzero_loop, divzero_base
  BENCH "ptemod", ptemod_loop, ptemod_base
  mov eax, [test_pte]                     ; test_page's PTE as it started (ptemod toggled R/W an even
  mov eax, [eax]                          ; number of times), but for the accessed and dirty bits
  and eax, ~(PTE_A | PTE_D)
  cmp eax, test_page + (PTE_P | PTE_W | PTE_U)
  jne bad_pte
  mov esi, msg_done
  call serial_puts
  xor eax, eax
  jmp debug_exit
bad_pte:
  mov esi, msg_bad_pte
  call serial_puts
  mov al, 2
  jmp debug_exit
%ifdef PV
too_much_ram:
  mov esi, msg_too_much_ram
  call serial_puts
  mov al, 1
  jmp debug_exit

; protect_page_tables: a frame in use as a page table may not be mapped
; writable (docs/pv.md): in page_table (not in use yet, so plain stores) make
; read-only the page directory and page table above and the builder's.
protect_page_tables:
  mov eax, page_directory
  call .read_only
  mov eax, page_table
  call .read_only
  mov esi, [pv_start_info]
  mov eax, [esi + SI_PT_BASE]
  mov ecx, [esi + SI_NR_PT_FRAMES]
.builders:
  call .read_only
  add eax, 4096
  loop .builders
  ret
.read_only:                               ; EAX = a frame in the first 4 MiB
  push eax
  shr eax, 12
  and dword [page_table + eax * 4], ~PTE_W
  pop eax
  ret
%endif

; measure: ESI = the operation's loop, EDI = its baseline loop (each runs ITER
; iterations and returns). EAX = TSC ticks per operation. Clobbers EBX-EDX.
; Runs at ring 0 and ring 3 (no privileged instruction).
measure:
  call time_loop                          ; warm-up runs
  xchg esi, edi
  call time_loop
  call time_loop                          ; the baseline, measured
  mov ebx, eax
  xchg esi, edi
  call time_loop                          ; the operation, measured
  sub eax, ebx
  jae .positive
  xor eax, eax
.positive:
  xor edx, edx
  mov ecx, ITER
  div ecx
  ret

; time_loop: call the loop at ESI; EAX = TSC ticks it took (the low 32 bits
; of the difference). The start is kept on the stack, so a loop may use any
; register but ESI, EDI and ESP; EBX is preserved for the caller. Clobbers
; ECX, EDX.
time_loop:
  push ebx
  rdtsc
  push eax
  call esi
  rdtsc
  sub eax, [esp]
  add esp, 4
  pop ebx
  ret

; report: print "nanobench: <name at ESI> <EAX>" and CRLF.
report:
  push eax
  push esi
  mov esi, msg_prefix
  call serial_puts
  pop esi
  call serial_puts
  mov esi, msg_space
  call serial_puts
  pop eax
  call print_decimal
  mov esi, msg_newline
  jmp serial_puts

; ---- the loops: ITER iterations each ----
empty_loop:
  mov ecx, ITER
.loop:
  dec ecx
  jnz .loop
  ret

syscall_loop:                             ; ring 3
  mov ecx, ITER
.loop:
  int 0x80
  dec ecx
  jnz .loop
  ret

%ifdef PV
; The PV loops keep ECX free for hypercall arguments (EBP counts) and
; preserve EBX and ESI, which measure and time_loop use.
hypercall_loop:                           ; a null hypercall instead of IN
  push ebx
  push ebp
  mov ebp, ITER
.loop:
  mov ebx, XENVER_version
  xor ecx, ecx
  HYPERCALL xen_version
  dec ebp
  jnz .loop
  pop ebp
  pop ebx
  ret

cr_loop:                                  ; MOV CR3 with its own value: NEW_BASEPTR
  push ebx
  push esi
  push ebp
  mov ebp, ITER
.loop:
  mov ebx, cr3_op
  mov ecx, 1
  xor edx, edx
  mov esi, DOMID_SELF
  HYPERCALL mmuext_op
  dec ebp
  jnz .loop
  pop ebp
  pop esi
  pop ebx
  ret
%else
in_loop:
  mov ecx, ITER
.loop:
  in al, 0x21
  dec ecx
  jnz .loop
  ret

cr_loop:
  mov ecx, ITER
  mov eax, cr3
.loop:
  mov cr3, eax
  dec ecx
  jnz .loop
  ret
%endif

call_loop:
  mov ecx, ITER
.loop:
  call just_ret
  dec ecx
  jnz .loop
  ret
just_ret:
  ret

%ifdef PV
pgfault_loop:
  push ebx
  push esi
  push ebp
  mov ebp, ITER
  mov esi, [test_pte]
  mov esi, [esi]
  and esi, ~PTE_P
.loop:
  mov ebx, test_page                      ; the PTE store (P clear) and INVLPG
  mov ecx, esi
  mov edx, UVMF_INVLPG
  HYPERCALL update_va_mapping
  mov eax, [test_page]                    ; #PF; the handler sets P and this is retried
  dec ebp
  jnz .loop
  pop ebp
  pop esi
  pop ebx
  ret
pgfault_base:
  push ebx
  push esi
  push ebp
  mov ebp, ITER
  mov esi, [test_pte]
  mov esi, [esi]
  or esi, PTE_P
.loop:
  mov ebx, test_page
  mov ecx, esi
  mov edx, UVMF_INVLPG
  HYPERCALL update_va_mapping
  mov eax, [test_page]
  dec ebp
  jnz .loop
  pop ebp
  pop esi
  pop ebx
  ret
%else
pgfault_loop:
  mov ecx, ITER
  mov ebx, [test_pte]
.loop:
  and dword [ebx], ~PTE_P
  invlpg [test_page]
  mov eax, [test_page]                    ; #PF; the handler sets P and this is retried
  dec ecx
  jnz .loop
  ret
pgfault_base:
  mov ecx, ITER
  mov ebx, [test_pte]
.loop:
  or dword [ebx], PTE_P
  invlpg [test_page]
  mov eax, [test_page]
  dec ecx
  jnz .loop
  ret
%endif

divzero_loop:
  mov ecx, ITER
  xor ebx, ebx
.loop:
  mov eax, 1
  xor edx, edx
  div ebx                                 ; #DE: the handler skips these 2 bytes (F7 F3)
  dec ecx
  jnz .loop
  ret
divzero_base:
  mov ecx, ITER
  xor ebx, ebx
.loop:
  mov eax, 1
  xor edx, edx
  dec ecx
  jnz .loop
  ret

%ifdef PV
ptemod_loop:
  push ebx
  push esi
  push ebp
  mov ebp, ITER                           ; even: the PTE ends as it started
  mov esi, [test_pte]
  mov esi, [esi]
.loop:
  xor esi, PTE_W
  mov ebx, test_page                      ; the store to the live PTE and INVLPG
  mov ecx, esi
  mov edx, UVMF_INVLPG
  HYPERCALL update_va_mapping
  dec ebp
  jnz .loop
  pop ebp
  pop esi
  pop ebx
  ret
ptemod_base:
  push ebx
  push esi
  push ebp
  mov ebp, ITER
  mov esi, [test_pte]
  mov esi, [esi]
.loop:
  xor esi, PTE_W
  mov ebx, test_page
  mov ecx, esi
  mov edx, UVMF_INVLPG
  dec ebp
  jnz .loop
  pop ebp
  pop esi
  pop ebx
  ret
%else
ptemod_loop:
  mov ecx, ITER                           ; even: the PTE ends as it started
  mov ebx, [test_pte]
  mov edx, [ebx]
.loop:
  xor edx, PTE_W
  mov [ebx], edx
  invlpg [test_page]
  dec ecx
  jnz .loop
  ret
ptemod_base:
  mov ecx, ITER
  mov ebx, [test_pte]
  mov edx, [ebx]
.loop:
  xor edx, PTE_W
  dec ecx
  jnz .loop
  ret
%endif

; ---- ring 3 ----
user_bench:
  mov ax, USER_DS
  mov ds, ax
  mov es, ax
  mov esi, syscall_loop
  mov edi, empty_loop
  call measure
  mov [user_result], eax
  int 0x81

; ---- handlers ----
on_syscall:                               ; INT 0x80: nothing to do
  iret

on_user_done:                             ; INT 0x81 from ring 3: back to the kernel's stack
  mov ax, KERNEL_DS
  mov ds, ax
  mov es, ax
  mov esp, [kernel_esp]
  jmp back_in_kernel

on_divide_error:
  add dword [esp], 2                      ; past DIV r32 (opcode F7, ModRM)
  iret

on_page_fault:                            ; only test_page may fault, at ring 0: mark it present
  push eax
%ifdef PV
  mov eax, [pv_shared_info]               ; CR2 is privileged: Xen copies it to vcpu_info.arch.cr2
  mov eax, [eax + VCPU_CR2]
%else
  mov eax, cr2
%endif
  and eax, ~0xfff
  cmp eax, test_page
  jne .unexpected
  test dword [esp + 4], 4                 ; error code bit 2: from ring 3
  jnz .unexpected
%ifdef PV
  push ebx                                ; the PTE is in a read-only page table:
  push ecx                                ; set P with update_va_mapping
  push edx
  mov ecx, [test_pte]
  mov ecx, [ecx]
  or ecx, PTE_P
  mov ebx, test_page
  xor edx, edx                            ; not present before: nothing to flush
  HYPERCALL update_va_mapping
  pop edx
  pop ecx
  pop ebx
%else
  mov eax, [test_pte]
  or dword [eax], PTE_P
%endif
  pop eax
  add esp, 4                              ; the error code
  iret
.unexpected:
  mov esi, msg_bad_fault
  call serial_puts
  mov al, 1
  jmp debug_exit

section .rodata
msg_title:     db "nanobench: TSC ticks per operation, 1000 iterations each, baseline loop subtracted", 13, 10, 0
msg_prefix:    db "nanobench: ", 0
msg_space:     db " ", 0
msg_newline:   db 13, 10, 0
name_syscall:  db "syscall", 0
msg_done:      db "nanobench: done", 13, 10, 0
msg_bad_fault: db "nanobench: unexpected page fault", 13, 10, 0
msg_bad_pte:   db "nanobench: test page PTE not restored", 13, 10, 0
%ifdef PV
msg_too_much_ram: db "nanobench: the domain builder's region ends above 4 MiB (boot with less RAM)", 13, 10, 0
%endif

section .data
%ifdef PV
align 4
trap_table:                               ; the IDT, for set_trap_table
  TRAP 0, 0, on_divide_error
  TRAP 14, 0, on_page_fault
  TRAP 0x80, 3, on_syscall                ; DPL 3, events left alone: Xen's fast system-call trap
  TRAP 0x81, 3, on_user_done
  TRAP_TABLE_END
cr3_op: dd MMUEXT_NEW_BASEPTR, 0, 0       ; struct mmuext_op; arg1 = the page directory's frame
%endif

section .bss
alignb 4096
page_directory: resb 4096
page_table: resb 4096
test_page: resb 4096                      ; touched only by pgfault
alignb 4
%ifndef PV
%endif
kernel_esp: resd 1
test_pte: resd 1
user_result: resd 1
trap_stack: resb 4096
trap_stack_top:
user_stack: resb 4096
user_stack_top:
stack: resb 4096
stack_top:
