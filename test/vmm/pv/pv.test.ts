/**
 * `pv` mode (docs/pv.md, vmm/engines/pv): small paravirtualized guests built
 * in-process (harness.ts) exercise the hypercall interface the way Xen's
 * x86-32 ABI defines it -- ring 1, the trap table and its bounce frames,
 * the direct INT 0x80 gate, event channels with the timer and the upcall,
 * page-table updates and their validation -- and the refusals both ways.
 */
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { describe, expect, it } from "@effect/vitest"
import { Effect, Result } from "effect"
import { Kernel } from "../../../kernel/boot.ts"
import { planGuests } from "../../../scripts/boot/images.ts"
import { defaultVmConfig } from "../../../vmm/config.ts"
import { planXenPvLoad } from "../../../vmm/loader/xen-pv.ts"
import { createVm } from "../../../vmm/vm.ts"
import { testMachine } from "../in-process.ts"
import { pvConfig, pvImage, runPv } from "./harness.ts"

const root = fileURLToPath(new URL("../../..", import.meta.url))
const MIB = 1024 * 1024

/** A trap table with `entries` ([vector, dpl, handler]) and the constants of shared_info. */
const trapTable = (entries: ReadonlyArray<readonly [number, number, string]>) => `
traps:
${entries.map(([v, dpl, h]) => `  db ${v}, ${dpl}\n  dw FLAT_RING1_CS\n  dd ${h}`).join("\n")}
  dd 0, 0
`

