/**
 * One guest (a Multiboot kernel, or in `pv` mode a Xen PV kernel) in one VM on a fresh one-pCPU host with a cost
 * profile, run in virtual time until it ends (or a limit): what the `minios`
 * and `modes` benchmarks measure. The guest's COM1 bytes, how it ended, its
 * simulated time and what the VM counted come back; the caller judges them.
 */
import { Effect } from "effect"
import { type CostProfileName, decodeMachineConfig, defaultMachineConfig } from "../../hw/machine/config.ts"
import { Machine } from "../../hw/machine/machine.ts"
import { Kernel } from "../../kernel/boot.ts"
import { Worlds } from "../../kernel/sched/runtime.ts"
import { defaultVmConfig, type VmConfig } from "../../vmm/config.ts"
import type { VmEnd } from "../../vmm/exits/types.ts"
import { planMultibootLoad } from "../../vmm/loader/multiboot.ts"
import { planXenPvLoad } from "../../vmm/loader/xen-pv.ts"
import { addStandardDevices } from "../../vmm/platform/standard.ts"
import { createVm } from "../../vmm/vm.ts"

export interface BenchVmOptions {
  /** VM (and host) name, for messages. */
  readonly name: string
  readonly profile: CostProfileName
  readonly memoryMiB: number
  /** Execution mode settings of the VM (mode, ept). */
  readonly vm: Pick<VmConfig, "mode"> & Partial<Pick<VmConfig, "ept">>
  /** Virtual time the guest may take. */
  readonly maxNs: number
}

export interface BenchVmRun {
  readonly serial: string
  readonly ended: VmEnd | undefined
  readonly simulatedNs: number
  readonly instructions: number
  /** VM exits by reason, the non-zero ones. */
  readonly exits: Record<string, number>
  readonly wallMs: number
}

export const runBenchVm = (image: Uint8Array, options: BenchVmOptions): Effect.Effect<BenchVmRun> =>
  Effect.gen(function* () {
    const load = { ramBytes: options.memoryMiB * 1024 * 1024, cmdline: "" }
    const plan = options.vm.mode === "pv" ? planXenPvLoad(image, load) : planMultibootLoad(image, load)
    if (plan._tag === "Failure") return yield* Effect.die(new Error(`bench ${options.name}: ${plan.failure.message}`))
    const config = yield* decodeMachineConfig(
      `bench ${options.name} host`,
      JSON.stringify({
        ...defaultMachineConfig,
        pcpus: 1,
        ramMiB: 64,
        costProfile: options.profile,
        uart: { backend: "none" }
      })
    ).pipe(Effect.orDie)
    const machine = new Machine(config)
    return yield* Effect.gen(function* () {
      let serial = ""
      const vm = yield* createVm(
        {
          ...defaultVmConfig(options.name, `${options.name}.elf`),
          memoryMiB: options.memoryMiB,
          ...options.vm
        },
        {
          writes: plan.success.writes,
          registers: plan.success.registers,
          ...("pv" in plan.success ? { pv: plan.success.pv } : {})
        },
        { console: (byte) => (serial += String.fromCharCode(byte)) }
      ).pipe(Effect.orDie)
      addStandardDevices(vm)
      const worlds = yield* Worlds
      const start = performance.now()
      for (let t = 0; t < options.maxNs && vm.ended === undefined; t += 10_000_000) yield* worlds.runFor(10_000_000)
      return {
        serial,
        ended: vm.ended,
        simulatedNs: vm.now,
        instructions: vm.instructions,
        exits: Object.fromEntries(Object.entries(vm.counters).filter(([, n]) => n > 0)),
        wallMs: performance.now() - start
      }
    }).pipe(Effect.provide(Kernel.boot(machine)), Effect.scoped)
  }).pipe(Effect.orDie)
