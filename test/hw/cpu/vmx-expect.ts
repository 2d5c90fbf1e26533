/**
 * Expectations shared by the VMX test files: how a VM entry ended (a VM exit
 * with a given reason, the guest halting on its own, or the guest taking an
 * exception through its own IDT into the harness's recording stubs), and
 * the one-instruction guest program most exit tests run.
 */
import { expect } from "@effect/vitest"
import { RunExit } from "../../../hw/cpu/state.ts"
import { exitReasonName } from "../../../hw/cpu/vmx/exit-reasons.ts"
import { ActivityState } from "../../../hw/cpu/vmx/vmcs.ts"
import { type Frame, frameOf } from "./harness.ts"
import type { Vm } from "./vmx-builder.ts"

/** Enter and expect a VM exit with `reason` (names in the message on mismatch). */
export function expectExit(vm: Vm, reason: number, budget = 10_000): void {
  const result = vm.enter(budget)
  expect(result, `expected a VM exit, vmenter returned ${result}`).toBe(RunExit.VmExit)
  expect(exitReasonName(vm.vmcs.exit.reason)).toBe(exitReasonName(reason))
}

/** Enter and expect the guest to reach a HLT of its own (no exit, no exception). */
export function expectGuestHalt(vm: Vm, budget = 10_000): void {
  const result = vm.enter(budget)
  expect(result, `unexpected ${exitReasonName(vm.vmcs.exit.reason)}`).toBe(RunExit.Halt)
  expect(vm.guest.trap(), `unexpected guest exception ${vm.guest.trap()?.vector}`).toBeUndefined()
  expect(vm.vmcs.guest.activityState).toBe(ActivityState.Hlt)
}

/** Enter and expect the guest to take `vector` through its own IDT (the recording stub HLTs). */
export function expectGuestTrap(vm: Vm, vector: number): Frame {
  const result = vm.enter()
  expect(result, `unexpected ${exitReasonName(vm.vmcs.exit.reason)}`).toBe(RunExit.Halt)
  const t = vm.guest.trap()
  expect(t, "no guest handler ran").toBeDefined()
  expect(t!.vector).toBe(vector)
  expect(t!.count).toBe(1)
  return frameOf(t!, vector === 8 || (vector >= 10 && vector <= 14) || vector === 17)
}

/** A one-instruction guest: `insn:` the instruction, then `done: hlt`. */
export const oneInsn = (asm: string): string => `
start:
insn:
  ${asm}
done:
  hlt
`
