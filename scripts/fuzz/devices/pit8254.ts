/**
 * The `pit8254` case of the fuzz suite `devices` (scripts/fuzz/suites/devices.ts):
 * the Intel 8254 PIT at 1.193182 MHz (hw/devices/pit8254) under random port
 * traffic, gate levels, OUT reads, virtual-time steps and ticks (no
 * +Infinity: see `garbageTime` in ./ops.ts). Deadlines lie ahead. After
 * `reset()` counter 0 in mode 2 or 3 with count N rises N + 1 pulses after
 * the count write and every N pulses after (8254 "Mode Definitions").
 */
import fc from "fast-check"
import { Pit8254 } from "../../../hw/devices/pit8254/pit8254.ts"
import { pitTickTime } from "../../../hw/devices/pit8254/registers.ts"
import { recordingIrq } from "../../../hw/machine/device.ts"
import {
  accesses,
  advance,
  checkDeadline,
  checkRead,
  garbageTime,
  lineArb,
  must,
  type Ops,
  offsetArb,
  opList,
  rd,
  relativeTick,
  tickArb,
  w,
  wr
} from "./ops.ts"

/** `count`: counter 0's count after reset (0 = 65536; 1 is illegal in modes 2 and 3). */
export type PitCase = { readonly device: "pit8254"; readonly mode: 2 | 3; readonly count: number; readonly ops: Ops }

export const pitCase: fc.Arbitrary<PitCase> = fc.record({
  device: fc.constant("pit8254" as const),
  mode: fc.constantFrom(2 as const, 3 as const),
  count: fc.oneof(fc.integer({ min: 2, max: 40 }), fc.integer({ min: 2, max: 0xffff }), fc.constant(0)),
  ops: opList(
    ...accesses(offsetArb(5)),
    w(1, fc.record({ kind: fc.constant("gate" as const), channel: lineArb(3), level: fc.boolean() })),
    w(1, fc.record({ kind: fc.constant("out" as const), channel: lineArb(3) })),
    advance,
    tickArb(garbageTime)
  )
})

export const checkPit = (c: PitCase): void => {
  const time = { now: 0 }
  const irq0 = recordingIrq()
  const pit = new Pit8254({ clock: () => time.now, out0: irq0 })
  for (const op of c.ops) {
    if (op.kind === "read") checkRead("pit8254", op, rd(pit, op.offset, op.size))
    else if (op.kind === "write") wr(pit, op.offset, op.size, op.value)
    else if (op.kind === "gate") pit.setGate(op.channel, op.level)
    else if (op.kind === "out") pit.readOut(op.channel)
    else if (op.kind === "advance") time.now += op.ns
    else if (op.kind === "tick") {
      const at = relativeTick(time, op.dt)
      checkDeadline("pit8254", pit.tick(at), at)
    }
  }
  // reset: every counter in mode 0 with no count, OUT low (the model's documented power-on state)
  pit.reset()
  const idle = pit.tick(time.now)
  must(
    idle === Number.POSITIVE_INFINITY && !irq0.level,
    `pit8254: after reset IRQ0 ${irq0.level}, next edge at ${idle}`
  )
  for (let ch = 0; ch < 3; ch++) pit.setGate(ch, true) // counters 0 and 1 are tied high on a PC
  pit.write(3, 1, 0x30 | (c.mode << 1)) // counter 0, LSB then MSB, mode 2 or 3, binary
  pit.write(0, 1, c.count & 0xff)
  pit.write(0, 1, (c.count >> 8) & 0xff)
  const n = c.count === 0 ? 0x10000 : c.count
  const start = pit.currentTick
  const raises = irq0.raises
  let d = pit.tick(time.now)
  for (let k = 1; k <= 3; k++) {
    const due = pitTickTime(start + 1 + k * n)
    must(
      d === due,
      `pit8254: mode ${c.mode} count ${n}: rising edge ${k} due at ${d}, expected ${due} (pulse ${start} + 1 + ${k} * ${n})`
    )
    time.now = d - 1
    pit.tick(d - 1)
    must(irq0.raises === raises + k - 1, `pit8254: IRQ0 rose ${irq0.raises - raises} times before edge ${k}`)
    time.now = d
    d = pit.tick(d)
  }
  must(irq0.raises - raises === 3, `pit8254: IRQ0 rose ${irq0.raises - raises} times over 3 periods`)
}
