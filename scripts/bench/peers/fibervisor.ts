/**
 * fibervisor as a `bench cpu` engine: the bench image booted in-process as a
 * hw-mode VM, as `fibervisor boot` does (Machine, Kernel.boot, createVm,
 * addStandardDevices, Worlds.runFor in virtual-time slices until the guest
 * writes the debug-exit port). The guest's COM1 bytes reach the console
 * callback synchronously, during the OUT's VM exit, so the wall time between
 * the "[" and "]" markers is the loop's own time; the VM's retired
 * instruction count is exact.
 */
import { Effect } from "effect"
import { decodeMachineConfig, defaultMachineConfig } from "../../../hw/machine/config.ts"
import { Machine } from "../../../hw/machine/machine.ts"
import { Kernel } from "../../../kernel/boot.ts"
import { Worlds } from "../../../kernel/sched/runtime.ts"
import { defaultVmConfig } from "../../../vmm/config.ts"
import { planMultibootLoad } from "../../../vmm/loader/multiboot.ts"
import { addStandardDevices } from "../../../vmm/platform/standard.ts"
import { createVm } from "../../../vmm/vm.ts"
import { END_MARKER, START_MARKER } from "./image.ts"

/** One run of the bench image on an engine. */
export interface MarkedRun {
  /** Wall seconds from the start marker to the end marker, as the engine delivered them. */
  readonly loopSeconds: number
  /** Wall seconds of the whole run (boot included). */
  readonly wallSeconds: number
  /** Instructions the engine says it retired over the whole run, when it counts them. */
  readonly instructions: number | undefined
  /** Everything the guest wrote to COM1. */
  readonly serial: string
}

const VM_MIB = 16
/** Virtual time per runFor call; the loop ends far sooner in wall time terms than any sane cap. */
const SLICE_NS = 10_000_000
const MAX_VIRTUAL_NS = 600_000_000_000

/** Boot `elf` (the patched bench image) in a fresh host and VM; resolves when the guest has exited. */
export const runFibervisorImage = (elf: Uint8Array): Promise<MarkedRun> => {
  const plan = planMultibootLoad(elf, { ramBytes: VM_MIB << 20 })
  if (plan._tag === "Failure") return Promise.reject(new Error(`bench image: ${plan.failure.message}`))
  const payload = { writes: plan.success.writes, registers: plan.success.registers }
  const program = Effect.gen(function* () {
    const config = yield* decodeMachineConfig(
      "bench host",
      JSON.stringify({ ...defaultMachineConfig, pcpus: 1, ramMiB: 64, uart: { backend: "none" } })
    )
    const machine = new Machine(config, {})
    const wallStart = performance.now()
    let serial = ""
    let start: number | undefined
    let end: number | undefined
    const console = (byte: number) => {
      if (byte === START_MARKER && start === undefined) start = performance.now()
      else if (byte === END_MARKER && end === undefined) end = performance.now()
      serial += String.fromCharCode(byte)
    }
    return yield* Effect.gen(function* () {
      const vm = yield* createVm({ ...defaultVmConfig("bench", "bench.elf"), memoryMiB: VM_MIB }, payload, { console })
      addStandardDevices(vm)
      const worlds = yield* Worlds
      for (let t = 0; vm.ended === undefined && t < MAX_VIRTUAL_NS; t += SLICE_NS) yield* worlds.runFor(SLICE_NS)
      const wallSeconds = (performance.now() - wallStart) / 1000
      if (vm.ended?._tag !== "DebugExit" || vm.ended.code !== 0)
        return yield* Effect.fail(new Error(`bench VM ended ${JSON.stringify(vm.ended)}; COM1: ${serial}`))
      if (start === undefined || end === undefined)
        return yield* Effect.fail(new Error(`bench VM printed no loop markers; COM1: ${serial}`))
      return { loopSeconds: (end - start) / 1000, wallSeconds, instructions: vm.instructions, serial }
    }).pipe(Effect.provide(Kernel.boot(machine)))
  })
  return Effect.runPromise(Effect.scoped(program))
}
