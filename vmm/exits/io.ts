/**
 * I/O instruction exits (reason 30; SDM 3C table 28-5 qualification): IN/OUT/INS/OUTS on the VM's port bus.
 * IN and OUT go straight to the port bus from the qualification (port, size, direction) and AL/AX/EAX, and
 * RIP moves past the instruction, as KVM's fast PIO: the CPU has already made every check that comes
 * before the exit (I/O permission, SDM 3C 26.1.1), so the emulator would do exactly this. String I/O
 * (memory operands, REP counts) and single-stepping (TF) go through the emulator.
 */
import type { AccessSize } from "../../hw/cpu/bus.ts"
import { F_TF } from "../../hw/cpu/regs.ts"
import { emulateInstruction } from "./emulate-instruction.ts"
import { type ExitAction, type ExitContext, Resume } from "./types.ts"

const IO_IN = 8
const IO_STRING = 16

export function handleIo(ctx: ExitContext): ExitAction {
  const vmcs = ctx.vmcs
  const q = vmcs.exit.qualification
  const isIn = (q & IO_IN) !== 0
  if (isIn) ctx.counters.exit_io_in++
  else ctx.counters.exit_io_out++
  const regs = vmcs.guest.regs
  if ((q & IO_STRING) !== 0 || (regs.eflags & F_TF) !== 0) return emulateInstruction(ctx)
  const size = ((q & 7) + 1) as AccessSize
  const port = q >>> 16
  const eax = regs.eax
  // RIP moves past the instruction before the access: the device may reset the VM (new registers) meanwhile
  ctx.skipInstruction()
  if (isIn) {
    const v = ctx.ports.in(port, size)
    regs.eax =
      size === 4 ? v >>> 0 : size === 2 ? ((eax & ~0xffff) | (v & 0xffff)) >>> 0 : ((eax & ~0xff) | (v & 0xff)) >>> 0
  } else {
    ctx.ports.out(port, size, size === 4 ? eax >>> 0 : size === 2 ? eax & 0xffff : eax & 0xff)
  }
  return Resume
}
