/**
 * Robustness of every virtual platform device (vmm/devices/*) under
 * fast-check: random sequences of reads and writes with random sizes
 * (legal and not), offsets (in range, out of range, negative, fractional,
 * non-finite) and values (any double), interleaved with virtual-time
 * steps, ticks, input lines and EOIs. Nothing ever throws, every read is an
 * unsigned 32-bit integer, RTC deadlines never lie in the past, and after
 * `reset()` each device does its basic job again. Deterministic seeds.
 */
import { describe, expect, it } from "@effect/vitest"
import fc from "fast-check"
import type { AccessSize, BusDevice } from "../../../hw/machine/device.ts"
import { recordingIrq } from "../../../hw/machine/device.ts"
import { CmosRtc } from "../../../vmm/devices/cmos-rtc/cmos-rtc.ts"
import { Reg } from "../../../vmm/devices/cmos-rtc/registers.ts"
import { Debugcon, DebugExit } from "../../../vmm/devices/debug-ports/debug-ports.ts"
import { FwCfg } from "../../../vmm/devices/fw-cfg/fw-cfg.ts"
import { IoApic, type IoApicMessage } from "../../../vmm/devices/ioapic/ioapic.ts"
import { I8042 } from "../../../vmm/devices/pc-misc/i8042.ts"
import { PortA, PortB } from "../../../vmm/devices/pc-misc/system-control.ts"
import { PciHost } from "../../../vmm/devices/pci-host/pci-host.ts"

type Op =
  | { readonly kind: "read"; readonly offset: number; readonly size: number }
  | { readonly kind: "write"; readonly offset: number; readonly size: number; readonly value: number }
  | { readonly kind: "advance"; readonly ns: number }
  | { readonly kind: "tick"; readonly ns: number }
  | { readonly kind: "irq"; readonly pin: number; readonly level: boolean }
  | { readonly kind: "eoi"; readonly vector: number }

const weird = fc.constantFrom(Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY, -0, 1.5, 2 ** 32, 2 ** 53)
const offsetArb = (span: number) => fc.oneof(fc.integer({ min: -4, max: span }), fc.integer({ min: 0, max: 7 }), weird)
const sizeArb = fc.constantFrom(1, 2, 4, 1, 2, 4, 0, 3, 8)
const valueArb = fc.oneof(
  fc.integer({ min: 0, max: 0xff }),
  fc.integer({ min: 0, max: 0xffffffff }),
  fc.integer({ min: -(2 ** 31), max: 2 ** 31 }),
  weird
)

const opsArb = (span: number) =>
  fc.array(
    fc.oneof(
      {
        weight: 4,
        arbitrary: fc.record({ kind: fc.constant("read" as const), offset: offsetArb(span), size: sizeArb })
      },
      {
        weight: 6,
        arbitrary: fc.record({
          kind: fc.constant("write" as const),
          offset: offsetArb(span),
          size: sizeArb,
          value: valueArb
        })
      },
      {
        weight: 1,
        arbitrary: fc.record({
          kind: fc.constant("advance" as const),
          ns: fc.oneof(fc.integer({ min: 0, max: 3_000_000_000 }), fc.integer({ min: 0, max: 100_000 }))
        })
      },
      {
        weight: 1,
        arbitrary: fc.record({ kind: fc.constant("tick" as const), ns: fc.integer({ min: 0, max: 2 ** 40 }) })
      },
      {
        weight: 1,
        arbitrary: fc.record({
          kind: fc.constant("irq" as const),
          pin: fc.integer({ min: -1, max: 25 }),
          level: fc.boolean()
        })
      },
      {
        weight: 1,
        arbitrary: fc.record({ kind: fc.constant("eoi" as const), vector: fc.integer({ min: -1, max: 300 }) })
      }
    ),
    { maxLength: 60 }
  )

const isU32 = (v: number) => Number.isInteger(v) && v >= 0 && v <= 0xffffffff

