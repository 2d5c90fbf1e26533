/**
 * The host `bench boot` and `bench density` power on: the same machine
 * `fibervisor boot` builds (scripts/boot/run.ts: no host console, no disk),
 * sized by the caller, with the vmkernel booted on it in the current scope.
 */
import { setFlagsFromString } from "node:v8"
import { runInNewContext } from "node:vm"
import { type Context, Effect, Layer, type Scope } from "effect"
import { decodeMachineConfig, defaultMachineConfig } from "../../hw/machine/config.ts"
import { Machine } from "../../hw/machine/machine.ts"
import { Kernel, type KernelHost } from "../../kernel/boot.ts"
import type { Datastore } from "../../kernel/datastore/service.ts"
import type { MachineMemory } from "../../kernel/memory/service.ts"
import type { Worlds } from "../../kernel/sched/runtime.ts"

export type BootedHost = Context.Context<KernelHost | MachineMemory | Worlds | Datastore>

/** The most RAM a host may have (hw/machine/config.ts: below the MMIO hole). */
export const MAX_HOST_RAM_MIB = 3584

/** Power on a `ramMiB` host with `pcpus` pCPUs; the machine, not yet booted. */
export const powerOn = (options: { readonly ramMiB: number; readonly pcpus: number }): Effect.Effect<Machine> =>
  decodeMachineConfig(
    "bench host",
    JSON.stringify({
      ...defaultMachineConfig,
      pcpus: options.pcpus,
      ramMiB: options.ramMiB,
      seed: 1,
      uart: { backend: "none" },
      block: null
    })
  ).pipe(
    Effect.map((config) => new Machine(config, {})),
    Effect.orDie
  )

/** Boot the vmkernel on `machine` for the life of the current scope: its services. */
export const bootKernel = (machine: Machine): Effect.Effect<BootedHost, never, Scope.Scope> =>
  Layer.build(Kernel.boot(machine)).pipe(Effect.orDie) as Effect.Effect<BootedHost, never, Scope.Scope>

let gcFunction: (() => void) | undefined

/**
 * A full garbage collection, between measurements (never inside one): the
 * process's `gc` under --expose-gc, else the same function obtained by
 * turning the flag on at run time (V8 installs `gc` in new contexts).
 */
export const collectGarbage = (): void => {
  if (gcFunction === undefined) {
    const exposed = (globalThis as { gc?: () => void }).gc
    if (exposed !== undefined) gcFunction = exposed
    else {
      setFlagsFromString("--expose-gc")
      gcFunction = runInNewContext("gc") as () => void
    }
  }
  gcFunction()
}
