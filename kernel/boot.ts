/**
 * Kernel.boot: what runs on the bare machine with no host OS under it.
 * The boot sequence reads top to bottom like a table of contents, one layer
 * per line, and the result is a Layer offering the kernel's services:
 *
 *   1. read the firmware table in ROM: which CPUs, RAM and devices exist
 *   2. the machine memory manager: every frame owned, the kernel's own reserved
 *   3. drivers: the serial console, then the block device (if any)
 *   4. services: KernelConsole on the console driver, Datastore on the disk
 *   5. the world runtime: one scheduler fiber per pCPU
 *
 * Everything is scoped: closing the boot scope interrupts the scheduler
 * fibers. A hardware problem found while booting is a typed
 * KernelBootError naming the step; nothing half-started is left running.
 */
import { Context, Effect, Layer, Schema } from "effect"
import { BlockDriver, describeBlockError } from "../drivers/block.ts"
import { SerialConsole } from "../drivers/serial.ts"
import type { FirmwareDescription } from "../hw/firmware/description.ts"
import { decodeFirmwareTable } from "../hw/firmware/table.ts"
import type { Machine } from "../hw/machine/machine.ts"
import { KernelConsole } from "./console/service.ts"
import { DatastoreIoError, DatastoreNotFoundError } from "./datastore/errors.ts"
import { Datastore, type DatastoreShape } from "./datastore/service.ts"
import { MachineMemory } from "./memory/service.ts"
import { RECOMMENDED_QUANTUM_NS } from "./sched/config.ts"
import { makeWorlds, Worlds } from "./sched/runtime.ts"
import { Trace } from "./trace/trace.ts"

export class KernelBootError extends Schema.TaggedError<KernelBootError>()("KernelBootError", {
  step: Schema.String,
  message: Schema.String
}) {}

/** What the kernel learned about the machine it booted on. */
export class KernelHost extends Context.Service<
  KernelHost,
  { readonly machine: Machine; readonly firmware: FirmwareDescription; readonly quantumNs: number }
>()("fibervisor/KernelHost") {}

export interface KernelOptions {
  /** Scheduler quantum in virtual ns (default RECOMMENDED_QUANTUM_NS, 1 ms). */
  readonly quantumNs?: number
  /** Trace ring capacity (default 4096 events). */
  readonly traceCapacity?: number
}

const fail = (step: string, message: string) => Effect.fail(new KernelBootError({ step, message }))

/** A host without a datastore disk still offers the service: every operation says why it cannot work. */
const noDatastore: DatastoreShape = (() => {
  const none = (operation: string) =>
    Effect.fail(new DatastoreIoError({ operation, reason: "this host has no datastore disk" }))
  return {
    list: Effect.succeed([]),
    usage: Effect.succeed({ totalSectors: 0, dataStart: 0, freeSectors: 0, files: 0, slots: 0 }),
    create: () => none("create"),
    open: (name) => Effect.fail(new DatastoreNotFoundError({ path: name })),
    read: () => none("read"),
    write: () => none("write"),
    delete: () => none("delete"),
    flush: none("flush")
  }
})()

export const boot = (machine: Machine, options: KernelOptions = {}) =>
  Layer.effectContext(
    Effect.gen(function* () {
      const traceLayer = yield* Layer.build(Trace.layer(options.traceCapacity ?? 4096))
      const trace = Context.get(traceLayer, Trace)
      const step = (name: string, detail: string) => trace.record({ _tag: "Boot", at: machine.now, step: name, detail })

      const decoded = decodeFirmwareTable(machine.firmware) // 1. what hardware is there
      if (!decoded.ok) return yield* fail("firmware", decoded.error.message)
      const firmware = decoded.table
      yield* step(
        "firmware",
        `${firmware.cpus.length} CPUs, ${firmware.memory.length} memory regions, ${firmware.devices.length} devices`
      )

      const memory = yield* MachineMemory.make(machine) // 2. machine frames; the kernel keeps its own
      yield* step("memory", `${(yield* memory.stats).freeFrames} frames free`)
      // drivers take frames synchronously (ring and bounce buffers): straight from the pure core
      const allocFrame = () => {
        const frame = memory.managerUnsafe.allocateKernelFrame()
        if (typeof frame !== "number") throw new Error(`out of kernel frames while starting drivers: ${frame.message}`)
        return frame
      }

      const serial = SerialConsole.open(machine.ports) // 3. drivers: console, then the disk
      if (!serial.ok) return yield* fail("console", JSON.stringify(serial.error))
      const hasDisk = firmware.devices.some((d) => d.type === "fvblk")
      let block: BlockDriver | undefined
      if (hasDisk) {
        const opened = BlockDriver.open(machine, { allocFrame })
        if (!opened.ok) return yield* fail("block", describeBlockError(opened.error))
        block = opened.value
      }
      yield* step(
        "drivers",
        `serial console${block === undefined ? "" : `, datastore disk of ${block.capacity} sectors`}`
      )

      const kernelConsole = yield* KernelConsole.make({ serial: serial.value, now: () => machine.now }) // 4. services
      const datastore =
        block === undefined
          ? noDatastore
          : yield* Datastore.make({ block }).pipe(
              Effect.mapError((e) => new KernelBootError({ step: "datastore", message: e.message }))
            )
      yield* kernelConsole.log(
        `fibervisor vmkernel: ${firmware.cpus.length} pCPUs, ${(yield* memory.stats).freeFrames} free frames`
      )

      const quantumNs = options.quantumNs ?? RECOMMENDED_QUANTUM_NS // 5. one scheduler fiber per pCPU
      const worlds = yield* makeWorlds({ pcpus: firmware.cpus.length, quantum: quantumNs }, machine).pipe(
        Effect.provide(traceLayer)
      )
      yield* step("scheduler", `${firmware.cpus.length} pCPU fibers, quantum ${quantumNs} ns`)

      return Context.make(KernelHost, { machine, firmware, quantumNs }).pipe(
        Context.add(Trace, trace),
        Context.add(MachineMemory, memory),
        Context.add(KernelConsole, kernelConsole),
        Context.add(Datastore, datastore),
        Context.add(Worlds, worlds)
      )
    })
  )

export const Kernel = { boot }
