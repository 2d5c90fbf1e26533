/**
 * Event delivery into a `bt` guest's *virtual* CPU (vmm/engines/bt/
 * engine.ts): an exception, interrupt or INT n goes through the guest's own
 * IDT, GDT and TSS exactly as the hardware would deliver it (Intel SDM Vol.
 * 3A 6.12 "Exception and interrupt handling", 6.15 #DF and shutdown), by
 * the interpreter's own delivery code (hw/cpu/interrupts.ts) run on the
 * VM's emulator CPU with the virtual registers loaded -- so privilege
 * changes, stack switches through the guest's TSS, error codes, CR2 and
 * nested faults are the interpreter's, not a second implementation.
 */
import type { Cpu } from "../../../hw/cpu/cpu.ts"
import { FAULT } from "../../../hw/cpu/fault.ts"
import { deliver, deliverException, dispatchFault, EventKind } from "../../../hw/cpu/interrupts.ts"
import type { CpuState } from "../../../hw/cpu/state.ts"

export interface GuestEvent {
  readonly vector: number
  /** Error code, or -1. */
  readonly error: number
  /** hw/cpu/interrupts.ts EventKind. */
  readonly kind: number
  /** The instruction a software interrupt's own fault (#GP from the gate DPL, ...) reports. */
  readonly startEip: number
}

/**
 * Deliver `event` into virtual state `v` on `c` (the VM's emulator CPU,
 * normally with `hostTraps` on; off for the delivery). A #PF takes its CR2
 * from `v.cr2`. Returns the cycles it took and whether the guest shut down
 * (triple fault).
 */
export function deliverToGuest(c: Cpu, v: CpuState, event: GuestEvent): { cycles: number; shutdown: boolean } {
  const before = c.cycles
  c.loadRegisters(v)
  c.flushTlb(false)
  c.hostTraps = false
  c.isShutdown = false
  c.faultAddress = v.cr2
  c.startEip = event.startEip
  try {
    if (event.kind === EventKind.Exception) {
      deliverException(c, event.vector, event.error)
    } else {
      try {
        deliver(c, event.vector, event.error, event.kind)
      } catch (e) {
        if (e !== FAULT) throw e
        c.resetPrefixes()
        c.eip = event.startEip
        dispatchFault(c)
      }
    }
  } finally {
    c.hostTraps = true
    c.flushTlb(false)
  }
  const shutdown = c.isShutdown
  c.isShutdown = false
  c.storeRegisters(v)
  v.halted = false
  return { cycles: c.cycles - before, shutdown }
}