describe("pv: a paravirtualized kernel at ring 1", () => {
  it.effect("runs at ring 1 and talks to the hypervisor with hypercalls only (console_io, shutdown code)", () =>
    Effect.gen(function* () {
      const r = yield* runPv(`
  print "ring "
  mov ax, cs
  and eax, 3
  add al, '0'
  mov [scratch + 8], al
  mov ebx, 0
  mov ecx, 1
  mov edx, scratch + 8
  hypercall 18
  shutdown 7
`)
      expect(r.out).toBe("ring 1")
      expect(r.vm.ended).toEqual({ _tag: "DebugExit", code: 7 })
      expect(r.stats.pv_hypercalls, "two console_io, shutdown_code, shutdown").toBe(4)
    })
  )

  it.effect(
    "exceptions bounce to the trap table with the hardware's frame; #PF's address is in vcpu_info.arch.cr2",
    () =>
      Effect.gen(function* () {
        const r = yield* runPv(`
  mov [start_info], esi
  mov ebx, traps
  hypercall 0
  test eax, eax
  jnz fail
  xor edx, edx
  xor ecx, ecx
  mov eax, 1
div_insn:
  div ecx
after_div:
  mov eax, [0x2000000]            ; beyond the 16 MiB the bootstrap tables map
after_load:
  cmp dword [seen], 2
  jne fail
  print "both handled"
  shutdown 0
fail:
  print "wrong"
  shutdown 1
de_handler:                       ; ring 1 -> ring 1: EIP, CS, EFLAGS, no error code
  cmp dword [esp], div_insn
  jne fail
  cmp word [esp + 4], FLAT_RING1_CS  ; bits 16-23: the saved event mask (1: masked since boot)
  jne fail
  inc dword [seen]
  mov dword [esp], after_div
  iret
pf_handler:                       ; error code, EIP, CS, EFLAGS
  cmp dword [esp], 0              ; not present, read, supervisor
  jne fail
  mov eax, [start_info]
  mov eax, [eax + SI_SHARED_INFO]
  cmp dword [eax + 8], 0x2000000  ; vcpu_info[0].arch.cr2
  jne fail
  inc dword [seen]
  add esp, 4
  mov dword [esp], after_load
  iret
${trapTable([
  [0, 0, "de_handler"],
  [14, 0, "pf_handler"]
])}
start_info: dd 0
seen: dd 0
`)
        expect(r.out).toBe("both handled")
        expect(r.vm.ended).toEqual({ _tag: "DebugExit", code: 0 })
        expect(r.stats.pv_bounced_traps).toBe(2)
      })
  )

  it.effect("INT 0x80 from ring 3 goes straight to the guest's handler; INT 0x82 from ring 3 is a #GP", () =>
    Effect.gen(function* () {
      const r = yield* runPv(`
  mov ebx, traps
  hypercall 0
  mov ebx, FLAT_RING1_DS            ; stack_switch: the kernel stack for events from ring 3
  mov ecx, kstack_top
  hypercall 3
  mov ebx, user_page                ; update_va_mapping: the user page user-accessible
  mov ecx, user_page + 7
  mov edx, 2
  hypercall 14
  test eax, eax
  jnz fail
  push FLAT_RING3_DS
  push user_page + 4096
  push 0x202
  push FLAT_RING3_CS
  push user_code
  iret
fail:
  print "wrong"
  shutdown 1
syscall:                            ; INT 0x80 from ring 3: SS, ESP, EFLAGS, CS, EIP on the kernel stack
  mov cx, FLAT_RING1_DS
  mov ds, cx
  cmp esp, kstack_top - 20
  jne fail
  cmp eax, 42
  jne fail
  inc dword [calls]
  iret
gp:                                 ; error code (vector 0x82, IDT bit): 0x412
  mov cx, FLAT_RING1_DS
  mov ds, cx
  cmp dword [esp], (0x82 << 3) | 2
  jne fail
  cmp dword [calls], 1
  jne fail
  print "syscall direct, hypercall refused"
  shutdown 0
${trapTable([
  [0x80, 3, "syscall"],
  [13, 0, "gp"]
])}
calls: dd 0
kstack: times 256 dd 0
kstack_top:
align 4096
user_page:
user_code:
  mov eax, 42
  int 0x80
  int 0x82
  jmp $
  align 4096, db 0
`)
      expect(r.out).toBe("syscall direct, hypercall refused")
      expect(r.vm.ended).toEqual({ _tag: "DebugExit", code: 0 })
      // the #GP bounced through the hypervisor; the system call did not
      expect(r.stats.pv_bounced_traps).toBe(1)
    })
  )

  it.effect("the one-shot timer raises VIRQ_TIMER on its event channel; SCHEDOP_block sleeps until the upcall", () =>
    Effect.gen(function* () {
      const r = yield* runPv(`
  mov eax, [esi + SI_SHARED_INFO]
  mov [shared], eax
  mov dword [scratch], 0            ; bind_virq {VIRQ_TIMER, vcpu 0, port out}
  mov dword [scratch + 4], 0
  mov ebx, 1
  mov ecx, scratch
  hypercall 32
  test eax, eax
  jnz fail
  mov eax, [scratch + 8]
  mov [port], eax
  mov ebx, FLAT_RING1_CS            ; set_callbacks
  mov ecx, on_event
  mov edx, FLAT_RING1_CS
  mov esi, fail
  hypercall 4
  call now
  mov [t0], eax
  mov [t0 + 4], edx
.tick:
  call now
  add eax, 1000000                  ; one event per millisecond
  adc edx, 0
  mov ebx, eax
  mov ecx, edx
  hypercall 15                      ; set_timer_op
  mov ebx, 1
  hypercall 29                      ; SCHEDOP_block: unmasks events, sleeps until one is pending
  cmp dword [ticks], 5
  jb .tick
  call now                          ; at least 5 ms later
  sub eax, [t0]
  sbb edx, [t0 + 4]
  jnz fail
  cmp eax, 5000000
  jb fail
  print "5 timer events"
  shutdown 0
fail:
  print "wrong"
  shutdown 1

now:                                ; system time in ns from RDTSC and vcpu_info.time -> EDX:EAX
  push ebx
  push esi
  push edi
  mov edi, [shared]
  rdtsc
  mov cl, [edi + 60]                ; tsc_shift
  test cl, cl
  js .right
  shld edx, eax, cl
  shl eax, cl
  jmp .scale
.right:
  neg cl
  shrd eax, edx, cl
  shr edx, cl
.scale:
  mov ebx, [edi + 56]               ; tsc_to_system_mul: (tsc * mul) >> 32
  mov esi, edx
  mul ebx
  mov edi, edx
  mov eax, esi
  mul ebx
  add eax, edi
  adc edx, 0
  pop edi
  pop esi
  pop ebx
  ret

on_event:                           ; the upcall: events masked, frame EFLAGS, CS, EIP
  push eax
  push ebx
  mov ebx, [shared]
  mov byte [ebx], 0                 ; evtchn_upcall_pending
  xor eax, eax
  xchg eax, [ebx + 4]               ; evtchn_pending_sel
  test eax, 1
  jz .done
  mov eax, [port]
  btr dword [ebx + 2048], eax       ; evtchn_pending
  jnc .done
  inc dword [ticks]
.done:
  pop ebx
  pop eax
  jmp HYPERCALL(23)                 ; HYPERVISOR_iret: restores the mask from the frame's IF

shared: dd 0
port: dd 0
ticks: dd 0
t0: dd 0, 0
`)
      expect(r.out).toBe("5 timer events")
      expect(r.vm.ended).toEqual({ _tag: "DebugExit", code: 0 })
      expect(r.stats.pv_upcalls).toBe(5)
    })
  )

  it.effect("page tables are read-only to the guest; updates are validated; a valid one takes effect", () =>
    Effect.gen(function* () {
      const r = yield* runPv(`
  mov eax, [esi + SI_PT_BASE]
  mov [pd], eax
  mov ebx, traps
  hypercall 0
  ; a frame outside the 16 MiB of RAM: refused
  mov ebx, 0x400000
  mov ecx, 0x10000000 | 3
  xor edx, edx
  hypercall 14
  cmp eax, -22
  jne fail
  ; the page directory (in use) mapped writable: refused
  mov ebx, 0x400000
  mov ecx, [pd]
  or ecx, 3
  hypercall 14
  cmp eax, -22
  jne fail
  ; mmu_update of the same through its pseudo-physical address, batch of one, done count 0
  mov eax, [pd]
  add eax, 4096                     ; the first page table's first entry
  mov dword [req], eax
  mov dword [req + 4], 0
  mov eax, [pd]
  or eax, 3
  mov dword [req + 8], eax
  mov dword [req + 12], 0
  mov ebx, req
  mov ecx, 1
  mov edx, done
  mov esi, DOMID_SELF
  hypercall 1
  cmp eax, -22
  jne fail
  cmp dword [done], 0
  jne fail
  ; a direct store into the page directory: #PF (present, write) to the guest
  mov eax, [pd]
write_pd:
  mov dword [eax + 0x100], 0
after_write:
  cmp dword [faults], 1
  jne fail
  ; a copy of the page directory in a free frame, written while not in use, then made the page directory:
  ; its old writable mapping no longer lets the guest write it (the shadows trace it)
  mov esi, [pd]
  mov edi, 0x600000
  mov ecx, 1024
  rep movsd
  mov dword [req], 5                ; MMUEXT_NEW_BASEPTR, frame 0x600
  mov dword [req + 4], 0x600
  mov ebx, req
  mov ecx, 1
  xor edx, edx
  mov esi, DOMID_SELF
  hypercall 26
  test eax, eax
  jnz fail
write_new_pd:
  mov dword [0x600000 + 0x100], 0x12345007
after_write_new_pd:
  cmp dword [faults], 2
  jne fail
  cmp dword [0x600000 + 0x100], 0   ; the entry is unchanged
  jne fail
  ; valid: 0x400000 now maps frame 0x500 (0x500000), and reads what is there
  mov dword [0x500000], 0x1234abcd
  mov ebx, 0x400000
  mov ecx, 0x500000 | 3
  mov edx, 2                        ; UVMF_INVLPG
  hypercall 14
  test eax, eax
  jnz fail
  cmp dword [0x400000], 0x1234abcd
  jne fail
  print "validated"
  shutdown 0
fail:
  print "wrong"
  shutdown 1
pf:
  cmp dword [esp], 3
  jne fail
  inc dword [faults]
  add esp, 4
  cmp dword [esp], write_pd
  je .first
  cmp dword [esp], write_new_pd
  jne fail
  mov dword [esp], after_write_new_pd
  iret
.first:
  mov dword [esp], after_write
  iret
${trapTable([[14, 0, "pf"]])}
pd: dd 0
done: dd 0
faults: dd 0
req: dd 0, 0, 0, 0
`)
      expect(r.out).toBe("validated")
      expect(r.vm.ended).toEqual({ _tag: "DebugExit", code: 0 })
    })
  )
})

