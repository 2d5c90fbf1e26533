/**
 * A VM writes and reads back its virtio-blk disk, and the data survives a
 * VM restart (issue 6 Must show): the blk guest keeps a boot counter in
 * sector 0 of its disk, a Datastore file on the host's physical disk; a
 * second VM booted later on the same file sees the first one's write.
 */
import { readFileSync } from "node:fs"
import { fileURLToPath } from "node:url"
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { memoryBackend } from "../../hw/devices/block/memory-backend.ts"
import { decodeMachineConfig, defaultMachineConfig } from "../../hw/machine/config.ts"
import { Machine } from "../../hw/machine/machine.ts"
import { Kernel } from "../../kernel/boot.ts"
import { Datastore } from "../../kernel/datastore/service.ts"
import { Worlds } from "../../kernel/sched/runtime.ts"
import { defaultVmConfig } from "../../vmm/config.ts"
import { planMultibootLoad } from "../../vmm/loader/multiboot.ts"
import { addStandardDevices } from "../../vmm/platform/standard.ts"
import { addVirtioDevices, datastoreBlockStore } from "../../vmm/platform/virtio.ts"
import { createVm } from "../../vmm/vm.ts"

const image = readFileSync(fileURLToPath(new URL("../../images/blk/blk.elf", import.meta.url)))

const payload = () => {
  const plan = planMultibootLoad(image, { ramBytes: 16 << 20 })
  if (plan._tag === "Failure") throw new Error(plan.failure.message)
  return { writes: plan.success.writes, registers: plan.success.registers }
}

describe("virtio-blk", () => {
  it.effect("the blk guest's write to its datastore disk survives a VM restart", () => {
    const config = Effect.runSync(
      decodeMachineConfig(
        "t",
        JSON.stringify({ ...defaultMachineConfig, ramMiB: 64, block: { path: "datastore.img", sizeMiB: 8 } })
      )
    )
    const machine = new Machine(config, { disk: memoryBackend(16384) })
    /** Boot the blk guest once on the datastore file "blk.disk"; its console output. */
    const bootOnce = Effect.scoped(
      Effect.gen(function* () {
        const datastore = yield* Datastore
        const file = yield* datastore.open("blk.disk")
        let out = ""
        const vm = yield* createVm(defaultVmConfig("blk", "images/blk/blk.elf"), payload(), {
          console: (b) => (out += String.fromCharCode(b))
        })
        addStandardDevices(vm)
        addVirtioDevices(vm, { disks: [datastoreBlockStore(file, datastore.flush)] })
        yield* (yield* Worlds).runFor(50_000_000)
        expect(vm.ended).toEqual({ _tag: "DebugExit", code: 0 })
        return out
      })
    )
    return Effect.gen(function* () {
      yield* (yield* Datastore).create("blk.disk", 2048)
      expect(yield* bootOnce).toBe("blk: boot 1, sector 0 written and read back\r\n")
      expect(yield* bootOnce).toBe("blk: boot 2, sector 0 written and read back\r\n")
      const sector0 = yield* (yield* Datastore).read("blk.disk", 0, 1)
      expect(new TextDecoder().decode(sector0.subarray(0, 8))).toBe("FVBLKTST")
    }).pipe(Effect.provide(Kernel.boot(machine)), Effect.scoped)
  })
})
