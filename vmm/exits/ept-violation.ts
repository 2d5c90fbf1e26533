/**
 * EPT violations (reason 48): a guest-physical address with no mapping.
 * Inside guest RAM it is the first touch of a page: back it with a zeroed
 * frame from the VM's pool and map it (lazy backing, kernel/memory). Outside
 * RAM it is MMIO: emulate the instruction against the VM's devices (SDM 3C
 * table 28-7 bit 1 tells reads from writes). A guest-physical address that
 * is neither (nothing decodes it) behaves like unclaimed memory: reads
 * all-ones, writes vanish, through the same emulation.
 */
import { EptQual } from "../../hw/cpu/vmx/exit-reasons.ts"
import { emulateInstruction } from "./emulate-instruction.ts"
import { type ExitAction, type ExitContext, Resume } from "./types.ts"

export function handleEptViolation(ctx: ExitContext): ExitAction {
  const gpa = ctx.vmcs.exit.guestPhysicalAddress >>> 0
  if (ctx.guest.contains(gpa)) {
    ctx.counters.exit_ept_backing++
    ctx.guest.back(gpa >>> 12)
    return Resume
  }
  if ((ctx.vmcs.exit.qualification & EptQual.Write) !== 0) ctx.counters.exit_mmio_write++
  else ctx.counters.exit_mmio_read++
  return emulateInstruction(ctx)
}
