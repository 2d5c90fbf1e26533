/** RDMSR / WRMSR exits (reasons 31 / 32): the guest's MSRs live in its VMCS state; the emulator applies the access. */
import { ExitReason } from "../../hw/cpu/vmx/exit-reasons.ts"
import { emulateInstruction } from "./emulate-instruction.ts"
import type { ExitAction, ExitContext } from "./types.ts"

export function handleMsr(ctx: ExitContext): ExitAction {
  if ((ctx.vmcs.exit.reason & 0xffff) === ExitReason.Wrmsr) ctx.counters.exit_msr_write++
  else ctx.counters.exit_msr_read++
  return emulateInstruction(ctx)
}
