/**
 * The virtual I/O APIC (vmm/devices/ioapic) against the Intel 82093AA
 * datasheet (sections named per test) and QEMU's hw/intc/ioapic.c: the
 * indirect register window, ID / version / arbitration, redirection entries
 * and their read-only bits, edge and level delivery, masking, remote IRR
 * and EOI (by message and by the version 0x20 EOI register), reset and
 * snapshot.
 */
import { describe, expect, it } from "@effect/vitest"
import { IoApic, type IoApicMessage } from "../../../vmm/devices/ioapic/ioapic.ts"
import { IOAPIC_EOI, IOREGSEL, IOWIN, isaIrqToPin } from "../../../vmm/devices/ioapic/registers.ts"

const makeIoApic = (version?: 0x11 | 0x20) => {
  const sent: IoApicMessage[] = []
  const io = new IoApic({ version, deliver: (m) => sent.push(m) })
  const reg = (sel: number) => {
    io.write(IOREGSEL, 4, sel)
    return io.read(IOWIN, 4)
  }
  const set = (sel: number, value: number) => {
    io.write(IOREGSEL, 4, sel)
    io.write(IOWIN, 4, value)
  }
  /** Program redirection entry `pin` (low dword, then destination in bits 31:24 of the high dword). */
  const route = (pin: number, low: number, destination = 0) => {
    set(0x11 + 2 * pin, destination << 24)
    set(0x10 + 2 * pin, low)
  }
  return { io, sent, reg, set, route }
}

const LEVEL = 1 << 15
const MASK = 1 << 16
const REMOTE_IRR = 1 << 14
const LOGICAL = 1 << 11

describe("82093AA 3.1/3.2: IOREGSEL and IOWIN", () => {
  it("IOREGSEL holds 8 bits and reads back; IOWIN and EOI take only 32-bit accesses (QEMU)", () => {
    const m = makeIoApic()
    m.io.write(IOREGSEL, 4, 0x1234)
    expect(m.io.read(IOREGSEL, 4)).toBe(0x34)
    m.io.write(IOREGSEL, 1, 0x01)
    expect(m.io.read(IOREGSEL, 1)).toBe(0x01)
    expect(m.io.read(IOWIN, 2)).toBe(0)
    expect(m.io.read(IOWIN, 4)).toBe(0x00170020)
  })

  it("only address bits 7:0 are decoded: the window repeats every 256 bytes of the 4 KiB page", () => {
    const m = makeIoApic()
    m.io.write(0x300 + IOREGSEL, 4, 0x01)
    expect(m.io.read(0x710 + IOWIN - 0x10, 4)).toBe(0x00170020)
    expect(m.io.read(0x20, 4)).toBe(0)
    expect(m.io.read(-4, 4)).toBe(0)
  })
})

describe("82093AA 3.2.1-3.2.3: IOAPICID, IOAPICVER, IOAPICARB", () => {
  it("ID is bits 27:24 (4 bits); arbitration reads the ID; version 0x00170020 (24 entries) is read-only", () => {
    const m = makeIoApic()
    expect(m.reg(0x00)).toBe(0)
    m.set(0x00, 0xffffffff)
    expect(m.reg(0x00)).toBe(0x0f000000)
    expect(m.reg(0x02)).toBe(0x0f000000)
    expect(m.io.apicId).toBe(15)
    m.set(0x01, 0)
    m.set(0x02, 0)
    expect(m.reg(0x01)).toBe(0x00170020)
    expect(m.reg(0x02)).toBe(0x0f000000)
    expect(makeIoApic(0x11).reg(0x01)).toBe(0x00170011)
    expect(m.reg(0x03)).toBe(0)
    expect(m.reg(0x40)).toBe(0) // past IOREDTBL[23]
  })
})

describe("82093AA 3.2.4: IOREDTBL[23:0]", () => {
  it("power-on entries are masked; every bit but remote IRR and delivery status reads back", () => {
    const m = makeIoApic()
    for (let pin = 0; pin < 24; pin++) {
      expect(m.reg(0x10 + 2 * pin)).toBe(MASK)
      expect(m.reg(0x11 + 2 * pin)).toBe(0)
    }
    m.set(0x10, 0xffffffff)
    expect(m.reg(0x10) >>> 0).toBe((0xffffffff & ~(REMOTE_IRR | (1 << 12))) >>> 0)
    m.set(0x11, 0xfe000001)
    expect(m.reg(0x11) >>> 0).toBe(0xfe000001)
  })

  it("the decoded fields reach `deliver`: vector, delivery mode, destination and its mode, trigger", () => {
    const m = makeIoApic()
    m.route(4, 0x24, 0x01) // fixed, physical, edge, vector 0x24 -> APIC 1
    m.route(5, 0x35 | (1 << 8) | LOGICAL, 0x0f) // lowest priority, logical
    m.route(6, 0x00 | (4 << 8), 0x02) // NMI
    m.route(7, 0x00 | (7 << 8), 0x00) // ExtINT
    for (const pin of [4, 5, 6, 7]) m.io.setIrq(pin, true)
    expect(m.sent).toEqual([
      { vector: 0x24, deliveryMode: 0, destination: 1, destinationMode: "physical", trigger: "edge", pin: 4 },
      { vector: 0x35, deliveryMode: 1, destination: 0x0f, destinationMode: "logical", trigger: "edge", pin: 5 },
      { vector: 0x00, deliveryMode: 4, destination: 2, destinationMode: "physical", trigger: "edge", pin: 6 },
      { vector: 0x00, deliveryMode: 7, destination: 0, destinationMode: "physical", trigger: "edge", pin: 7 }
    ])
  })

  it("the pc machine's ISA map: IRQ 0 (PIT) is pin 2, others identity", () => {
    expect([0, 1, 2, 8, 15].map(isaIrqToPin)).toEqual([2, 1, 2, 8, 15])
  })
})

