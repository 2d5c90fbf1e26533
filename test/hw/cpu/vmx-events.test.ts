/**
 * Events in VMX non-root operation on the IA-32 interpreter, one Intel SDM
 * Vol. 3C rule per test (current edition numbering, as in vmx.test.ts):
 *
 *   - the exception bitmap and #PF error-code mask/match (25.6.3, 26.2), the
 *     exit interruption information (28.2.2), CR2 left alone (28.1);
 *   - external-interrupt and NMI exiting, acknowledge-on-exit, and
 *     interrupt-window exiting (26.2, 25.6.1, 25.4.2 STI blocking);
 *   - event injection on VM entry (27.6), into a halted guest (27.7.2) and in
 *     real mode under "unrestricted guest" (26.6);
 *   - the VMX-preemption timer (26.5.1, 27.7.4, 28.3.4);
 *   - a triple fault as a VM exit (26.2), VM-entry failures (27.2.1.1,
 *     27.3.1, 27.8), and the VM entry / exit cost model.
 *
 * Guests as in vmx.test.ts (identity paging, no EPT unless a test says so);
 * exceptions the guest takes itself land in the harness's recording stubs,
 * which HLT: `enter` returns RunExit.Halt and `guest.trap()` tells what the
 * guest saw.
 */
import { describe, expect, it } from "@effect/vitest"
import { RunExit } from "../../../hw/cpu/state.ts"
import {
  EXIT_REASON_ENTRY_FAILURE,
  ExitReason,
  exitReasonName,
  INTR_INFO_ERROR_CODE,
  INTR_INFO_VALID
} from "../../../hw/cpu/vmx/exit-reasons.ts"
import {
  ActivityState,
  ExitControls,
  newVmcs,
  PinControls,
  Proc2Controls,
  ProcControls
} from "../../../hw/cpu/vmx/vmcs.ts"
import { vmenter } from "../../../hw/cpu/vmx/vmx.ts"
import { EFLAGS } from "./harness.ts"
import { identityVm, type Vm } from "./vmx-builder.ts"
import { expectExit, expectGuestHalt, expectGuestTrap, oneInsn } from "./vmx-expect.ts"

const UD = 6
const GP = 13
const PF = 14

