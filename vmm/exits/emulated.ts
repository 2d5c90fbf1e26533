/**
 * Exits handled by executing the guest's instruction in the emulator:
 * I/O (reason 30), RDMSR/WRMSR (31/32), CPUID (10). The emulator runs the
 * instruction with the guest's registers against the VM's own devices and
 * memory; an exception it raises is injected into the guest.
 */
import { ExitReason } from "../../hw/cpu/vmx/exit-reasons.ts"
import { type ExitAction, type ExitContext, Halt, Resume } from "./types.ts"

export function handleEmulated(ctx: ExitContext): ExitAction {
  const reason = ctx.vmcs.exit.reason & 0xffff
  const c = ctx.counters
  if (reason === ExitReason.IoInstruction) {
    if ((ctx.vmcs.exit.qualification & 8) !== 0) c.exit_io_in++
    else c.exit_io_out++
  } else if (reason === ExitReason.Rdmsr) c.exit_msr_read++
  else if (reason === ExitReason.Wrmsr) c.exit_msr_write++
  else if (reason === ExitReason.Cpuid) c.exit_cpuid++
  const result = ctx.emulate()
  if (result._tag === "Trap") ctx.injectException(result.vector, result.error)
  return result._tag === "Halted" ? Halt : Resume
}
