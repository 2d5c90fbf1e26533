; sensitive: the sensitive-but-unprivileged instructions of IA-32 (Popek &
; Goldberg 1974; Robin & Irvine 2000; Adams & Agesen, ASPLOS 2006, section 2)
; must behave at CPL 0 in 32-bit protected mode as on real hardware. The
; guest loads its own GDT (with a TSS, an LDT and a few descriptors to look
; at), IDT, TR and LDTR, then checks what these instructions show it, one
; line per check on COM1 ("ok   NAME" or "FAIL NAME: got X, expected Y"):
;
;   MOV from CS/SS, PUSH CS  the selectors it loaded, RPL 0 (SDM 3A 5.5)
;   PUSHF, POPF          IF follows CLI/STI (PUSHF one instruction past STI's
;                        shadow); POPF changes IF and IOPL at CPL 0
;                        (SDM 2B POPF: at CPL > IOPL it keeps IF silently,
;                        at CPL > 0 it keeps IOPL), also seen through an
;                        interrupt: with IF cleared by POPF, a pending IRQ0
;                        (PIT through the 8259A) is held off until STI
;   SGDT, SIDT           the base and limit it loaded (SDM 2B SGDT; its IDT
;                        has 0x30 gates, so both limits are its own)
;   SLDT, STR            the selectors it loaded with LLDT/LTR
;   SMSW, MOV from CR0   PE = 1, PG as it set it, SMSW = CR0 (with paging
;                        off, then on: the first 4 MiB identity-mapped)
;   LAR, LSL, VERR, VERW its own descriptors' access rights and limits
;                        (SDM 2A LAR, 2A LSL, 2B VERR/VERW)
;
; then prints how many failed and exits through the debug-exit port with
; that number (0 = all passed). Under a monitor that runs the guest kernel
; deprivileged without translating it (fibervisor --mode trap: ring 1, the
; monitor's GDT/IDT/TSS, IOPL 0, the pCPU's IF 0) many of these lines say
; FAIL: that is why `bt` translates (test/vmm/bt/trap-demo.test.ts).
; The IDT's gates name CODE_SEL itself rather than reading CS (idt.inc's
; idt_set does), since what MOV from CS returns is under test here.
%include "multiboot.inc"
%include "serial.inc"
%include "print.inc"
%include "idt.inc"
%include "pic.inc"

CODE_SEL      equ 0x08                  ; ring-0 code, 4 GiB, readable
DATA_SEL      equ 0x10                  ; ring-0 data, 4 GiB
TSS_SEL       equ 0x18                  ; 32-bit TSS
LDT_SEL       equ 0x20                  ; the LDT
USER_DATA_SEL equ 0x28 | 3              ; DPL-3 data, 4 GiB
XONLY_SEL     equ 0x30                  ; ring-0 code, execute-only
SMALL_SEL     equ 0x38                  ; ring-0 data, byte-granular limit SMALL_LIMIT
LDT_DATA_SEL  equ 0x00 | 4              ; LDT entry 0 (TI = 1): ring-0 data, limit 0xFFFF
SMALL_LIMIT   equ 0x12345
IRQ0_VECTOR   equ 0x20
IDT_ENTRIES   equ 0x30                  ; the exceptions and the 8259A's vectors
EFLAGS_IF     equ 0x200
EFLAGS_IOPL   equ 0x3000
CR0_PE        equ 1
CR0_PG        equ 0x80000000
NOT_LOADED    equ 0xbad0bad0            ; LAR/LSL leave their destination alone when ZF = 0

; CHECK "name": compare EAX (what the guest got) with EBX (what real hardware gives)
%macro CHECK 1
  mov esi, %%name
  call check
[section .rodata]
%%name: db %1, 0
__SECT__
%endmacro

; LAR_LSL instruction, selector: EAX = its result (access rights masked as SDM 2A LAR), or NOT_LOADED if ZF = 0
%macro LAR_LSL 2
  mov eax, NOT_LOADED
  mov ecx, %2
  %1 eax, ecx
  jnz %%done
%ifidn %1, lar
  and eax, 0x00f0ff00
%endif
%%done:
%endmacro

; VERIFY instruction, selector: EAX = ZF after it
%macro VERIFY 2
  mov ecx, %2
  %1 cx
  setz al
  movzx eax, al
%endmacro

