/**
 * The `pic8259` case of the fuzz suite `devices` (scripts/fuzz/suites/devices.ts):
 * two Intel 8259A PICs as the PC/AT pair, plus the PIIX ELCR
 * (hw/devices/pic8259), under random traffic to all three, IRQ line levels
 * and INTAs. INTR always agrees with `hasInterrupt()` and every vector an
 * INTA returns is 0-255. After `reset()` and ICW1-ICW4 the pair hands the
 * raised IRQ's vector to INTA, shows it in ISR, clears it on EOI and answers
 * a spurious IR7 (8259A "Interrupt Sequence", "End of Interrupt").
 */
import fc from "fast-check"
import { PicPair } from "../../../hw/devices/pic8259/pic-pair.ts"
import { type BusDevice, recordingIrq } from "../../../hw/machine/device.ts"
import { accesses, checkRead, hex, lineArb, must, type Ops, offsetArb, opList, rd, w, wr } from "./ops.ts"

/** `irq`: the line raised after reset and re-init (0-15 but 2, the cascade). */
export type PicCase = { readonly device: "pic8259"; readonly irq: number; readonly ops: Ops }

export const picCase: fc.Arbitrary<PicCase> = fc.record({
  device: fc.constant("pic8259" as const),
  irq: fc.integer({ min: 0, max: 15 }).filter((irq) => irq !== 2),
  ops: opList(
    ...accesses(offsetArb(3), ["master", "slave", "elcr"]),
    w(3, fc.record({ kind: fc.constant("irq" as const), pin: lineArb(17), level: fc.boolean() })),
    w(1, fc.constant({ kind: "inta" as const }))
  )
})

export const checkPic = (c: PicCase): void => {
  const intr = recordingIrq()
  const pair = new PicPair({ intr })
  const ports: Record<string, BusDevice> = { master: pair.master, slave: pair.slave, elcr: pair.elcr }
  for (const op of c.ops) {
    if (op.kind === "read") checkRead(`pic8259 ${op.port}`, op, rd(ports[op.port]!, op.offset, op.size))
    else if (op.kind === "write") wr(ports[op.port]!, op.offset, op.size, op.value)
    else if (op.kind === "irq") pair.setIrq(op.pin, op.level)
    else if (op.kind === "inta") {
      const v = pair.acknowledge()
      must(Number.isInteger(v) && v >= 0 && v <= 0xff, `pic8259: INTA returned ${v}`)
    }
    must(intr.level === pair.hasInterrupt(), `pic8259: INTR ${intr.level} but hasInterrupt() ${pair.hasInterrupt()}`)
  }
  // the pins are external and survive a reset: the devices behind them go quiet first
  for (let irq = 0; irq < 16; irq++) pair.setIrq(irq, false)
  pair.reset()
  must(!intr.level && !pair.hasInterrupt(), "pic8259: INTR asserted after reset with every line low")
  // ICW1 edge + ICW4, ICW2 vector base, ICW3 cascade on IR2 / slave ID 2, ICW4 8086 mode
  for (const [chip, base, icw3] of [
    [pair.master, 0x20, 0x04],
    [pair.slave, 0x28, 0x02]
  ] as const) {
    chip.write(0, 1, 0x11)
    chip.write(1, 1, base)
    chip.write(1, 1, icw3)
    chip.write(1, 1, 0x01)
  }
  const imr = pair.master.read(1, 1) | (pair.slave.read(1, 1) << 8)
  must(imr === 0, `pic8259: IMR after ICW1-ICW4 reads ${hex(imr)}, not 0`)
  must(!pair.hasInterrupt(), "pic8259: INTR asserted after ICW1-ICW4 with every line low")
  const slave = c.irq >= 8
  const vector = (slave ? 0x28 : 0x20) | (c.irq & 7)
  pair.setIrq(c.irq, true)
  must(intr.level && pair.hasInterrupt(), `pic8259: raising IRQ ${c.irq} did not assert INTR`)
  const got = pair.acknowledge()
  must(got === vector, `pic8259: INTA for IRQ ${c.irq} returned ${hex(got)}, not ${hex(vector)}`)
  must(!intr.level, `pic8259: INTR still asserted after INTA of IRQ ${c.irq}`)
  const isr = () => {
    pair.master.write(0, 1, 0x0b) // OCW3: read ISR
    pair.slave.write(0, 1, 0x0b)
    return pair.master.read(0, 1) | (pair.slave.read(0, 1) << 8)
  }
  const inService = slave ? (1 << c.irq) | 0x04 : 1 << c.irq
  must(isr() === inService, `pic8259: ISR reads ${hex(isr())} after INTA of IRQ ${c.irq}, not ${hex(inService)}`)
  if (slave) pair.slave.write(0, 1, 0x20) // non-specific EOI to both chips for a slave IRQ
  pair.master.write(0, 1, 0x20)
  must(isr() === 0, `pic8259: ISR reads ${hex(isr())} after EOI`)
  const spurious = pair.acknowledge()
  must(spurious === 0x27 && isr() === 0, `pic8259: INTA with nothing pending returned ${hex(spurious)}, not IR7 0x27`)
  pair.setIrq(c.irq, false)
}
