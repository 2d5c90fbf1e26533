/**
 * Exception exits (reason 0; SDM 3C 25.6.3 exception bitmap, 26.2, 28.2.2
 * interruption information). With EPT the bitmap is empty; an exception in it
 * is reflected into the guest unchanged.
 *
 * Without EPT (`ctx.shadow`) every #PF exits (bit 14, mask = match = 0) with
 * the faulting linear address as the qualification (28.2.1) and is one of
 * the shadow MMU's outcomes (vmm/shadow/shadow-mmu.ts; Adams & Agesen 2006):
 *   hidden     the shadow was filled from the guest's tables: resume, the
 *              access (or the event delivery it was part of) is retried
 *   true       the guest's own tables fault: the #PF is injected with the
 *              guest's CR2 = the address and the guest's error code (VM
 *              entry does not write CR2, SDM 3C 27.6: the VMM does)
 *   traced     a permitted write to a write-protected guest page table:
 *              the instruction is emulated (the emulator writes the guest's
 *              table through its own paging; GuestPhysical.onWrite then zaps
 *              the shadow entries derived from every 4-byte entry written)
 *   mmio       the guest maps a guest-physical address outside its RAM:
 *              the instruction is emulated against the VM's devices
 *   no-memory  no machine frame for a shadow table: the VM ends
 * (and, defensively: a hidden fault that comes back a fourth time in a row
 * at the same instruction and address is emulated instead of retried; a
 * fault in bt's monitor region cannot happen here and ends the VM).
 * A #PF exit during event delivery (IDT-vectoring information, re-injected by
 * the engine) is resolved as the CPU resolves a fault during delivery (SDM 3A
 * 6.15 table 6-5, hw/cpu/interrupts.ts): a true fault during the delivery of
 * a contributory exception or a #PF becomes #DF, during a #DF a triple fault;
 * an interrupted interrupt or INT n is dropped for the fault (INT n is
 * re-executed when the guest's handler returns), as the pCPU does natively.
 * An access that must be emulated cannot be when it was the delivery's own
 * (a stack push or descriptor read through MMIO or into a page table): the
 * VM ends with that reason rather than emulating the wrong instruction.
 */
import { makesDoubleFault } from "../../hw/cpu/interrupts.ts"
import { DF, PF } from "../../hw/cpu/regs.ts"
import { INTR_INFO_VALID, InterruptionType } from "../../hw/cpu/vmx/exit-reasons.ts"
import { emulateInstruction } from "./emulate-instruction.ts"
import { End, type ExitAction, type ExitContext, Resume } from "./types.ts"

export function handleException(ctx: ExitContext): ExitAction {
  ctx.counters.exit_exception++
  const exit = ctx.vmcs.exit
  const info = exit.interruptionInfo
  const vector = info & 0xff
  const error = (info & 0x800) !== 0 ? exit.interruptionErrorCode : -1
  if (vector === PF && ctx.shadow !== undefined) return shadowPageFault(ctx, exit.qualification >>> 0, error)
  return reflect(ctx, vector, error)
}

function shadowPageFault(ctx: ExitContext, linear: number, error: number): ExitAction {
  const outcome = ctx.shadow!.pageFault(linear, Math.max(0, error))
  const delivering = (ctx.vmcs.entry.interruptionInfo & INTR_INFO_VALID) !== 0
  switch (outcome.kind) {
    case "hidden":
      return Resume
    case "true":
      return reflect(ctx, PF, outcome.errorCode, outcome.cr2)
    case "traced":
    case "mmio":
    case "retry-exhausted": {
      if (outcome.kind === "mmio") {
        if ((error & 2) !== 0) ctx.counters.exit_mmio_write++
        else ctx.counters.exit_mmio_read++
      }
      if (delivering) {
        const what =
          outcome.kind === "mmio"
            ? `reaches MMIO at guest-physical 0x${outcome.gpa.toString(16)}`
            : outcome.kind === "traced"
              ? "writes a guest page table"
              : "keeps faulting"
        return End({
          _tag: "Failed",
          message: `shadow paging: delivering an event to the guest ${what} (linear 0x${linear.toString(16)}): not emulated`
        })
      }
      return emulateInstruction(ctx)
    }
    case "monitor":
      return End({
        _tag: "Failed",
        message: `shadow paging: a fault in the monitor's region at 0x${linear.toString(16)}`
      })
    case "no-memory":
      return End({ _tag: "Failed", message: `no machine memory for shadow page tables: ${outcome.error.message}` })
  }
}

/**
 * Inject exception `vector` into the guest (for a #PF, with CR2 = `cr2`). If the exit interrupted the
 * delivery of another event (the engine has put it back in the VM-entry interruption field), the two are
 * resolved as the CPU would have (KVM's kvm_multiple_exception).
 */
function reflect(ctx: ExitContext, vector: number, error: number, cr2?: number): ExitAction {
  const entry = ctx.vmcs.entry
  const pending = entry.interruptionInfo >>> 0
  if ((pending & INTR_INFO_VALID) !== 0) {
    entry.interruptionInfo = 0
    const first = pending & 0xff
    if (((pending >>> 8) & 7) === InterruptionType.HardwareException) {
      if (first === DF) return End({ _tag: "TripleFault" })
      if (makesDoubleFault(first, vector)) {
        ctx.injectException(DF, 0)
        return Resume
      }
    }
  }
  if (cr2 !== undefined) ctx.vmcs.guest.regs.cr2 = cr2 >>> 0
  ctx.injectException(vector, error)
  return Resume
}
