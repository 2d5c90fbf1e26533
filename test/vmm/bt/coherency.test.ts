/**
 * Coherency of the `bt` translation cache with guest memory (issue 10,
 * vmm/engines/bt/monitor.ts, translation-cache.ts):
 *   - self-modifying code: a write over translated bytes drops the
 *     translation, and the new code is what runs (as on `hw`);
 *   - data sharing a page with code: writes trap (the page is protected)
 *     but do not drop translations (the code bitmap);
 *   - a full translation cache is flushed and translation starts over.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { decodeMachineConfig, defaultMachineConfig } from "../../../hw/machine/config.ts"
import { Machine } from "../../../hw/machine/machine.ts"
import { Kernel } from "../../../kernel/boot.ts"
import { Worlds } from "../../../kernel/sched/runtime.ts"
import { defaultVmConfig, type ExecutionMode } from "../../../vmm/config.ts"
import { flat32Payload } from "../../../vmm/loader/raw-payload.ts"
import { createVm } from "../../../vmm/vm.ts"
import { assemble } from "../../hw/cpu/harness.ts"
import { debugExit } from "./harness.ts"

const machine = () =>
  new Machine(Effect.runSync(decodeMachineConfig("test", JSON.stringify({ ...defaultMachineConfig, ramMiB: 64 }))))

/** Run flat 32-bit code (org 0x100000) in `mode`; the guest's registers and engine counters at the end. */
const runFlat = (mode: ExecutionMode, source: string, tcBytes?: number) =>
  Effect.gen(function* () {
    const payload = flat32Payload(assemble(`bits 32\norg 0x100000\n${source}`).bytes)
    const vm = yield* createVm({ ...defaultVmConfig(`smc-${mode}`, "inline"), mode }, payload, {
      console: () => {},
      ports: debugExit,
      ...(tcBytes === undefined ? {} : { bt: { tcBytes } })
    })
    yield* (yield* Worlds).runFor(200_000_000)
    return { ended: vm.ended, regs: vm.vcpus[0]!.vmcs.guest.regs, stats: vm.engineStats() }
  }).pipe(Effect.provide(Kernel.boot(machine())), Effect.scoped)

const smc = `
  mov ecx, 3
  xor ebx, ebx
again:
patched:
  mov eax, 1            ; B8 01 00 00 00: the immediate is rewritten below
  add ebx, eax
  mov dword [patched + 1], 100
  loop again
  mov al, 0
  out 0xf4, al
  hlt
`

describe("bt: self-modifying code", () => {
  it.effect("a write over translated code drops the translation: the new instruction runs, as on hw", () =>
    Effect.gen(function* () {
      const bt = yield* runFlat("bt", smc)
      const hw = yield* runFlat("hw", smc)
      expect(hw.ended).toEqual({ _tag: "DebugExit", code: 0 })
      expect(bt.ended).toEqual(hw.ended)
      // 1 + 100 + 100: the second and third passes run the patched immediate
      expect(hw.regs.ebx).toBe(201)
      expect(bt.regs.ebx).toBe(201)
      expect(bt.stats.invalidations).toBeGreaterThanOrEqual(1)
      expect(bt.stats.shadow_code_writes).toBeGreaterThanOrEqual(1)
    })
  )

  it.effect("data on a page with translated code: writes trap but keep the translations", () =>
    Effect.gen(function* () {
      const bt = yield* runFlat(
        "bt",
        `
  mov ecx, 50
count:
  inc dword [counter]   ; the counter shares the code's page
  loop count
  mov eax, [counter]
  mov al, 0
  out 0xf4, al
  hlt
align 4
counter: dd 0
`
      )
      expect(bt.ended).toEqual({ _tag: "DebugExit", code: 0 })
      expect(bt.regs.eax >>> 8).toBe(0) // EAX = 50 with AL overwritten by 0
      expect(bt.stats.shadow_code_writes).toBeGreaterThanOrEqual(50)
      expect(bt.stats.invalidations).toBe(0)
    })
  )
})

describe("bt: translation-cache eviction", () => {
  // 2000 blocks of `inc eax; jmp next` (8 TC bytes each with its exit stub: 16 KB, twice the small cache):
  // the cache fills, is flushed, and translation goes on
  const blocks = Array.from({ length: 2000 }, (_, i) => `b${i}:\n  inc eax\n  jmp b${i + 1}`).join("\n")
  const source = `
  xor eax, eax
${blocks}
b2000:
  mov ebx, eax
  mov al, 0
  out 0xf4, al
  hlt
`

  it.effect("a full cache is flushed and the guest runs on, with the same result as hw", () =>
    Effect.gen(function* () {
      const bt = yield* runFlat("bt", source, 8192)
      const hw = yield* runFlat("hw", source)
      expect(hw.regs.ebx).toBe(2000)
      expect(bt.ended).toEqual({ _tag: "DebugExit", code: 0 })
      expect(bt.regs.ebx).toBe(2000)
      expect(bt.stats.tc_flushes).toBeGreaterThanOrEqual(1)
      expect(bt.stats.blocks_translated).toBeGreaterThan(2000)
    })
  )

  it.effect("with the default cache size there is no flush", () =>
    Effect.gen(function* () {
      const bt = yield* runFlat("bt", source)
      expect(bt.regs.ebx).toBe(2000)
      expect(bt.stats.tc_flushes).toBe(0)
    })
  )
})
