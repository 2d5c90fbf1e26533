/**
 * Robustness of every device model a guest or driver reaches (the VMM's
 * platform devices and hw's 16550, 8259 pair, 8254 and local APIC): the
 * fuzz suite `devices` (scripts/fuzz/suites/devices.ts, which describes the
 * traffic and the checks) run CI-sized with a fixed seed, plus evidence that
 * the arbitrary reaches every device and that the reset checks can fail.
 */
import { describe, expect, it } from "@effect/vitest"
import fc from "fast-check"
import { runCiSized } from "../../../scripts/fuzz/campaign.ts"
import { DEVICE_NAMES, deviceCases, devicesSuite } from "../../../scripts/fuzz/suites/devices.ts"

describe("devices (property)", () => {
  it("random traffic never throws, reads are u32, deadlines lie ahead, and every device works after reset", async () => {
    expect(await runCiSized(devicesSuite, 20261201)).toBe(devicesSuite.ciRuns)
  })

  it("the arbitrary produces every device kind, with non-empty traffic", () => {
    const cases = fc.sample(deviceCases, { numRuns: 500, seed: 7 })
    for (const name of DEVICE_NAMES) {
      const mine = cases.filter((c) => c.device === name)
      expect(mine.length, name).toBeGreaterThan(10)
      expect(
        mine.some((c) => c.ops.length > 10),
        name
      ).toBe(true)
    }
    expect(new Set(cases.map((c) => c.device)).size).toBe(DEVICE_NAMES.length)
  })

  it("renders the device, its parameters and one op per line", () => {
    const text = devicesSuite.render({
      device: "pic8259",
      irq: 9,
      ops: [
        { kind: "write", port: "master", offset: 0, size: 1, value: 0x11 },
        { kind: "read", port: "elcr", offset: Number.NaN, size: 3 },
        { kind: "irq", pin: 9, level: true },
        { kind: "inta" }
      ]
    })
    expect(text).toBe("pic8259 irq=9\nwrite master 0/1 0x11\nread elcr NaN/3\nirq 9 high\ninta")
  })

  // The reset checks are not vacuous: values the datasheets make illegal fail them.
  it("can fail: the 8259 pair's IRQ2 is the cascade, so raising it after reset delivers nothing", async () => {
    await expect(devicesSuite.check({ device: "pic8259", irq: 2, ops: [] })).rejects.toThrow(
      /^pic8259: raising IRQ 2 did not assert INTR/
    )
  })

  it("can fail: an 8254 count of 1 is illegal in mode 2 (OUT stays low), so no tick comes", async () => {
    await expect(devicesSuite.check({ device: "pit8254", mode: 2, count: 1, ops: [] })).rejects.toThrow(/^pit8254: /)
  })

  it("can fail: the local APIC refuses the illegal vector 15 (SDM 11.5.2)", async () => {
    await expect(
      devicesSuite.check({ device: "lapic", enabled: false, busHz: 100_000_000, vector: 15, timerCount: 1, ops: [] })
    ).rejects.toThrow(/^lapic: enabled APIC refused vector 0xf/)
  })
})
