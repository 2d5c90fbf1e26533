/**
 * The execution-engine seam of a vCPU (DESIGN.md "execution modes"): the
 * vCPU loop (vmm/vcpu.ts) owns what every mode shares -- the VM's clock and
 * devices, choosing the event to inject, halting, the scheduler's quantum --
 * and an engine owns how guest instructions actually run on a pCPU:
 *
 *   hw  (engines/hw.ts)  VMX non-root operation: vmenter, VM exits, handlers
 *   bt  (engines/bt/)    ring deprivileging + binary translation + shadow
 *                        page tables, on a pCPU without the extension
 *   emu (engines/emu.ts) pure emulation: every instruction on a software
 *                        CPU of the VM, its cycles charged to the pCPU
 *   pv  (engines/pv/)    paravirtualization: a guest kernel built for it
 *                        runs at ring 1 and makes hypercalls
 *
 * Every engine keeps the guest's architectural state in the vCPU's VMCS
 * guest-state area (registers, activity state, interruptibility), takes the
 * event to inject from its VM-entry interruption field, and honours its
 * "interrupt-window exiting" control: the VMCS is the vCPU's state record,
 * whichever way the guest runs.
 */
import type { Cpu } from "../../hw/cpu/cpu.ts"
import type { ExitAction } from "../exits/types.ts"

export interface ExecutionEngine {
  /**
   * Run the guest on `cpu` for at most `cycles` simulated cycles, its TSC
   * reading `guestTsc` at the start. Returns what the vCPU loop does next,
   * or undefined when the slice simply ended (the loop goes round: devices,
   * injection, budget).
   */
  run(cpu: Cpu, cycles: number, guestTsc: number): ExitAction | undefined
  /** Counters this engine keeps (translation cache, callouts...), for the boot summary; summed over vCPUs. */
  stats?(): Readonly<Record<string, number>>
  /**
   * An engine with virtual events of its own (`pv`: event channels and the one-shot timer, not the
   * platform's interrupt controllers): fire what is due at VM time `now` (ns); returns its next deadline
   * (Infinity: none), which bounds the slice and wakes a halted vCPU like a device's.
   */
  tick?(now: number): number
  /** Such an engine has an event to deliver now: a halted (blocked) vCPU runs again. */
  eventPending?(): boolean
  /** The VM was reset (its image reloaded): forget what the guest set up with this engine. */
  reset?(): void
}
