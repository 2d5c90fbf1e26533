/**
 * Control-register access exits (reason 28; SDM 3C 26.1.3, qualification
 * table 28-3: CR number bits 3:0, access type bits 5:4, GPR bits 11:8).
 *
 * With EPT none is requested; if one comes, the instruction is carried out as
 * written. Without EPT (`ctx.shadow`: vmm/shadow/vmx-shadow-paging.ts, where
 * the VMCS holds the guest's own CR0/CR3/CR4 between entries):
 *   MOV from CR3 (CR3-store exiting)  the GPR gets the guest's CR3
 *   MOV to CR3 (CR3-load exiting)     the guest's CR3 is loaded (bits 0-2 and
 *                                     5-11 ignored, as the CPU does), the
 *                                     shadow switches to its root
 *   MOV to CR0 / CR4 (a host-owned bit, CR0 PE/PG/WP or CR4 PSE/PGE, changes
 *   from the read shadow), LMSW, CLTS
 *                                     the emulator carries the instruction out
 *                                     on the guest's own registers: its checks
 *                                     (#GP for PG without PE, NW without CD,
 *                                     reserved CR4 bits) come after the exit
 *                                     (SDM 3C 26.1.1), so the VMM makes them;
 *                                     then the shadow follows (identity root
 *                                     when paging goes off, a flush when WP
 *                                     or PSE change)
 * Single-stepping (EFLAGS.TF) goes through the emulator for every form.
 */
import { F_TF } from "../../hw/cpu/regs.ts"
import type { CpuState } from "../../hw/cpu/state.ts"
import { CrAccessType } from "../../hw/cpu/vmx/exit-reasons.ts"
import { emulateInstruction } from "./emulate-instruction.ts"
import { End, type ExitAction, type ExitContext, Resume } from "./types.ts"

/** General registers by their number in the qualification (SDM table 28-3 bits 11:8). */
const GPRS = ["eax", "ecx", "edx", "ebx", "esp", "ebp", "esi", "edi"] as const

const readGpr = (regs: CpuState, n: number): number => regs[GPRS[n & 7]!] >>> 0
const writeGpr = (regs: CpuState, n: number, value: number): void => {
  regs[GPRS[n & 7]!] = value >>> 0
}

export function handleCrAccess(ctx: ExitContext): ExitAction {
  ctx.counters.exit_cr_access++
  const shadow = ctx.shadow
  if (shadow === undefined) return emulateInstruction(ctx)
  const q = ctx.vmcs.exit.qualification
  const cr = q & 0xf
  const type = (q >>> 4) & 3
  const gpr = (q >>> 8) & 0xf
  const regs = ctx.vmcs.guest.regs
  if (cr === 3 && type <= CrAccessType.MovFromCr && (regs.eflags & F_TF) === 0) {
    if (type === CrAccessType.MovFromCr) writeGpr(regs, gpr, regs.cr3)
    else regs.cr3 = (readGpr(regs, gpr) & ~0xfe7) >>> 0
    ctx.skipInstruction()
    return type === CrAccessType.MovToCr ? follow(ctx) : Resume
  }
  const action = emulateInstruction(ctx)
  return action._tag === "Resume" ? follow(ctx) : action
}

/** The guest's paging registers changed: the shadow follows now (or the VM ends: no frame for a root). */
function follow(ctx: ExitContext): ExitAction {
  const failed = ctx.shadow!.follow()
  return failed === undefined
    ? Resume
    : End({ _tag: "Failed", message: `no machine memory for shadow page tables: ${failed.message}` })
}
