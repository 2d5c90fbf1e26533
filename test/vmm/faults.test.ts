/**
 * Fault injection (issue 8): fuzz suite `faults` (scripts/fuzz/suites/faults.ts
 * describes the faults and the checks) CI-sized with a fixed seed; and the
 * same faults under real guests: the blk guest (images/blk) on a failing
 * medium and the blk guest whose disk file is deleted after it started
 * both see the device's I/O error and exit 1, while a third blk guest on
 * the same datastore boots as usual.
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
import { runCiSized } from "../../scripts/fuzz/campaign.ts"
import { faultyDisk } from "../../scripts/fuzz/faults/backends.ts"
import { faultsSuite } from "../../scripts/fuzz/suites/faults.ts"
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

describe("fault injection", () => {
  it("suite faults: only the affected guest sees errors, and acknowledged data survives", async () => {
    expect(await runCiSized(faultsSuite, 20261126)).toBe(faultsSuite.ciRuns)
  })

  it.effect("real guests: a failing medium and a deleted disk are I/O errors for their VM only", () => {
    const config = Effect.runSync(
      decodeMachineConfig(
        "t",
        JSON.stringify({ ...defaultMachineConfig, ramMiB: 96, block: { path: "datastore.img", sizeMiB: 8 } })
      )
    )
    const disk = faultyDisk(memoryBackend(16384))
    const machine = new Machine(config, { disk })
    return Effect.gen(function* () {
      const datastore = yield* Datastore
      const consoles: Record<string, string> = {}
      const boot = (name: string) =>
        Effect.gen(function* () {
          yield* datastore.create(`${name}.disk`, 2048)
          const file = yield* datastore.open(`${name}.disk`)
          consoles[name] = ""
          const vm = yield* createVm(defaultVmConfig(name, "images/blk/blk.elf"), payload(), {
            console: (b) => (consoles[name] += String.fromCharCode(b))
          })
          addStandardDevices(vm)
          addVirtioDevices(vm, { disks: [datastoreBlockStore(file, datastore.flush)] })
          return vm
        })
      const bad = yield* boot("bad")
      const gone = yield* boot("gone")
      const fine = yield* boot("fine")
      const extent = (yield* datastore.list).find((f) => f.name === "bad.disk")!
      disk.fault = { start: extent.start, end: extent.start + extent.sectors, kind: "writeErrors" }
      const worlds = yield* Worlds
      yield* worlds.runFor(4_000) // every VM has run a few microseconds (2 us quanta, 2 pCPUs); none has reached its disk yet
      expect([bad, gone, fine].map((vm) => [vm.ended, vm.instructions > 0])).toEqual(Array(3).fill([undefined, true]))
      yield* datastore.delete("gone.disk")
      yield* worlds.runFor(50_000_000)
      expect(consoles).toEqual({
        bad: "blk: the device reported an I/O error\r\n",
        gone: "blk: the device reported an I/O error\r\n",
        fine: "blk: boot 1, sector 0 written and read back\r\n"
      })
      expect([bad, gone, fine].map((vm) => vm.ended)).toEqual([
        { _tag: "DebugExit", code: 1 },
        { _tag: "DebugExit", code: 1 },
        { _tag: "DebugExit", code: 0 }
      ])
      expect(disk.injected).toBeGreaterThan(0)
    }).pipe(Effect.provide(Kernel.boot(machine, { quantumNs: 2_000 })), Effect.scoped)
  })
})