describe("exception bitmap (SDM 3C 25.6.3, 26.2) and the exit's interruption information (28.2.2)", () => {
  it("#UD in the bitmap exits: reason 0, vector 6, type 3 (hardware exception), no error code; RIP at UD2 (SDM 3C 26.2, 28.2.2)", () => {
    const vm = identityVm(oneInsn("ud2"))
    vm.vmcs.controls.exceptionBitmap = 1 << UD
    expectExit(vm, ExitReason.ExceptionOrNmi)
    const info = vm.vmcs.exit.interruptionInfo
    expect(info & 0xff).toBe(UD)
    expect((info >> 8) & 7).toBe(3)
    expect(info & INTR_INFO_ERROR_CODE).toBe(0)
    expect((info & INTR_INFO_VALID) >>> 0).toBe(INTR_INFO_VALID)
    expect(vm.rip).toBe(vm.sym("insn"))
    expect(vm.guest.trap()).toBeUndefined()
  })

  it("#GP in the bitmap exits with the error-code-valid bit and the error code (SDM 3C 26.2, 28.2.2)", () => {
    const vm = identityVm(`
start:
  mov ax, 0x83
insn:
  mov ds, ax
  hlt`)
    vm.vmcs.controls.exceptionBitmap = 1 << GP
    expectExit(vm, ExitReason.ExceptionOrNmi)
    expect(vm.vmcs.exit.interruptionInfo).toBe((INTR_INFO_VALID | INTR_INFO_ERROR_CODE | (3 << 8) | GP) >>> 0)
    expect(vm.vmcs.exit.interruptionErrorCode).toBe(0x80)
    expect(vm.rip).toBe(vm.sym("insn"))
  })

  it("#PF in the bitmap exits with qualification = faulting linear address; CR2 is not modified (SDM 3C 28.1, 28.2.1)", () => {
    const vm = identityVm(oneInsn("mov [0x400123], eax")) // PDE 1 not present
    vm.vmcs.controls.exceptionBitmap = 1 << PF
    vm.vmcs.guest.regs.cr2 = 0xdead0000
    expectExit(vm, ExitReason.ExceptionOrNmi)
    expect(vm.vmcs.exit.qualification).toBe(0x400123)
    expect(vm.vmcs.exit.interruptionInfo).toBe((INTR_INFO_VALID | INTR_INFO_ERROR_CODE | (3 << 8) | PF) >>> 0)
    expect(vm.vmcs.exit.interruptionErrorCode).toBe(2) // W
    expect(vm.vmcs.guest.regs.cr2).toBe(0xdead0000)
    expect(vm.rip).toBe(vm.sym("insn"))
  })

  describe("#PF error-code mask/match (SDM 3C 26.2): exit iff (PFEC & mask) == match equals bitmap bit 14", () => {
    const W = 2
    const cases = [
      { bit: true, access: "write", exits: true, why: "bit set, match" },
      { bit: true, access: "read", exits: false, why: "bit set, mismatch" },
      { bit: false, access: "write", exits: false, why: "bit clear, match" },
      { bit: false, access: "read", exits: true, why: "bit clear, mismatch" }
    ] as const
    for (const c of cases) {
      it(`${c.why}: a ${c.access} fault ${c.exits ? "exits" : "goes to the guest"} (SDM 3C 26.2)`, () => {
        const vm = identityVm(oneInsn(c.access === "write" ? "mov [0x400123], eax" : "mov eax, [0x400123]"))
        vm.vmcs.controls.exceptionBitmap = c.bit ? 1 << PF : 0
        vm.vmcs.controls.pageFaultErrorCodeMask = W
        vm.vmcs.controls.pageFaultErrorCodeMatch = W
        if (c.exits) {
          expectExit(vm, ExitReason.ExceptionOrNmi)
          expect(vm.vmcs.exit.interruptionErrorCode).toBe(c.access === "write" ? W : 0)
        } else {
          const f = expectGuestTrap(vm, PF)
          expect(f.error).toBe(c.access === "write" ? W : 0)
          expect(vm.vmcs.guest.regs.cr2, "delivered to the guest: CR2 written").toBe(0x400123)
        }
      })
    }
  })

  it("an exception not in the bitmap is delivered through the guest IDT (SDM 3C 25.6.3)", () => {
    const vm = identityVm(`
start:
  mov ax, 0x83
insn:
  mov ds, ax
  hlt`)
    vm.vmcs.controls.exceptionBitmap = (1 << UD) | (1 << PF)
    const f = expectGuestTrap(vm, GP)
    expect(f.error).toBe(0x80)
    expect(f.eip).toBe(vm.sym("insn"))
  })
})

