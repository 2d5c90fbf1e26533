/**
 * CPUID exits (reason 10, unconditional): the guest sees the emulator's
 * CPU: the same P6-class identity as the host, without the VMX bit (no
 * nested virtualization) and with its own APIC ID. Answered directly from
 * EAX/ECX and RIP moved past the instruction (KVM's kvm_emulate_cpuid);
 * single-stepping (TF) goes through the emulator.
 */
import { F_TF } from "../../hw/cpu/regs.ts"
import { emulateInstruction } from "./emulate-instruction.ts"
import { type ExitAction, type ExitContext, Resume } from "./types.ts"

export function handleCpuid(ctx: ExitContext): ExitAction {
  ctx.counters.exit_cpuid++
  const regs = ctx.vmcs.guest.regs
  if ((regs.eflags & F_TF) !== 0) return emulateInstruction(ctx)
  ctx.cpuid()
  ctx.skipInstruction()
  return Resume
}
