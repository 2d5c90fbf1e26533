/**
 * The `i8042` case of the fuzz suite `devices` (scripts/fuzz/suites/devices.ts):
 * the 8042 keyboard controller, system control port A (0x92) and port B
 * (0x61) (vmm/devices/pc-misc) under random traffic to all of them. After
 * `reset()` the 8042 passes its self-test (0xAA answers 0x55) and pulses
 * reset (0xFE), port A toggles A20 and resets, port B drives the speaker gate.
 */
import fc from "fast-check"
import type { BusDevice } from "../../../hw/machine/device.ts"
import { I8042 } from "../../../vmm/devices/pc-misc/i8042.ts"
import { PortA, PortB } from "../../../vmm/devices/pc-misc/system-control.ts"
import { accesses, checkRead, hex, must, type Ops, offsetArb, opList, rd, wr } from "./ops.ts"

export type I8042Case = { readonly device: "i8042"; readonly ops: Ops }

export const i8042Case: fc.Arbitrary<I8042Case> = fc.record({
  device: fc.constant("i8042" as const),
  ops: opList(...accesses(offsetArb(6), ["kbc", "data", "command", "a", "b"]))
})

export const checkI8042 = (c: I8042Case): void => {
  const events: string[] = []
  const kbc = new I8042({ onReset: () => events.push("reset"), onA20: (on) => events.push(`a20 ${on}`) })
  const portA = new PortA({ onA20: (on) => events.push(`fast a20 ${on}`), onReset: () => events.push("fast") })
  const gates: boolean[] = []
  const portB = new PortB({ setGate2: (g) => gates.push(g), readOut2: () => true })
  const ports: Record<string, BusDevice> = {
    kbc,
    data: kbc.dataPort,
    command: kbc.commandPort,
    a: portA,
    b: portB
  }
  for (const op of c.ops) {
    const dev = op.kind === "read" || op.kind === "write" ? ports[op.port] : undefined
    if (dev === undefined) continue
    if (op.kind === "read") checkRead(`i8042 ${op.port}`, op, rd(dev, op.offset, op.size))
    else if (op.kind === "write") wr(dev, op.offset, op.size, op.value)
  }
  kbc.reset()
  portA.reset()
  portB.reset()
  events.length = 0
  must(kbc.read(4, 1) === 0x18, `i8042: status after reset reads ${hex(kbc.read(4, 1))}, not 0x18`)
  kbc.write(4, 1, 0xaa)
  const selfTest = kbc.read(0, 1)
  must(selfTest === 0x55, `i8042: self-test (0xAA) answered ${hex(selfTest)}, not 0x55`)
  kbc.write(4, 1, 0xfe)
  portA.write(0, 1, 0x02)
  portA.write(0, 1, 0x03)
  const want = ["reset", "fast a20 true", "fast a20 true", "fast"]
  must(
    JSON.stringify(events) === JSON.stringify(want),
    `i8042/port A: after reset the pulse-reset, A20 and fast-reset paths gave ${JSON.stringify(events)}`
  )
  portB.write(0, 1, 0x01)
  must(
    JSON.stringify(gates.slice(-2)) === JSON.stringify([false, true]),
    `port B: gate 2 went ${JSON.stringify(gates)} after reset and a write of 1`
  )
  must((portB.read(0, 1) & 0x21) === 0x21, `port B: reads ${hex(portB.read(0, 1))}, gate 2 and OUT2 not both set`)
}