/** Run the bus operations of `ops` against `device`; the rest go to the hooks. */
const drive = (
  device: BusDevice,
  ops: ReadonlyArray<Op>,
  hooks: {
    advance?: (ns: number) => void
    tick?: (ns: number) => void
    irq?: (p: number, l: boolean) => void
    eoi?: (v: number) => void
  } = {}
) => {
  for (const op of ops) {
    switch (op.kind) {
      case "read":
        expect(isU32(device.read(op.offset, op.size as AccessSize))).toBe(true)
        break
      case "write":
        device.write(op.offset, op.size as AccessSize, op.value)
        break
      case "advance":
        hooks.advance?.(op.ns)
        break
      case "tick":
        hooks.tick?.(op.ns)
        break
      case "irq":
        hooks.irq?.(op.pin, op.level)
        break
      case "eoi":
        hooks.eoi?.(op.vector)
        break
    }
  }
}

const RUNS = { numRuns: 150 }

describe("random traffic never throws, and every device works after reset", () => {
  it("CMOS RTC: garbage in, valid registers and deadlines out; after reset it keeps time and interrupts", () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 4_102_444_800 }), opsArb(3), (epoch, ops) => {
        const time = { now: 0 }
        const irq = recordingIrq()
        const rtc = new CmosRtc({ clock: () => time.now, epochSeconds: epoch, irq, ramBytes: 64 << 20 })
        let latest = 0
        drive(rtc, ops, {
          advance: (ns) => {
            time.now += ns
            latest = Math.max(latest, time.now)
          },
          tick: (ns) => {
            const d = rtc.tick(ns)
            latest = Math.max(latest, ns)
            expect(d === Number.POSITIVE_INFINITY || (Number.isInteger(d) && d > latest)).toBe(true)
          }
        })
        const set = (index: number, value: number) => {
          rtc.write(0, 1, index)
          rtc.write(1, 1, value)
        }
        const reg = (index: number) => {
          rtc.write(0, 1, index)
          return rtc.read(1, 1)
        }
        rtc.reset()
        expect(irq.level).toBe(false)
        time.now = latest
        set(Reg.A, 0x26)
        set(Reg.B, 0x82)
        const fields: Array<[number, number]> = [
          [Reg.Seconds, 0x00],
          [Reg.Minutes, 0x00],
          [Reg.Hours, 0x12],
          [Reg.DayOfMonth, 0x01],
          [Reg.Month, 0x01],
          [Reg.Year, 0x24],
          [Reg.Century, 0x20]
        ]
        for (const [r, v] of fields) set(r, v)
        set(Reg.B, 0x02)
        expect(rtc.currentSeconds()).toBe(Date.UTC(2024, 0, 1, 12) / 1000)
        time.now += 1_000_000_000
        expect(reg(Reg.Seconds)).toBe(0x01)
        reg(Reg.C)
        set(Reg.B, 0x42)
        const deadline = rtc.tick(time.now)
        expect(deadline).toBeGreaterThan(time.now)
        expect(deadline).toBeLessThanOrEqual(time.now + 1_000_000)
        rtc.tick(deadline)
        expect(irq.level).toBe(true)
        time.now = deadline
        expect(reg(Reg.C) & 0xc0).toBe(0xc0)
        expect(reg(0x15) | (reg(0x16) << 8)).toBe(640)
      }),
      { seed: 0x70, ...RUNS }
    )
  })

  it("I/O APIC: garbage in the 4 KiB window, on the pins and in EOIs; after reset it routes again", () => {
    fc.assert(
      fc.property(opsArb(0x1010), (ops) => {
        const sent: IoApicMessage[] = []
        const io = new IoApic({ deliver: (m) => sent.push(m) })
        drive(io, ops, { irq: (p, l) => io.setIrq(p, l), eoi: (v) => io.eoi(v) })
        for (const m of sent) expect(m.vector >= 0 && m.vector <= 0xff && m.pin >= 0 && m.pin < 24).toBe(true)
        io.reset()
        sent.length = 0
        io.write(0x00, 4, 0x13) // IOREDTBL[1] high: destination 2
        io.write(0x10, 4, 0x0200_0000)
        io.write(0x00, 4, 0x12) // low: vector 0x41, fixed, physical, edge, unmasked
        io.write(0x10, 4, 0x41)
        io.setIrq(1, false)
        io.setIrq(1, true)
        expect(sent).toEqual([
          { vector: 0x41, deliveryMode: 0, destination: 2, destinationMode: "physical", trigger: "edge", pin: 1 }
        ])
      }),
      { seed: 0xfec0, ...RUNS }
    )
  })

  it("8042, port A and port B: after reset the self-test, A20 and gate paths work", () => {
    fc.assert(
      fc.property(opsArb(6), opsArb(2), opsArb(2), (kbcOps, aOps, bOps) => {
        const events: string[] = []
        const kbc = new I8042({ onReset: () => events.push("reset"), onA20: (on) => events.push(`a20 ${on}`) })
        const portA = new PortA({ onA20: (on) => events.push(`fast a20 ${on}`), onReset: () => events.push("fast") })
        const gates: boolean[] = []
        const portB = new PortB({ setGate2: (g) => gates.push(g), readOut2: () => true })
        drive(kbc, kbcOps)
        drive(kbc.dataPort, kbcOps)
        drive(portA, aOps)
        drive(portB, bOps)
        kbc.reset()
        portA.reset()
        portB.reset()
        events.length = 0
        expect(kbc.read(4, 1)).toBe(0x18)
        kbc.write(4, 1, 0xaa)
        expect(kbc.read(0, 1)).toBe(0x55)
        kbc.write(4, 1, 0xfe)
        portA.write(0, 1, 0x02)
        portA.write(0, 1, 0x03)
        expect(events).toEqual(["reset", "fast a20 true", "fast a20 true", "fast"])
        portB.write(0, 1, 0x01)
        expect(gates.slice(-2)).toEqual([false, true])
        expect(portB.read(0, 1) & 0x21).toBe(0x21)
      }),
      { seed: 0x8042, ...RUNS }
    )
  })

  it("PCI host: after reset the host bridge answers and empty slots read all-ones", () => {
    fc.assert(
      fc.property(opsArb(8), (ops) => {
        const host = new PciHost({ onReset: () => {} })
        drive(host, ops)
        host.reset()
        host.write(0, 4, 0x8000_0000)
        expect(host.read(4, 4)).toBe(0x1237_8086)
        host.write(0, 4, 0x8000_0800)
        expect(host.read(4, 2)).toBe(0xffff)
      }),
      { seed: 0xcf8, ...RUNS }
    )
  })

  it("fw_cfg: after reset the signature reads again", () => {
    fc.assert(
      fc.property(opsArb(3), (ops) => {
        const fw = new FwCfg({ cpus: 2, ramBytes: 1 << 20, files: [{ name: "opt/x", data: Uint8Array.of(9) }] })
        drive(fw, ops)
        fw.reset()
        expect([1, 2, 3, 4].map(() => fw.read(1, 1))).toEqual([0x51, 0x45, 0x4d, 0x55])
      }),
      { seed: 0x510, ...RUNS }
    )
  })

  it("debugcon and isa-debug-exit: every byte and exit value is in range; after reset exit works", () => {
    fc.assert(
      fc.property(opsArb(5), (ops) => {
        const bytes: number[] = []
        const exits: number[] = []
        const con = new Debugcon({ sink: (b) => bytes.push(b) })
        const exit = new DebugExit({ onExit: (v) => exits.push(v) })
        drive(con, ops)
        drive(exit, ops)
        expect(bytes.every((b) => b >= 0 && b <= 0xff)).toBe(true)
        expect(exits.every(isU32)).toBe(true)
        exit.reset()
        exit.write(0, 1, 0)
        expect(exit.exitValue).toBe(0)
      }),
      { seed: 0xe9, ...RUNS }
    )
  })
})
