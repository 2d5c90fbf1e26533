/**
 * CPUID exits (reason 10, unconditional): the guest sees the emulator's
 * CPU: the same P6-class identity as the host, without the VMX bit (no
 * nested virtualization) and with its own APIC ID.
 */
import { emulateInstruction } from "./emulate-instruction.ts"
import type { ExitAction, ExitContext } from "./types.ts"

export function handleCpuid(ctx: ExitContext): ExitAction {
  ctx.counters.exit_cpuid++
  return emulateInstruction(ctx)
}
