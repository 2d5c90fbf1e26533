/**
 * The exit dispatcher, tested with fabricated exits (Firecracker's style):
 * no guest runs; a VMCS is filled in as the hardware would after an exit and
 * the dispatcher must pick the right handler, count it, and say what the
 * vCPU does next.
 */
import { describe, expect, it } from "@effect/vitest"
import { EXIT_REASON_ENTRY_FAILURE, ExitReason, ioQualification } from "../../hw/cpu/vmx/exit-reasons.ts"
import { newVmcs } from "../../hw/cpu/vmx/vmcs.ts"
import type { EmulationResult } from "../../vmm/emulator.ts"
import { dispatchExit } from "../../vmm/exits/dispatch.ts"
import { type ExitContext, newExitCounters } from "../../vmm/exits/types.ts"
import type { GuestPhysical } from "../../vmm/guest-memory.ts"

const fabricate = (
  reason: number,
  fill: (ctx: ExitContext) => void = () => {},
  emulation: EmulationResult = { _tag: "Done" }
) => {
  const backed: Array<number> = []
  const injected: Array<[number, number]> = []
  const portAccesses: Array<string> = []
  let emulated = 0
  let cpuids = 0
  let skipped = 0
  const guest = {
    contains: (gpa: number) => gpa < 16 << 20,
    back: (gfn: number) => {
      backed.push(gfn)
      return true
    }
  } as unknown as GuestPhysical
  const ctx: ExitContext = {
    vmcs: newVmcs(),
    vcpu: 0,
    guest,
    counters: newExitCounters(),
    emulate: () => {
      emulated++
      return emulation
    },
    skipInstruction: () => {
      const regs = ctx.vmcs.guest.regs
      regs.eip = (regs.eip + ctx.vmcs.exit.instructionLength) >>> 0
      skipped++
    },
    injectException: (vector, error) => injected.push([vector, error]),
    ports: {
      in: (port, size) => {
        portAccesses.push(`in ${port.toString(16)}/${size}`)
        return 0xa5a5a5a5
      },
      out: (port, size, value) => {
        portAccesses.push(`out ${port.toString(16)}/${size}=${value.toString(16)}`)
      }
    },
    cpuid: () => {
      cpuids++
    }
  }
  ctx.vmcs.exit.reason = reason
  fill(ctx)
  const action = dispatchExit(ctx)
  return {
    action,
    ctx,
    backed,
    injected,
    portAccesses,
    emulated: () => emulated,
    cpuids: () => cpuids,
    skipped: () => skipped
  }
}