section .text
global _start
_start:
  cli
  mov esp, stack_top
  ; the TSS and LDT descriptors get their bases here (link-time addresses cannot be split at assembly time)
  mov edi, gdt + TSS_SEL
  mov eax, tss
  call set_base
  mov edi, gdt + LDT_SEL
  mov eax, ldt
  call set_base
  lgdt [gdt_descriptor]
  jmp CODE_SEL:.reload
.reload:
  mov ax, DATA_SEL
  mov ds, ax
  mov es, ax
  mov fs, ax
  mov gs, ax
  mov ss, ax
  mov esp, stack_top
  xor ecx, ecx
.gate:
  mov edx, unexpected_interrupt
  call set_gate
  inc ecx
  cmp ecx, IDT_ENTRIES
  jb .gate
  mov ecx, IRQ0_VECTOR
  mov edx, irq0_handler
  call set_gate
  lidt [idt_register]
  mov ax, TSS_SEL
  ltr ax
  mov ax, LDT_SEL
  lldt ax
  call pic_init
  mov al, 0xff                          ; every IRQ masked until the IRQ0 check
  out 0x21, al
  mov dword [checks], 0
  mov dword [failures], 0
  mov esi, title
  call serial_puts

  ; ---- selectors: the guest believes it runs at ring 0 ----
  xor eax, eax
  mov ax, cs
  mov ebx, CODE_SEL
  CHECK "mov from cs reads the guest's selector, RPL 0"
  push cs
  pop eax
  and eax, 0xffff                       ; a 32-bit PUSH of a segment register may write only 16 bits
  mov ebx, CODE_SEL
  CHECK "push cs pushes the guest's selector, RPL 0"
  xor eax, eax
  mov ax, ss
  mov ebx, DATA_SEL
  CHECK "mov from ss reads the guest's selector, RPL 0"

  ; ---- IF through PUSHF and POPF ----
  cli
  pushfd
  pop eax
  and eax, EFLAGS_IF
  xor ebx, ebx
  CHECK "pushf after cli shows IF = 0"
  sti
  nop                                   ; past STI's interrupt shadow
  pushfd
  pop eax
  cli
  and eax, EFLAGS_IF
  mov ebx, EFLAGS_IF
  CHECK "pushf after sti shows IF = 1"
  cli
  push dword 0x202
  popfd
  pushfd
  pop eax
  cli
  and eax, EFLAGS_IF
  mov ebx, EFLAGS_IF
  CHECK "popf sets IF"
  sti
  push dword 0x002
  popfd
  pushfd
  pop eax
  cli
  and eax, EFLAGS_IF
  xor ebx, ebx
  CHECK "popf clears IF"

  ; ---- IF through an interrupt: POPF clears IF, then IRQ0 is made pending ----
  mov cx, 1193                          ; the PIT at 1 kHz
  call pit_periodic
  sti
  push dword 0x002
  popfd                                 ; IF = 0 from here on
  mov dword [irq_count], 0
  mov al, 0xfe                          ; unmask IRQ0
  out 0x21, al
  mov al, 0x0a                          ; OCW3: reads of port 0x20 return the IRR
  out 0x20, al
  mov ecx, 0x1000000
.wait_irr:
  cmp dword [irq_count], 0
  jne .requested
  in al, 0x20
  test al, 1
  jnz .requested
  dec ecx
  jnz .wait_irr
  mov dword [irq_requested], 0
  jmp .held
.requested:
  mov dword [irq_requested], 1