describe("82093AA 2.0 'Interrupt Delivery': edge-triggered inputs", () => {
  it("one delivery per rising edge; a held line does not repeat", () => {
    const m = makeIoApic()
    m.route(1, 0x31)
    m.io.setIrq(1, true)
    m.io.setIrq(1, true)
    expect(m.sent.length).toBe(1)
    m.io.setIrq(1, false)
    m.io.setIrq(1, true)
    expect(m.sent.length).toBe(2)
  })

  it("an edge arriving while the entry is masked is lost; unmasking does not replay it", () => {
    const m = makeIoApic()
    m.route(3, 0x33 | MASK)
    m.io.setIrq(3, true)
    m.route(3, 0x33)
    expect(m.sent.length).toBe(0)
    m.io.setIrq(3, false)
    m.io.setIrq(3, true)
    expect(m.sent.length).toBe(1)
  })

  it("out-of-range pins and garbage are ignored", () => {
    const m = makeIoApic()
    m.io.setIrq(24, true)
    m.io.setIrq(-1, true)
    m.io.setIrq(1.5, true)
    m.io.eoi(Number.NaN)
    expect(m.sent.length).toBe(0)
  })
})

describe("82093AA 2.0 and 3.2.4 remote IRR: level-triggered inputs and EOI", () => {
  it("delivers once and sets remote IRR; EOI while still asserted redelivers; EOI after deassert clears", () => {
    const m = makeIoApic()
    m.route(9, 0x39 | LEVEL | LOGICAL, 0x03)
    m.io.setIrq(9, true)
    expect(m.sent.map((s) => [s.vector, s.trigger])).toEqual([[0x39, "level"]])
    expect(m.reg(0x10 + 18) & REMOTE_IRR).toBe(REMOTE_IRR)
    m.io.setIrq(9, true)
    expect(m.sent.length).toBe(1)
    m.io.eoi(0x39)
    expect(m.sent.length).toBe(2)
    m.io.setIrq(9, false)
    m.io.eoi(0x38) // another vector: nothing
    expect(m.reg(0x10 + 18) & REMOTE_IRR).toBe(REMOTE_IRR)
    m.io.eoi(0x39)
    expect(m.reg(0x10 + 18) & REMOTE_IRR).toBe(0)
    expect(m.sent.length).toBe(2)
  })

  it("a masked, asserted level input is held and delivered when unmasked", () => {
    const m = makeIoApic()
    m.route(10, 0x3a | LEVEL | MASK)
    m.io.setIrq(10, true)
    expect(m.sent.length).toBe(0)
    m.route(10, 0x3a | LEVEL)
    expect(m.sent.length).toBe(1)
  })

  it("the version 0x20 EOI register (offset 0x40) EOIs by vector; version 0x11 has none", () => {
    for (const [version, cleared] of [
      [0x20, true],
      [0x11, false]
    ] as const) {
      const m = makeIoApic(version)
      m.route(11, 0x3b | LEVEL)
      m.io.setIrq(11, true)
      m.io.setIrq(11, false)
      m.io.write(IOAPIC_EOI, 4, 0x3b)
      expect((m.reg(0x10 + 22) & REMOTE_IRR) === 0).toBe(cleared)
    }
  })

  it("rewriting an entry as edge-triggered clears remote IRR (QEMU, Linux's EOI for version 0x11)", () => {
    const m = makeIoApic(0x11)
    m.route(12, 0x3c | LEVEL)
    m.io.setIrq(12, true)
    m.io.setIrq(12, false)
    m.route(12, 0x3c | MASK)
    expect(m.reg(0x10 + 24) & REMOTE_IRR).toBe(0)
  })

  it("a deliver callback that EOIs synchronously never recurses, and a storm is cut off", () => {
    let count = 0
    const io = new IoApic({
      deliver: (msg) => {
        count++
        io.eoi(msg.vector)
      }
    })
    io.write(IOREGSEL, 4, 0x10 + 2 * 5)
    io.write(IOWIN, 4, 0x45 | LEVEL)
    io.setIrq(5, true)
    expect(count).toBeGreaterThan(1)
    expect(count).toBeLessThanOrEqual(64)
  })
})

describe("reset and snapshot", () => {
  it("reset masks every entry and clears IOREGSEL and the ID; pin levels are kept", () => {
    const m = makeIoApic()
    m.set(0x00, 0x05000000)
    m.route(2, 0x20)
    m.io.setIrq(7, true)
    m.io.reset()
    expect(m.io.read(IOREGSEL, 4)).toBe(0)
    expect(m.reg(0x00)).toBe(0)
    expect(m.reg(0x14)).toBe(MASK)
    expect(m.io.snapshot().pinLevels[7]).toBe(true)
  })

  it("snapshot/restore round-trips", () => {
    const a = makeIoApic()
    a.set(0x00, 0x03000000)
    a.route(9, 0x39 | LEVEL, 2)
    a.io.setIrq(9, true)
    const b = makeIoApic()
    b.io.restore(a.io.snapshot())
    expect(b.io.snapshot()).toEqual(a.io.snapshot())
    expect(b.sent.length).toBe(0)
    b.io.eoi(0x39) // pin still asserted in the snapshot: redelivered
    expect(b.sent.map((s) => s.pin)).toEqual([9])
  })
})