describe("external interrupts, NMIs and the interrupt window (SDM 3C 26.2, 25.6.1, 28.2.2)", () => {
  const VECTOR = 0x40
  const program = `
start:
  nop
after_nop:
  nop
  hlt`
  /** A VM whose pCPU has INTR asserted, counting acknowledge cycles. */
  const withIntr = (eflags: number): { vm: Vm; acks: () => number } => {
    const vm = identityVm(program, { eflags })
    let acks = 0
    vm.cpu.acknowledge = () => {
      acks++
      return VECTOR
    }
    vm.cpu.setIntr(true)
    return { vm, acks: () => acks }
  }

  it("with external-interrupt exiting, INTR exits with reason 1 even when the guest has IF = 0; not acknowledged (SDM 3C 26.2, 28.1)", () => {
    const { vm, acks } = withIntr(0)
    vm.vmcs.controls.pin |= PinControls.ExternalInterruptExiting
    expectExit(vm, ExitReason.ExternalInterrupt)
    expect(vm.rip).toBe(vm.sym("start"))
    expect(vm.vmcs.exit.interruptionInfo & INTR_INFO_VALID, "no vector without acknowledge-on-exit").toBe(0)
    expect(acks()).toBe(0)
  })

  it("with 'acknowledge interrupt on exit' the vector is in the exit interruption info (type 0) (SDM 3C 28.2.2)", () => {
    const { vm, acks } = withIntr(EFLAGS.IF)
    vm.vmcs.controls.pin |= PinControls.ExternalInterruptExiting
    vm.vmcs.controls.exit |= ExitControls.AcknowledgeInterruptOnExit
    expectExit(vm, ExitReason.ExternalInterrupt)
    expect(vm.vmcs.exit.interruptionInfo).toBe((INTR_INFO_VALID | (0 << 8) | VECTOR) >>> 0)
    expect(acks()).toBe(1)
    expect(vm.guest.trap()).toBeUndefined()
  })

  it("an interrupt raised mid-run exits at the next instruction boundary (SDM 3C 26.2)", () => {
    const vm = identityVm(`
start:
  out 0x80, al
after_out:
  nop
  hlt`)
    vm.vmcs.controls.pin |= PinControls.ExternalInterruptExiting
    vm.guest.ports.out = () => vm.cpu.setIntr(true)
    expectExit(vm, ExitReason.ExternalInterrupt)
    expect(vm.rip).toBe(vm.sym("after_out"))
  })

  it("without external-interrupt exiting, INTR goes through the guest IDT when IF = 1, and waits while IF = 0 (SDM 3C 25.6.1)", () => {
    const open = withIntr(EFLAGS.IF)
    const f = expectGuestTrap(open.vm, VECTOR)
    expect(f.eip).toBe(open.vm.sym("start"))
    expect(open.acks()).toBe(1)

    const closed = withIntr(0)
    expectGuestHalt(closed.vm)
    expect(closed.acks()).toBe(0)
  })

  it("with external-interrupt exiting, INTR arriving while the guest is halted (HLT activity state) exits (SDM 3C 28.1)", () => {
    const vm = identityVm(oneInsn("hlt"))
    vm.vmcs.controls.pin |= PinControls.ExternalInterruptExiting
    expectGuestHalt(vm)
    vm.cpu.setIntr(true)
    expectExit(vm, ExitReason.ExternalInterrupt)
    expect(vm.rip).toBe(vm.sym("done"))
  })

  // Was a bug, fixed (hw/cpu/interrupts.ts nonRootEventExit): an event that causes a VM exit directly returns the processor to
  // the active state "only after the VM exit completes" (SDM 3C 28.1), and the activity-state field is saved with the
  // state before the exit (28.3.4): a halted guest interrupted by an external-interrupt (or NMI, or interrupt-window)
  // exit is saved as HLT, so resuming it without injecting anything leaves it halted. Expected: activityState = HLT;
  // actual: Active (nonRootEventExit clears cpu.halted before recording the exit). The preemption-timer exit of a
  // halted guest does keep HLT (vmx.ts), see the timer tests.
  it("an external-interrupt exit from a halted guest saves the HLT activity state (SDM 3C 28.1, 28.3.4)", () => {
    const vm = identityVm(oneInsn("hlt"))
    vm.vmcs.controls.pin |= PinControls.ExternalInterruptExiting
    expectGuestHalt(vm)
    vm.cpu.setIntr(true)
    expectExit(vm, ExitReason.ExternalInterrupt)
    expect(vm.vmcs.guest.activityState).toBe(ActivityState.Hlt)
  })

  it("with NMI exiting an NMI exits: reason 0, vector 2, type 2 (SDM 3C 26.2, table 25-17)", () => {
    const vm = identityVm(program)
    vm.vmcs.controls.pin |= PinControls.NmiExiting
    vm.cpu.raiseNmi()
    expectExit(vm, ExitReason.ExceptionOrNmi)
    expect(vm.vmcs.exit.interruptionInfo).toBe((INTR_INFO_VALID | (2 << 8) | 2) >>> 0)
    expect(vm.rip).toBe(vm.sym("start"))
  })

  it("without NMI exiting the NMI is delivered through the guest IDT, vector 2 (SDM 3C 25.6.1)", () => {
    const vm = identityVm(program)
    vm.cpu.raiseNmi()
    expect(expectGuestTrap(vm, 2).eip).toBe(vm.sym("start"))
  })

  // Was a bug, fixed (hw/cpu/interrupts.ts handleEvents): STI blocking lasts until the end of the instruction after STI (SDM Vol. 2
  // STI; 3C 26.4.1, 25.4.2 table 25-3), so the window opens one instruction later. Expected: exit with RIP = `window`
  // (the NOP after STI executed); actual: RIP = `shadowed`. handleEvents clears intShadow and, because the
  // interrupt-window (or INTR && IF) condition keeps eventPending set, runs the event check again before any
  // instruction: the shadow never covers an instruction. The same happens outside VMX: with INTR asserted,
  // `sti; inc ebx` takes the interrupt with the frame's EIP at the INC and EBX still 0.
  it("interrupt-window exiting: exits after STI and the instruction it shadows (STI blocking, SDM 3C 26.2, 26.4.1)", () => {
    const vm = identityVm(`
start:
  nop
  sti
shadowed:
  nop
window:
  nop
  hlt`)
    vm.vmcs.controls.proc |= ProcControls.InterruptWindowExiting
    expectExit(vm, ExitReason.InterruptWindow)
    expect(vm.rip).toBe(vm.sym("window"))
    expect(vm.vmcs.guest.regs.eflags & EFLAGS.IF).toBe(EFLAGS.IF)
  })

  it("interrupt-window exiting with IF = 1 at entry exits before the first guest instruction (SDM 3C 26.2, 27.7.5)", () => {
    const vm = identityVm(program, { eflags: EFLAGS.IF })
    vm.vmcs.controls.proc |= ProcControls.InterruptWindowExiting
    const before = vm.cpu.instructions
    expectExit(vm, ExitReason.InterruptWindow)
    expect(vm.rip).toBe(vm.sym("start"))
    expect(vm.cpu.instructions).toBe(before)
  })

  // Was a bug, fixed (hw/cpu/interrupts.ts handleEvents), same cause as above: blocking by STI loaded from the guest
  // interruptibility state (vmenter sets cpu.intShadow) is dropped before the first guest instruction. Expected:
  // RIP = `after_nop`; actual: the exit comes at `start`.
  it("interrupt-window exiting with STI blocking recorded in the guest interruptibility state waits one instruction (SDM 3C 25.4.2)", () => {
    const vm = identityVm(program, { eflags: EFLAGS.IF })
    vm.vmcs.controls.proc |= ProcControls.InterruptWindowExiting
    vm.vmcs.guest.interruptibility = 1 // blocking by STI
    expectExit(vm, ExitReason.InterruptWindow)
    expect(vm.rip).toBe(vm.sym("after_nop"))
  })
})