describe("exit dispatcher (fabricated exits)", () => {
  it("I/O: OUT and IN go straight to the port bus (RIP past the instruction), string I/O is emulated; counted apart", () => {
    const out = fabricate(ExitReason.IoInstruction, (c) => {
      c.vmcs.exit.qualification = ioQualification(2, false, false, false, false, 0x3f8)
      c.vmcs.exit.instructionLength = 2
      c.vmcs.guest.regs.eax = 0x12345678
      c.vmcs.guest.regs.eip = 0x7c00
    })
    expect(out.action._tag).toBe("Resume")
    expect(out.emulated()).toBe(0)
    expect(out.portAccesses).toEqual(["out 3f8/2=5678"])
    expect(out.ctx.vmcs.guest.regs.eip).toBe(0x7c02)
    // carried out by the handler: retired in the guest (the pCPU did not count it: it exited)
    expect(out.skipped()).toBe(1)
    expect(out.ctx.counters.exit_io_out).toBe(1)
    const inp = fabricate(ExitReason.IoInstruction, (c) => {
      c.vmcs.exit.qualification = ioQualification(1, true, false, false, true, 0x60)
      c.vmcs.exit.instructionLength = 2
      c.vmcs.guest.regs.eax = 0x12345678
    })
    expect(inp.portAccesses).toEqual(["in 60/1"])
    expect(inp.ctx.vmcs.guest.regs.eax).toBe(0x123456a5)
    expect(inp.ctx.counters.exit_io_in).toBe(1)
    const ins = fabricate(
      ExitReason.IoInstruction,
      (c) => (c.vmcs.exit.qualification = ioQualification(4, true, true, true, false, 0x1f0))
    )
    expect(ins.emulated()).toBe(1)
    expect(ins.skipped()).toBe(0)
    expect(ins.portAccesses).toEqual([])
    expect(ins.ctx.counters.exit_io_in).toBe(1)
    // single-stepping (EFLAGS.TF) goes through the emulator too
    const stepped = fabricate(ExitReason.IoInstruction, (c) => (c.vmcs.guest.regs.eflags = 0x102))
    expect(stepped.emulated()).toBe(1)
  })

  it("EPT violation inside guest RAM backs the page lazily; outside RAM it is an emulated MMIO access", () => {
    const ram = fabricate(ExitReason.EptViolation, (c) => (c.vmcs.exit.guestPhysicalAddress = 0x123456))
    expect(ram.action._tag).toBe("Resume")
    expect(ram.backed).toEqual([0x123])
    expect(ram.emulated()).toBe(0)
    expect(ram.ctx.counters.exit_ept_backing).toBe(1)
    const mmioWrite = fabricate(ExitReason.EptViolation, (c) => {
      c.vmcs.exit.guestPhysicalAddress = 0xfee000b0
      c.vmcs.exit.qualification = 2 // a write
    })
    expect(mmioWrite.emulated()).toBe(1)
    expect(mmioWrite.ctx.counters.exit_mmio_write).toBe(1)
    const mmioRead = fabricate(ExitReason.EptViolation, (c) => (c.vmcs.exit.guestPhysicalAddress = 0xfec00010))
    expect(mmioRead.ctx.counters.exit_mmio_read).toBe(1)
  })

  it("an exception raised by the emulated instruction is injected into the guest", () => {
    const outs = ioQualification(1, false, true, false, false, 0x3f8)
    const r = fabricate(ExitReason.IoInstruction, (c) => (c.vmcs.exit.qualification = outs), {
      _tag: "Trap",
      vector: 13,
      error: 0,
      software: false
    })
    expect(r.injected).toEqual([[13, 0]])
    expect(r.action._tag).toBe("Resume")
  })

  it("HLT moves RIP past the instruction and halts the vCPU", () => {
    const r = fabricate(ExitReason.Hlt, (c) => {
      c.vmcs.guest.regs.eip = 0x7c10
      c.vmcs.exit.instructionLength = 1
    })
    expect(r.action._tag).toBe("Halt")
    expect(r.ctx.vmcs.guest.regs.eip).toBe(0x7c11)
    expect(r.skipped()).toBe(1)
  })

  it("CPUID is answered directly, MSR accesses are emulated; an external interrupt yields; the preemption timer and the window resume", () => {
    const cpuid = fabricate(ExitReason.Cpuid, (c) => {
      c.vmcs.guest.regs.eip = 0x1000
      c.vmcs.exit.instructionLength = 2
    })
    expect(cpuid.ctx.counters.exit_cpuid).toBe(1)
    expect([cpuid.cpuids(), cpuid.emulated(), cpuid.skipped(), cpuid.ctx.vmcs.guest.regs.eip]).toEqual([
      1, 0, 1, 0x1002
    ])
    expect(fabricate(ExitReason.Rdmsr).ctx.counters.exit_msr_read).toBe(1)
    expect(fabricate(ExitReason.Wrmsr).ctx.counters.exit_msr_write).toBe(1)
    expect(fabricate(ExitReason.PreemptionTimer).action._tag).toBe("Resume")
    expect(fabricate(ExitReason.ExternalInterrupt).action._tag).toBe("Yield")
    expect(fabricate(ExitReason.InterruptWindow).action._tag).toBe("Resume")
  })

  it("VMCALL gets #UD; a triple fault ends the VM; an entry failure or unknown reason ends it with the reason named", () => {
    expect(fabricate(ExitReason.Vmcall).injected).toEqual([[6, -1]])
    expect(fabricate(ExitReason.TripleFault).action).toEqual({ _tag: "End", end: { _tag: "TripleFault" } })
    const failed = fabricate((ExitReason.EntryFailGuestState | EXIT_REASON_ENTRY_FAILURE) >>> 0).action
    expect(failed._tag).toBe("End")
    const unknown = fabricate(ExitReason.Monitor).action
    expect(unknown).toEqual({ _tag: "End", end: { _tag: "Failed", message: "unexpected VM exit: Monitor" } })
  })
})
