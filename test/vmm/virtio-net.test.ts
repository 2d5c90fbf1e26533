/**
 * Two VMs exchange Ethernet frames through the vSwitch with virtio-net
 * (issue 6 Must show): each net guest broadcasts from its own MAC until it
 * hears the other, then prints whom it heard. A third VM on another port
 * group hears nothing (port groups isolate).
 */
import { readFileSync } from "node:fs"
import { fileURLToPath } from "node:url"
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { decodeMachineConfig, defaultMachineConfig } from "../../hw/machine/config.ts"
import { Machine } from "../../hw/machine/machine.ts"
import { Kernel } from "../../kernel/boot.ts"
import { Worlds } from "../../kernel/sched/runtime.ts"
import { VSwitch } from "../../kernel/vswitch/vswitch.ts"
import { defaultVmConfig } from "../../vmm/config.ts"
import { planMultibootLoad } from "../../vmm/loader/multiboot.ts"
import { addStandardDevices } from "../../vmm/platform/standard.ts"
import { addVirtioDevices } from "../../vmm/platform/virtio.ts"
import { createVm, type VirtualMachine } from "../../vmm/vm.ts"

const image = readFileSync(fileURLToPath(new URL("../../images/net/net.elf", import.meta.url)))

const payload = () => {
  const plan = planMultibootLoad(image, { ramBytes: 16 << 20 })
  if (plan._tag === "Failure") throw new Error(plan.failure.message)
  return { writes: plan.success.writes, registers: plan.success.registers }
}

describe("virtio-net through the vSwitch", () => {
  it.effect("two VMs on one port group hear each other; a VM on another port group hears no one", () => {
    const machine = new Machine(
      Effect.runSync(decodeMachineConfig("t", JSON.stringify({ ...defaultMachineConfig, ramMiB: 96 })))
    )
    const vswitch = new VSwitch({ name: "vSwitch0" })
    const outs = new Map<string, string>()
    return Effect.gen(function* () {
      const vms: Array<VirtualMachine> = []
      for (const [name, group, mac] of [
        ["alpha", "lab", 1],
        ["beta", "lab", 2],
        ["gamma", "dmz", 3]
      ] as const) {
        outs.set(name, "")
        const vm = yield* createVm(defaultVmConfig(name, "images/net/net.elf"), payload(), {
          console: (b) => outs.set(name, outs.get(name)! + String.fromCharCode(b))
        })
        addStandardDevices(vm)
        addVirtioDevices(vm, { nics: [{ port: vswitch.attach(group, name).port, mac: [0x52, 0x54, 0, 0, 0, mac] }] })
        vms.push(vm)
      }
      // 20 ms of virtual time: the pair needs well under 1 ms; gamma spins through all of it
      yield* (yield* Worlds).runFor(20_000_000)
      expect(outs.get("alpha")).toBe("net: 52:54:00:00:00:01 heard 52:54:00:00:00:02\r\n")
      expect(outs.get("beta")).toBe("net: 52:54:00:00:00:02 heard 52:54:00:00:00:01\r\n")
      expect(vms[0]!.ended).toEqual({ _tag: "DebugExit", code: 0 })
      expect(vms[1]!.ended).toEqual({ _tag: "DebugExit", code: 0 })
      // alone on its port group, gamma keeps pinging and never hears anyone
      expect(outs.get("gamma")).toBe("")
      expect(vms[2]!.ended).toBeUndefined()
    }).pipe(Effect.provide(Kernel.boot(machine)), Effect.scoped)
  })
})