describe("event injection on VM entry (SDM 3C 27.6, 25.8.3)", () => {
  const handlerProgram = `
start:
  nop
  hlt`

  it("an injected external interrupt is delivered through the guest IDT before the first instruction (SDM 3C 27.6.1)", () => {
    const vm = identityVm(handlerProgram)
    vm.vmcs.entry.interruptionInfo = (INTR_INFO_VALID | (0 << 8) | 0x40) >>> 0
    const f = expectGuestTrap(vm, 0x40)
    expect(f.eip).toBe(vm.sym("start"))
    expect(
      vm.vmcs.entry.interruptionInfo & INTR_INFO_VALID,
      "consumed: the VM-entry valid bit is clear afterwards (SDM 3C 28.2)"
    ).toBe(0)
  })

  it("an injected hardware exception with error code pushes that error code (SDM 3C 27.6.1.2)", () => {
    const vm = identityVm(handlerProgram)
    vm.vmcs.entry.interruptionInfo = (INTR_INFO_VALID | INTR_INFO_ERROR_CODE | (3 << 8) | GP) >>> 0
    vm.vmcs.entry.exceptionErrorCode = 0x1234
    const f = expectGuestTrap(vm, GP)
    expect(f.error).toBe(0x1234)
    expect(f.eip).toBe(vm.sym("start"))
    expect(f.cs).toBe(vm.vmcs.guest.regs.cs.selector)
  })

  it("an injected software interrupt returns to RIP + VM-entry instruction length (SDM 3C 27.6.1.1)", () => {
    const vm = identityVm(`
start:
  int 0x30
after:
  hlt`)
    vm.vmcs.entry.interruptionInfo = (INTR_INFO_VALID | (4 << 8) | 0x30) >>> 0
    vm.vmcs.entry.instructionLength = 2
    const f = expectGuestTrap(vm, 0x30)
    expect(f.eip).toBe(vm.sym("after"))
  })

  it("injecting into a guest in the HLT activity state wakes it (SDM 3C 27.6, 27.7.2)", () => {
    const vm = identityVm(`
start:
  hlt
after:
  jmp after`)
    expectGuestHalt(vm)
    expect(vm.rip).toBe(vm.sym("after"))
    vm.vmcs.entry.interruptionInfo = (INTR_INFO_VALID | (0 << 8) | 0x41) >>> 0
    const f = expectGuestTrap(vm, 0x41)
    expect(f.eip).toBe(vm.sym("after"))
  })

  it("in real mode (unrestricted guest) the event goes through the IVT: FLAGS, CS, IP pushed (SDM 3C 27.6, 26.6; 3A 20.1.4)", () => {
    const vm = identityVm(
      `
start:
  nop
  hlt
handler:
  mov word [0x600], 0xbeef
  hlt`,
      { real: true, ept: true, entry: 0x7c00, esp: 0x7000 }
    )
    vm.guest.write16(0x40 * 4, vm.sym("handler"))
    vm.guest.write16(0x40 * 4 + 2, 0)
    vm.vmcs.entry.interruptionInfo = (INTR_INFO_VALID | (0 << 8) | 0x40) >>> 0
    expect(vm.enter()).toBe(RunExit.Halt)
    expect(vm.guest.read16(0x600)).toBe(0xbeef)
    expect(vm.vmcs.guest.regs.esp & 0xffff).toBe(0x7000 - 6)
    expect(vm.guest.read16(0x7000 - 6)).toBe(vm.sym("start")) // IP
    expect(vm.guest.read16(0x7000 - 4)).toBe(0) // CS
    expect(vm.vmcs.guest.regs.eip).toBe(vm.sym("handler") + 7) // past its own HLT
  })
})