.held:
  nop
  nop
  mov eax, [irq_count]
  mov [irq_early], eax
  mov dword [irq_count], 0
  sti                                   ; the pending IRQ0 comes after the next instruction
  hlt
  cli
  mov eax, [irq_count]
  mov [irq_late], eax
  mov al, 0xff                          ; every IRQ masked again
  out 0x21, al
  mov eax, [irq_requested]
  mov ebx, 1
  CHECK "IRQ0 requested while IF = 0"
  mov eax, [irq_early]
  xor ebx, ebx
  CHECK "popf clears IF: the pending IRQ0 is held off"
  xor eax, eax
  cmp dword [irq_late], 0
  setne al
  mov ebx, 1
  CHECK "sti lets the held-off IRQ0 in"

  ; ---- IOPL through PUSHF and POPF ----
  push dword 0x3002
  popfd
  pushfd
  pop eax
  push dword 0x002
  popfd
  and eax, EFLAGS_IOPL
  mov ebx, EFLAGS_IOPL
  CHECK "popf sets IOPL = 3"
  pushfd
  pop eax
  and eax, EFLAGS_IOPL
  xor ebx, ebx
  CHECK "popf sets IOPL = 0"

  ; ---- descriptor-table registers ----
  sgdt [table_register]
  mov eax, [table_register + 2]
  mov ebx, gdt
  CHECK "sgdt returns the guest's GDT base"
  movzx eax, word [table_register]
  mov ebx, gdt_end - gdt - 1
  CHECK "sgdt returns the guest's GDT limit"
  sidt [table_register]
  mov eax, [table_register + 2]
  mov ebx, idt
  CHECK "sidt returns the guest's IDT base"
  movzx eax, word [table_register]
  mov ebx, IDT_ENTRIES * 8 - 1
  CHECK "sidt returns the guest's IDT limit"
  xor eax, eax
  sldt ax
  mov ebx, LDT_SEL
  CHECK "sldt returns the guest's LDT selector"
  xor eax, eax
  str ax
  mov ebx, TSS_SEL
  CHECK "str returns the guest's TSS selector"

  ; ---- CR0 with paging off ----
  mov eax, cr0
  and eax, CR0_PG | CR0_PE
  mov ebx, CR0_PE
  CHECK "mov from cr0: PE = 1, PG = 0"
  smsw eax
  mov ebx, cr0
  CHECK "smsw returns the guest's CR0"

  ; ---- the guest's own descriptors ----
  LAR_LSL lar, CODE_SEL
  mov ebx, 0x00c09b00
  CHECK "lar: the guest's code segment"
  LAR_LSL lar, USER_DATA_SEL
  mov ebx, 0x00c0f300
  CHECK "lar: the guest's DPL-3 data segment"
  LAR_LSL lar, TSS_SEL
  mov ebx, 0x00008b00                   ; busy since LTR
  CHECK "lar: the guest's busy TSS"
  LAR_LSL lsl, SMALL_SEL
  mov ebx, SMALL_LIMIT
  CHECK "lsl: the guest's byte-granular limit"
  LAR_LSL lsl, DATA_SEL
  mov ebx, 0xffffffff
  CHECK "lsl: the guest's page-granular limit"
  LAR_LSL lsl, LDT_DATA_SEL
  mov ebx, 0xffff
  CHECK "lsl: the guest's LDT segment"
  VERIFY verr, CODE_SEL
  mov ebx, 1
  CHECK "verr: the guest's readable code segment"
  VERIFY verr, XONLY_SEL
  xor ebx, ebx
  CHECK "verr: the guest's execute-only code segment is not readable"
  VERIFY verw, DATA_SEL
  mov ebx, 1
  CHECK "verw: the guest's data segment"
  VERIFY verw, CODE_SEL
  xor ebx, ebx
  CHECK "verw: the guest's code segment is not writable"

  ; ---- CR0 with paging on: the first 4 MiB identity-mapped ----
  mov edi, page_directory
  xor eax, eax
  mov ecx, 1024
  rep stosd
  mov edi, page_table
  mov eax, 0x003                        ; present, writable
  mov ecx, 1024
.pte:
  stosd
  add eax, 4096
  dec ecx
  jnz .pte
  mov eax, page_table
  or eax, 0x003
  mov [page_directory], eax
  mov eax, page_directory
  mov cr3, eax
  mov eax, cr0
  or eax, CR0_PG
  mov cr0, eax
  jmp .paged
.paged:
  mov eax, cr0
  and eax, CR0_PG | CR0_PE
  mov ebx, CR0_PG | CR0_PE
  CHECK "mov from cr0: PE = 1, PG = 1 after the guest set it"
  smsw eax
  mov ebx, cr0
  CHECK "smsw returns the guest's CR0 with paging on"

  ; ---- verdict ----
  mov esi, summary_head
  call serial_puts
  mov eax, [failures]
  call print_decimal
  mov esi, summary_of
  call serial_puts
  mov eax, [checks]
  call print_decimal
  mov esi, summary_tail
  call serial_puts
  mov eax, [failures]
  jmp debug_exit

