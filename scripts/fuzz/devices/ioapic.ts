/**
 * The `ioapic` case of the fuzz suite `devices` (scripts/fuzz/suites/devices.ts):
 * the Intel 82093AA I/O APIC (vmm/devices/ioapic) under random IOREGSEL /
 * IOWIN / EOI-register traffic, input-pin levels and EOIs. Every interrupt
 * message names a vector 0-255 and a legal pin; after `reset()` the I/O APIC
 * routes a pin's edge to the programmed vector and destination (82093AA 3.2.4).
 */
import fc from "fast-check"
import { IoApic, type IoApicMessage } from "../../../vmm/devices/ioapic/ioapic.ts"
import { accesses, checkRead, lineArb, must, type Ops, offsetArb, opList, rd, w, weird, wr } from "./ops.ts"

export type IoApicCase = {
  readonly device: "ioapic"
  readonly pin: number
  readonly vector: number
  readonly destination: number
  readonly ops: Ops
}

export const ioapicCase: fc.Arbitrary<IoApicCase> = fc.record({
  device: fc.constant("ioapic" as const),
  pin: fc.integer({ min: 0, max: 23 }),
  vector: fc.integer({ min: 0x10, max: 0xfe }),
  destination: fc.integer({ min: 0, max: 0xff }),
  ops: opList(
    ...accesses(offsetArb(0x1010, [0x00, 0x10, 0x40])),
    w(2, fc.record({ kind: fc.constant("irq" as const), pin: lineArb(25), level: fc.boolean() })),
    w(1, fc.record({ kind: fc.constant("eoi" as const), vector: fc.oneof(fc.integer({ min: -1, max: 300 }), weird) }))
  )
})

export const checkIoApic = (c: IoApicCase): void => {
  const sent: IoApicMessage[] = []
  const io = new IoApic({ deliver: (m) => sent.push(m) })
  for (const op of c.ops) {
    if (op.kind === "read") checkRead("ioapic", op, rd(io, op.offset, op.size))
    else if (op.kind === "write") wr(io, op.offset, op.size, op.value)
    else if (op.kind === "irq") io.setIrq(op.pin, op.level)
    else if (op.kind === "eoi") io.eoi(op.vector)
  }
  for (const m of sent)
    must(
      Number.isInteger(m.vector) && m.vector >= 0 && m.vector <= 0xff && m.pin >= 0 && m.pin < 24,
      `ioapic: delivered ${JSON.stringify(m)}`
    )
  io.reset()
  sent.length = 0
  io.write(0x00, 4, 0x11 + 2 * c.pin) // IOREDTBL[pin] high: destination
  io.write(0x10, 4, (c.destination << 24) >>> 0)
  io.write(0x00, 4, 0x10 + 2 * c.pin) // low: vector, fixed, physical, edge, unmasked
  io.write(0x10, 4, c.vector)
  io.setIrq(c.pin, false)
  io.setIrq(c.pin, true)
  const expected: IoApicMessage = {
    vector: c.vector,
    deliveryMode: 0,
    destination: c.destination,
    destinationMode: "physical",
    trigger: "edge",
    pin: c.pin
  }
  must(
    JSON.stringify(sent) === JSON.stringify([expected]),
    `ioapic: after reset, an edge on pin ${c.pin} delivered ${JSON.stringify(sent)}, expected ${JSON.stringify(expected)}`
  )
}