describe("VMX-preemption timer (SDM 3C 26.5.1)", () => {
  const spin = `
start:
  inc eax
  jmp start`
  const timerVm = (value: number, body = spin): Vm => {
    const vm = identityVm(body)
    vm.vmcs.controls.pin |= PinControls.PreemptionTimer
    vm.vmcs.controls.preemptionTimer = value
    return vm
  }

  for (const [label, costs] of [
    ["1 cycle per instruction", [1]],
    ["7 cycles per instruction", [7]],
    ["a mixed cost profile", [3, 1, 2, 5, 20, 40, 4, 30, 25, 60, 80, 10, 3, 1, 1, 1]]
  ] as const) {
    it(`timer value T exits with reason 52 at the first instruction boundary at or after T * 32 cycles, ${label} (SDM 3C 26.5.1)`, () => {
      const T = 10
      const vm = timerVm(T)
      vm.cpu.setCosts(costs.length === 1 ? new Array(16).fill(costs[0]) : costs, 0)
      const maxCost = Math.max(...vm.cpu.opCycles)
      const before = vm.cpu.cycles
      expectExit(vm, ExitReason.PreemptionTimer, 1_000_000)
      const used = vm.cpu.cycles - before
      expect(used).toBeGreaterThanOrEqual(T * 32)
      expect(used - maxCost, "no instruction may start after the timer expired").toBeLessThan(T * 32)
      expect([vm.sym("start"), vm.sym("start") + 1]).toContain(vm.rip)
    })
  }

  it("timer value 0 exits before any guest instruction (SDM 3C 27.7.4)", () => {
    const vm = timerVm(0)
    const before = vm.cpu.instructions
    expectExit(vm, ExitReason.PreemptionTimer)
    expect(vm.cpu.instructions).toBe(before)
    expect(vm.rip).toBe(vm.sym("start"))
    expect(vm.vmcs.guest.regs.eax).toBe(0)
  })

  it("with 'save VMX-preemption timer value' the remaining count is stored on an exit for another reason (SDM 3C 28.3.4)", () => {
    const body = `
start:
  mov ecx, 200
spin:
  loop spin
  cpuid
  hlt`
    const T = 100
    const vm = timerVm(T, body)
    vm.vmcs.controls.exit |= ExitControls.SavePreemptionTimer
    const before = vm.cpu.cycles
    expectExit(vm, ExitReason.Cpuid)
    const used = vm.cpu.cycles - before
    expect(vm.vmcs.controls.preemptionTimer).toBe(Math.ceil((T * 32 - used) / 32))
    expect(vm.vmcs.controls.preemptionTimer).toBeLessThan(T)

    const kept = timerVm(T, body)
    expectExit(kept, ExitReason.Cpuid)
    expect(kept.vmcs.controls.preemptionTimer, "not saved without the exit control").toBe(T)

    const expired = timerVm(3)
    expired.vmcs.controls.exit |= ExitControls.SavePreemptionTimer
    expectExit(expired, ExitReason.PreemptionTimer)
    expect(expired.vmcs.controls.preemptionTimer).toBe(0)
  })

  it("the timer counts down in the HLT activity state: a halted guest gets the timer exit (SDM 3C 26.5.1.1)", () => {
    const T = 50
    const vm = timerVm(T, oneInsn("hlt"))
    const before = vm.cpu.cycles
    expectExit(vm, ExitReason.PreemptionTimer)
    expect(vm.cpu.cycles - before).toBeGreaterThanOrEqual(T * 32)
    expect(vm.vmcs.guest.activityState).toBe(ActivityState.Hlt)
    expect(vm.rip).toBe(vm.sym("done"))
  })
})

