/**
 * Exception exits during event delivery (Intel SDM Vol. 3C 28.2.4 "Information
 * for VM Exits During Event Delivery", 26.2, 28.2.5): when the delivery of an
 * event (an injected event, an external interrupt, INT n, an exception) raises
 * an exception that the exception bitmap turns into a VM exit, the exit names
 * that exception and the IDT-vectoring information names the event, so the
 * VMM can re-inject it once it has dealt with the cause. A nested exception
 * is looked up in the bitmap as itself, before any double-fault conversion: a
 * #PF while delivering a #PF exits as #PF (what a shadow-paging VMM relies on
 * for a hidden fault on the guest's IDT or stack).
 *
 * The guests are vmx.test.ts's identity-paged ones; their stack is moved to an
 * unmapped page (PDE 1 is not present above 4 MiB), so every push faults.
 */
import { describe, expect, it } from "@effect/vitest"
import { ExitReason, INTR_INFO_ERROR_CODE, INTR_INFO_VALID } from "../../../hw/cpu/vmx/exit-reasons.ts"
import { identityVm, type Vm } from "./vmx-builder.ts"
import { expectExit, oneInsn } from "./vmx-expect.ts"

const GP = 13
const PF = 14
/** An unmapped stack top: the first push writes 0x400ffc (PDE 1 not present, SDM 3A 4.3). */
const UNMAPPED_STACK = 0x401000

const info = (vector: number, type: number, error = false): number =>
  (INTR_INFO_VALID | (error ? INTR_INFO_ERROR_CODE : 0) | (type << 8) | vector) >>> 0

const faultingStack = (vm: Vm): Vm => {
  vm.vmcs.controls.exceptionBitmap = 1 << PF
  vm.vmcs.guest.regs.esp = UNMAPPED_STACK
  return vm
}

describe("IDT-vectoring information of an exception exit (SDM 3C 28.2.4)", () => {
  it("an injected external interrupt whose delivery faults: #PF exit, vectoring = the interrupt (type 0)", () => {
    const vm = faultingStack(identityVm(oneInsn("nop")))
    vm.vmcs.entry.interruptionInfo = info(0x40, 0)
    expectExit(vm, ExitReason.ExceptionOrNmi)
    expect(vm.vmcs.exit.interruptionInfo).toBe(info(PF, 3, true))
    expect(vm.vmcs.exit.qualification).toBe(UNMAPPED_STACK - 4)
    expect(vm.vmcs.exit.interruptionErrorCode).toBe(2) // a supervisor write to a not-present page
    expect(vm.vmcs.exit.idtVectoringInfo).toBe(info(0x40, 0))
    expect(vm.rip).toBe(vm.sym("insn"))
  })

  it("INT n whose delivery faults: vectoring = software interrupt (type 4), the instruction length, RIP at INT (28.2.5)", () => {
    const vm = faultingStack(identityVm(oneInsn("int 0x30")))
    expectExit(vm, ExitReason.ExceptionOrNmi)
    expect(vm.vmcs.exit.interruptionInfo & 0xff).toBe(PF)
    expect(vm.vmcs.exit.idtVectoringInfo).toBe(info(0x30, 4))
    expect(vm.vmcs.exit.instructionLength).toBe(2)
    expect(vm.rip).toBe(vm.sym("insn"))
  })

  it("an injected software interrupt whose delivery faults: RIP of the entry, VM-exit length = VM-entry length (28.2.5)", () => {
    const vm = faultingStack(identityVm(oneInsn("int 0x30")))
    vm.vmcs.entry.interruptionInfo = info(0x30, 4)
    vm.vmcs.entry.instructionLength = 2
    expectExit(vm, ExitReason.ExceptionOrNmi)
    expect(vm.vmcs.exit.idtVectoringInfo).toBe(info(0x30, 4))
    expect(vm.vmcs.exit.instructionLength).toBe(2)
    expect(vm.rip, "re-injecting the event as it was (RIP + length again) resumes right").toBe(vm.sym("insn"))
  })

  it("a #PF while delivering an injected #PF exits as #PF, not #DF; vectoring = the first #PF with its error code (26.2)", () => {
    const vm = faultingStack(identityVm(oneInsn("nop")))
    vm.vmcs.entry.interruptionInfo = info(PF, 3, true)
    vm.vmcs.entry.exceptionErrorCode = 4
    expectExit(vm, ExitReason.ExceptionOrNmi)
    expect(vm.vmcs.exit.interruptionInfo).toBe(info(PF, 3, true))
    expect(vm.vmcs.exit.idtVectoringInfo).toBe(info(PF, 3, true))
    expect(vm.vmcs.exit.idtVectoringErrorCode).toBe(4)
  })

  it("a guest #GP (not in the bitmap) whose delivery faults: #PF exit, vectoring = the #GP and its error code", () => {
    const vm = faultingStack(
      identityVm(`
start:
  mov ax, 0x83
insn:
  mov ds, ax
  hlt`)
    )
    expectExit(vm, ExitReason.ExceptionOrNmi)
    expect(vm.vmcs.exit.interruptionInfo & 0xff).toBe(PF)
    expect(vm.vmcs.exit.idtVectoringInfo).toBe(info(GP, 3, true))
    expect(vm.vmcs.exit.idtVectoringErrorCode).toBe(0x80)
    expect(vm.rip).toBe(vm.sym("insn"))
  })

  it("an exception exit outside event delivery has no vectoring information, also right after one during delivery", () => {
    const vm = identityVm(`
start:
insn:
  int 0x30
plain:
  mov [0x400123], eax
  hlt`)
    const stack = vm.vmcs.guest.regs.esp
    faultingStack(vm)
    expectExit(vm, ExitReason.ExceptionOrNmi)
    expect(vm.vmcs.exit.idtVectoringInfo).toBe(info(0x30, 4))
    vm.vmcs.guest.regs.esp = stack
    vm.vmcs.guest.regs.eip = vm.sym("plain")
    expectExit(vm, ExitReason.ExceptionOrNmi)
    expect(vm.vmcs.exit.qualification).toBe(0x400123)
    expect(vm.vmcs.exit.idtVectoringInfo).toBe(0)
  })
})
