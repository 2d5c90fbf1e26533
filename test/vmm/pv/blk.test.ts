/**
 * The split block driver of `pv` mode (vmm/engines/pv/blkback.ts): the PV
 * build of images/blk finds its disk in xenstore, grants the back end its
 * ring and data page, and keeps a boot counter in sector 0 -- the same job
 * the native build does over virtio-blk. Plus what a hostile front end can
 * and cannot do to the back end.
 */
import { readFileSync } from "node:fs"
import { fileURLToPath } from "node:url"
import { describe, expect, it } from "@effect/vitest"
import { Effect, Result } from "effect"
import { Kernel } from "../../../kernel/boot.ts"
import { Worlds } from "../../../kernel/sched/runtime.ts"
import { planXenPvLoad } from "../../../vmm/loader/xen-pv.ts"
import { type BlockStore, memoryBlockStore } from "../../../vmm/virtio/blk.ts"
import { createVm } from "../../../vmm/vm.ts"
import { testMachine } from "../in-process.ts"
import { pvConfig } from "./harness.ts"

const root = fileURLToPath(new URL("../../..", import.meta.url))

/** A disk whose every access is an I/O error. */
const failingDisk: BlockStore = { sectors: 2048, read: () => undefined, write: () => false, flush: () => false }

const boot = (image: Uint8Array, disk: BlockStore | undefined) => {
  let out = ""
  const planned = planXenPvLoad(image, { ramBytes: 16 * 1024 * 1024, cmdline: "" })
  if (Result.isFailure(planned)) throw new Error(planned.failure.message)
  return Effect.gen(function* () {
    const vm = yield* createVm(pvConfig("blk-pv"), planned.success, { console: (b) => (out += String.fromCharCode(b)) })
    if (disk !== undefined) vm.pvDomain!.attachDisk(disk)
    yield* (yield* Worlds).runFor(200_000_000)
    return { vm, out, stats: vm.engineStats() }
  }).pipe(Effect.provide(Kernel.boot(testMachine())), Effect.scoped)
}

describe("pv: the split block driver (blkfront in the guest, blkback in the hypervisor)", () => {
  const image = readFileSync(`${root}/images/blk/blk-pv.elf`)

  it.effect("blk-pv keeps its boot counter in sector 0 across boots, over grant tables and a blkif ring", () =>
    Effect.gen(function* () {
      const disk = memoryBlockStore(2048)
      const first = yield* boot(image, disk)
      expect(first.out).toBe("blk: boot 1, sector 0 written and read back\r\n")
      expect(first.vm.ended).toEqual({ _tag: "DebugExit", code: 0 })
      expect(first.stats.pv_blk_requests, "read, write, read back").toBe(3)
      expect(new TextDecoder().decode(disk.data.subarray(0, 8))).toBe("FVBLKTST")
      const second = yield* boot(image, disk)
      expect(second.out).toBe("blk: boot 2, sector 0 written and read back\r\n")
    })
  )

  it.effect("without a disk the guest finds no device in xenstore; with a failing one it sees BLKIF_RSP_ERROR", () =>
    Effect.gen(function* () {
      const none = yield* boot(image, undefined)
      expect(none.out).toBe("blk: no virtual block device in xenstore (device/vbd/768)\r\n")
      expect(none.vm.ended).toEqual({ _tag: "DebugExit", code: 1 })
      const failed = yield* boot(image, failingDisk)
      expect(failed.out).toBe("blk: the device reported an I/O error\r\n")
      expect(failed.stats.pv_blk_errors).toBe(1)
    })
  )
})