describe("triple fault (SDM 3C 26.2)", () => {
  it("a triple fault in the guest is VM exit 2, not a shutdown: the same pCPU then runs another VMCS (SDM 3C 26.2)", () => {
    const vm = identityVm(`
start:
  lidt [null_idt]
  ud2
second:
  cpuid
  hlt
null_idt:
  dw 0
  dd 0`)
    const initial = structuredClone(vm.vmcs.guest.regs)
    expectExit(vm, ExitReason.TripleFault)
    expect(vm.cpu.isShutdown).toBe(false)

    const other = newVmcs()
    other.guest.regs = { ...initial, eip: vm.sym("second") }
    expect(vmenter(vm.cpu, other, 1000)).toBe(RunExit.VmExit)
    expect(other.exit.reason).toBe(ExitReason.Cpuid)
    expect(other.guest.regs.eip).toBe(vm.sym("second"))
  })
})

describe("VM-entry failure (SDM 3C 27.3.1, 27.8): exit reason 33 with bit 31, no guest instruction", () => {
  const failed = (vm: Vm): void => {
    const instructions = vm.cpu.instructions
    const rip = vm.rip
    expect(vm.enter()).toBe(RunExit.VmExit)
    expect(vm.vmcs.exit.reason).toBe((EXIT_REASON_ENTRY_FAILURE | ExitReason.EntryFailGuestState) >>> 0)
    expect(exitReasonName(vm.vmcs.exit.reason)).toContain("entry failure")
    expect(vm.cpu.instructions).toBe(instructions)
    expect(vm.rip).toBe(rip)
  }

  it("CR0.PE = 0 (or PG = 0) without 'unrestricted guest' (CR0 fixed bits, SDM 3C 27.3.1.1, A.7)", () => {
    const real = identityVm(oneInsn("nop"))
    real.vmcs.guest.regs.cr0 &= ~0x80000001
    failed(real)
    const noPaging = identityVm(oneInsn("nop"))
    noPaging.vmcs.guest.regs.cr0 &= ~0x80000000
    failed(noPaging)
  })

  it("'unrestricted guest' without 'enable EPT' (SDM 3C 27.2.1.1)", () => {
    const vm = identityVm(oneInsn("nop"), { paging: false })
    vm.proc2(Proc2Controls.UnrestrictedGuest)
    failed(vm)
  })

  it("secondary controls are not in effect unless activated: unrestricted guest + EPT without the activate bit does not allow PG = 0 (SDM 3C 25.6.2, 27.2.1.1)", () => {
    const vm = identityVm(oneInsn("nop"), { paging: false, ept: true })
    vm.vmcs.controls.proc &= ~ProcControls.ActivateSecondaryControls
    failed(vm)
  })

  it("an invalid EPTP: bad memory type, bad walk length, reserved bits (SDM 3C 27.2.1.1)", () => {
    for (const corrupt of [
      (eptp: number) => (eptp & ~7) | 1, // memory type WC is not allowed for the EPT paging structures
      (eptp: number) => (eptp & ~0x38) | (2 << 3), // walk length 3
      (eptp: number) => eptp | 0x100 // reserved bit 8
    ]) {
      const vm = identityVm(oneInsn("nop"), { ept: true })
      vm.vmcs.controls.eptPointer = corrupt(vm.vmcs.controls.eptPointer) >>> 0
      failed(vm)
    }
  })
})

describe("cost model", () => {
  it("each round trip charges vmEntryCost + vmExitCost cycles on top of the guest's own (SDM 3C 27, 28: VM entry and VM exit)", () => {
    const body = `
start:
  cpuid
  cpuid
  cpuid
  hlt`
    const run = (entry: number, exit: number): number => {
      const vm = identityVm(body)
      vm.cpu.vmEntryCost = entry
      vm.cpu.vmExitCost = exit
      const before = vm.cpu.cycles
      for (let i = 0; i < 3; i++) {
        expectExit(vm, ExitReason.Cpuid)
        vm.skip()
      }
      return vm.cpu.cycles - before
    }
    expect(run(1000, 300) - run(0, 0)).toBe(3 * 1300)
  })
})