describe("pv: what is and is not a PV kernel", () => {
  const hello = readFileSync(join(root, "images/hello/hello.elf"))

  it("an unmodified (Multiboot) kernel is refused in pv mode, and says why", () => {
    const r = planXenPvLoad(hello, { ramBytes: 16 * MIB, cmdline: "" })
    expect(Result.isFailure(r) && r.failure.message).toMatch(
      /^not-xen-pv: not a paravirtualized kernel: it has no Xen ELF notes/
    )
  })

  it("a PV domain's RAM is whole 4 MiB blocks", () => {
    const r = planXenPvLoad(pvImage("hlt"), { ramBytes: 6 * MIB, cmdline: "" })
    expect(Result.isFailure(r) && r.failure.message).toBe(
      "bad-options: a PV domain's RAM must be a multiple of 4 MiB from 4 MiB to 3 GiB, not 6 MiB"
    )
  })

  it("a PV kernel asking for what fibervisor does not offer gets every problem listed", () => {
    const image = pvImage("hlt", { xenVersion: "xen-4.0", features: "writable_page_tables", paeMode: "yes" })
    const r = planXenPvLoad(image, { ramBytes: 16 * MIB, cmdline: "" })
    const message = Result.isFailure(r) ? r.failure.message : ""
    expect(message).toContain("bad-xen-pv")
    expect(message).toContain('XEN_ELFNOTE_XEN_VERSION is "xen-4.0"')
    expect(message).toContain("does not list auto_translated_physmap")
    expect(message).toContain('XEN_ELFNOTE_PAE_MODE is "yes"')
  })

  it.effect("the boot planner refuses a PV kernel outside pv mode, and a Multiboot one in it", () =>
    Effect.gen(function* () {
      const dir = mkdtempSync(join(tmpdir(), "pv-plan-"))
      const pvPath = join(dir, "pv.elf")
      writeFileSync(pvPath, pvImage("hlt"))
      const helloPath = join(root, "images/hello/hello.elf")
      const hw = yield* Effect.flip(planGuests([pvPath], { memoryBytes: 16 * MIB, cmdline: "", bios: undefined }))
      expect(hw.join("\n")).toContain(
        "pv.elf: xen-pv-image: a paravirtualized (Xen) kernel (pv-test), built for --mode pv, not --mode hw"
      )
      const pv = yield* Effect.flip(
        planGuests([helloPath], { memoryBytes: 16 * MIB, cmdline: "", bios: undefined, mode: "pv" })
      )
      expect(pv.join("\n")).toContain("hello.elf: not-xen-pv")
      const ok = yield* planGuests([pvPath], { memoryBytes: 16 * MIB, cmdline: "", bios: undefined, mode: "pv" })
      expect(ok[0]?.payload.pv?.nrPages).toBe(4096)
    })
  )

  it.effect("a frame pinned as a page table is read-only to the guest until unpinned", () =>
    Effect.gen(function* () {
      const r = yield* runPv(`
  mov ebx, traps
  hypercall 0
  mov dword [0x700000], 0x11111111  ; a free frame, writable, not a page table
  mov dword [ops], 0                ; MMUEXT_PIN_L1_TABLE 0x700
  mov dword [ops + 4], 0x700
  mov ebx, ops
  mov ecx, 1
  xor edx, edx
  mov esi, DOMID_SELF
  hypercall 26
  test eax, eax
  jnz fail
write_pinned:
  mov dword [0x700000], 0x22222222  ; #PF: present, write
after_write:
  cmp dword [faults], 1
  jne fail
  cmp dword [0x700000], 0x11111111
  jne fail
  mov ebx, 0x400000                 ; a writable mapping of it: refused
  mov ecx, 0x700000 | 3
  xor edx, edx
  hypercall 14
  cmp eax, -22
  jne fail
  mov dword [ops], 4                ; MMUEXT_UNPIN_TABLE: writable again
  mov ebx, ops
  mov ecx, 1
  xor edx, edx
  mov esi, DOMID_SELF
  hypercall 26
  mov dword [0x700000], 0x33333333
  cmp dword [0x700000], 0x33333333
  jne fail
  print "pinned"
  shutdown 0
fail:
  print "wrong"
  shutdown 1
pf:
  cmp dword [esp], 3
  jne fail
  cmp dword [esp + 4], write_pinned
  jne fail
  inc dword [faults]
  add esp, 4
  mov dword [esp], after_write
  iret
${trapTable([[14, 0, "pf"]])}
faults: dd 0
ops: dd 0, 0, 0
`)
      expect(r.out).toBe("pinned")
      expect(r.vm.ended).toEqual({ _tag: "DebugExit", code: 0 })
    })
  )

  it.effect("a PV VM resets to the builder's state: the same image runs again from its start", () =>
    Effect.gen(function* () {
      const r = yield* runPv(
        `
  mov ebx, 1                        ; bind VIRQ_TIMER, then say so and block for good
  mov dword [scratch], 0
  mov dword [scratch + 4], 0
  mov ecx, scratch
  hypercall 32
  mov eax, [scratch + 8]
  add al, '0'
  mov [port_text], al
  mov ebx, 0
  mov ecx, 7
  mov edx, text
  hypercall 18
  mov ebx, 1
  hypercall 29
  jmp $
text: db "port "
port_text: db "?", 10
`,
        { ns: 5_000_000, midway: (vm) => vm.reset() }
      )
      // after the reset the first free port is the same again: the domain's event channels started over
      expect(r.out).toBe("port 3\nport 3\n")
      expect(r.vm.ended).toBeUndefined()
      expect(r.vm.resets).toBe(1)
    })
  )

  it.effect("an event raised from outside its run wakes a vCPU blocked in SCHEDOP_block (no timer set)", () =>
    Effect.gen(function* () {
      let before = ""
      const r = yield* runPv(
        `
  mov word [scratch], DOMID_SELF    ; alloc_unbound {dom, remote_dom 0, port out}: port 3
  mov word [scratch + 2], 0
  mov ebx, 6
  mov ecx, scratch
  hypercall 32
  mov ebx, FLAT_RING1_CS
  mov ecx, on_event
  mov edx, FLAT_RING1_CS
  mov esi, on_event
  hypercall 4
  print "blocked "
  mov ebx, 1
  hypercall 29                      ; SCHEDOP_block, nothing armed
  jmp $
on_event:
  print "woken"
  shutdown 0
`,
        {
          ns: 5_000_000,
          midway: (vm, out) => {
            before = out
            // a back end's notification, made outside the guest's own run (as a frame from another VM arrives)
            vm.pvDomain!.raise(3)
          }
        }
      )
      expect(before).toBe("blocked ")
      expect(r.out).toBe("blocked woken")
      expect(r.vm.ended).toEqual({ _tag: "DebugExit", code: 0 })
    })
  )

  it.effect("createVm refuses a payload that does not match the mode, before anything starts", () =>
    Effect.gen(function* () {
      const planned = planXenPvLoad(pvImage("hlt"), { ramBytes: 16 * MIB, cmdline: "" })
      if (Result.isFailure(planned)) throw new Error(planned.failure.message)
      const hw = yield* Effect.flip(
        createVm({ ...defaultVmConfig("pv-in-hw", "inline"), mode: "hw" }, planned.success, { console: () => {} })
      )
      expect(hw.message).toContain('the image is a paravirtualized (Xen) kernel: it runs in mode "pv" only')
      const { registers, writes } = planned.success
      const pv = yield* Effect.flip(createVm(pvConfig("plain-in-pv"), { registers, writes }, { console: () => {} }))
      expect(pv.message).toContain('mode "pv" runs paravirtualized (Xen) kernels only')
      const smp = yield* Effect.flip(
        createVm({ ...pvConfig("pv-smp"), vcpus: 2 }, planned.success, { console: () => {} })
      )
      expect(smp.message).toContain('mode "pv" runs one vCPU per domain')
    }).pipe(Effect.provide(Kernel.boot(testMachine())), Effect.scoped)
  )
})
