/**
 * The `hw` execution engine: hardware-assisted trap-and-emulate (KVM-like).
 * One slice is one VM entry (SDM 3C ch. 27) with the VMX-preemption timer
 * bounding it (SDM 3C 26.5.1) and TSC offsetting making the guest's TSC
 * follow the VM's clock (SDM 3C 26.3); the VM exit is dispatched to its
 * handler (exits/dispatch.ts). An exit during event delivery gives the
 * event back to the next entry (SDM 3C 28.2.4, 27.6; KVM's
 * vmx_complete_interrupts).
 */
import type { Cpu } from "../../hw/cpu/cpu.ts"
import { RunExit } from "../../hw/cpu/state.ts"
import { INTR_INFO_VALID } from "../../hw/cpu/vmx/exit-reasons.ts"
import { PREEMPTION_TIMER_RATE, type Vmcs } from "../../hw/cpu/vmx/vmcs.ts"
import { vmenter } from "../../hw/cpu/vmx/vmx.ts"
import { dispatchExit } from "../exits/dispatch.ts"
import type { ExitAction, ExitContext } from "../exits/types.ts"
import type { ExecutionEngine } from "./engine.ts"

export interface HwEngineHost {
  /** Guest instructions retired on the pCPU. */
  readonly retired: (count: number) => void
  /** Every VM exit, before it is handled (tracing). */
  readonly observeExit: (vmcs: Vmcs) => void
  /** After every handled exit (IPIs between vCPUs, A20). */
  readonly afterExit: () => void
}

export class HwEngine implements ExecutionEngine {
  private readonly vmcs: Vmcs
  private readonly context: ExitContext
  private readonly host: HwEngineHost

  constructor(context: ExitContext, host: HwEngineHost) {
    this.vmcs = context.vmcs
    this.context = context
    this.host = host
  }

  run(cpu: Cpu, cycles: number, guestTsc: number): ExitAction | undefined {
    const vmcs = this.vmcs
    vmcs.controls.preemptionTimer = Math.max(1, Math.floor(cycles / 2 ** PREEMPTION_TIMER_RATE))
    vmcs.controls.tscOffset = guestTsc - cpu.cycles
    vmcs.guest.regs.tsc = guestTsc
    const before = cpu.instructions
    const exit = vmenter(cpu, vmcs, cycles)
    this.host.retired(cpu.instructions - before)
    if (exit !== RunExit.VmExit) return undefined
    this.host.observeExit(vmcs)
    this.reinjectInterruptedEvent()
    const action = dispatchExit(this.context)
    this.host.afterExit()
    return action
  }

  private reinjectInterruptedEvent(): void {
    const exit = this.vmcs.exit
    if ((exit.idtVectoringInfo & INTR_INFO_VALID) === 0) return
    const entry = this.vmcs.entry
    entry.interruptionInfo = exit.idtVectoringInfo >>> 0
    entry.exceptionErrorCode = exit.idtVectoringErrorCode
    entry.instructionLength = exit.instructionLength
    exit.idtVectoringInfo = 0
  }
}