; check: ESI = name, EAX = got, EBX = expected; prints the line, counts a failure. Clobbers EAX, EDX, ESI.
check:
  inc dword [checks]
  cmp eax, ebx
  jne .fail
  push esi
  mov esi, ok_text
  call serial_puts
  pop esi
  call serial_puts
  mov esi, crlf
  jmp serial_puts
.fail:
  inc dword [failures]
  push ebx
  push eax
  push esi
  mov esi, fail_text
  call serial_puts
  pop esi
  call serial_puts
  mov esi, got_text
  call serial_puts
  pop eax
  call print_hex
  mov esi, expected_text
  call serial_puts
  pop eax
  call print_hex
  mov esi, crlf
  jmp serial_puts

; print_hex: print EAX as 8 hex digits. Clobbers EAX, EDX, ESI.
print_hex:
  push ebx
  push ecx
  push edi
  mov ebx, eax
  mov edi, hex_buffer
  mov ecx, 8
.digit:
  rol ebx, 4
  mov eax, ebx
  and eax, 15
  mov al, [hex_digits + eax]
  mov [edi], al
  inc edi
  dec ecx
  jnz .digit
  mov byte [edi], 0
  pop edi
  pop ecx
  pop ebx
  mov esi, hex_buffer
  jmp serial_puts

; set_base: EDI = a descriptor, EAX = its base. Clobbers EAX.
set_base:
  mov [edi + 2], ax
  shr eax, 16
  mov [edi + 4], al
  mov [edi + 7], ah
  ret

; set_gate: ECX = vector, EDX = handler: a DPL-0 32-bit interrupt gate to CODE_SEL. Clobbers EAX, EBX.
set_gate:
  lea ebx, [idt + ecx*8]
  mov eax, edx
  mov [ebx], ax
  mov word [ebx + 2], CODE_SEL
  mov word [ebx + 4], 0x8e00
  shr eax, 16
  mov [ebx + 6], ax
  ret

irq0_handler:
  push eax
  inc dword [irq_count]
  call pic_eoi
  pop eax
  iretd

section .rodata
title: db "sensitive: sensitive-but-unprivileged instructions at CPL 0", 13, 10, 0
ok_text: db "ok   ", 0
fail_text: db "FAIL ", 0
got_text: db ": got 0x", 0
expected_text: db ", expected 0x", 0
crlf: db 13, 10, 0
summary_head: db "sensitive: ", 0
summary_of: db " of ", 0
summary_tail: db " checks failed", 13, 10, 0
hex_digits: db "0123456789abcdef"

section .data
align 8
; descriptors with the accessed bit already set, so LAR reads the same before and after a load
gdt:
  dq 0
  dw 0xffff, 0, 0x9b00, 0x00cf          ; 0x08 code: base 0, 4 GiB, DPL 0, readable
  dw 0xffff, 0, 0x9300, 0x00cf          ; 0x10 data: base 0, 4 GiB, DPL 0, writable
  dw 0x0067, 0, 0x8900, 0x0000          ; 0x18 TSS: limit 0x67, available (base set at run time)
  dw 0x000f, 0, 0x8200, 0x0000          ; 0x20 LDT: two entries (base set at run time)
  dw 0xffff, 0, 0xf300, 0x00cf          ; 0x28 data: base 0, 4 GiB, DPL 3, writable
  dw 0xffff, 0, 0x9900, 0x00cf          ; 0x30 code: base 0, 4 GiB, DPL 0, execute-only
  dw SMALL_LIMIT & 0xffff, 0, 0x9300, 0x0040 | (SMALL_LIMIT >> 16) ; 0x38 data: byte-granular limit
gdt_end:
gdt_descriptor:
  dw gdt_end - gdt - 1
  dd gdt
idt_register:
  dw IDT_ENTRIES * 8 - 1
  dd idt

ldt:
  dw 0xffff, 0, 0x9300, 0x0040          ; LDT 0: data, base 0, limit 0xFFFF, DPL 0
  dq 0

section .bss
alignb 4096
page_directory: resb 4096
page_table: resb 4096
alignb 16
tss: resb 0x68
alignb 4
table_register: resb 8
checks: resd 1
failures: resd 1
irq_count: resd 1
irq_requested: resd 1
irq_early: resd 1
irq_late: resd 1
hex_buffer: resb 12
alignb 16
stack: resb 4096
stack_top:
