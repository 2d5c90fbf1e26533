/**
 * The `uart16550` case of the fuzz suite `devices` (scripts/fuzz/suites/devices.ts):
 * the NS PC16550D / 16550A UART (hw/devices/uart16550) under random register
 * traffic, received bytes (garbage ones too), modem-input changes and ticks.
 * The IRQ line is always `interruptAsserted` and every transmitted byte is a
 * byte. After `reset()` (Table IV master reset: IIR 0x01, LSR 0x60) the UART
 * raises THRE when IER enables it, clears it on an IIR read and sends a THR
 * byte to its back-end (PC16550D 8.4-8.7).
 */
import fc from "fast-check"
import { IER, IIR, LCR, LSR, MCR, THR } from "../../../hw/devices/uart16550/registers.ts"
import { Uart16550 } from "../../../hw/devices/uart16550/uart16550.ts"
import { recordingIrq } from "../../../hw/machine/device.ts"
import {
  accesses,
  checkDeadline,
  checkRead,
  garbageTimeInf,
  hex,
  must,
  type Ops,
  offsetArb,
  opList,
  rd,
  relativeTick,
  tickArb,
  valueArb,
  w,
  weird,
  wr
} from "./ops.ts"

export type UartCase = { readonly device: "uart16550"; readonly byte: number; readonly ops: Ops }

export const uartCase: fc.Arbitrary<UartCase> = fc.record({
  device: fc.constant("uart16550" as const),
  byte: fc.integer({ min: 0, max: 0xff }),
  ops: opList(
    ...accesses(offsetArb(10)),
    w(
      1,
      fc.record({
        kind: fc.constant("rx" as const),
        bytes: fc.array(fc.oneof(fc.integer({ min: -5, max: 300 }), weird), { maxLength: 20 })
      })
    ),
    w(1, fc.record({ kind: fc.constant("modem" as const), bits: valueArb })),
    tickArb(garbageTimeInf)
  )
})

export const checkUart = (c: UartCase): void => {
  const sent: number[] = []
  const irq = recordingIrq()
  const uart = new Uart16550({ backend: { transmit: (b) => sent.push(b) }, irq })
  const time = { now: 0 }
  for (const op of c.ops) {
    if (op.kind === "read") checkRead("uart16550", op, rd(uart, op.offset, op.size))
    else if (op.kind === "write") wr(uart, op.offset, op.size, op.value)
    else if (op.kind === "rx") uart.receive(op.bytes)
    else if (op.kind === "modem") uart.setModemInputs(op.bits)
    else if (op.kind === "tick") {
      const at = relativeTick(time, op.dt)
      checkDeadline("uart16550", uart.tick(at), at)
    }
    must(
      irq.level === uart.interruptAsserted,
      `uart16550: IRQ line ${irq.level} but interruptAsserted ${uart.interruptAsserted}`
    )
  }
  must(
    sent.every((b) => Number.isInteger(b) && b >= 0 && b <= 0xff),
    `uart16550: transmitted ${JSON.stringify(sent)}`
  )
  // Table IV master reset: IIR 0x01, LSR 0x60, the output drops (MCR.OUT2 = 0)
  uart.reset()
  must(!irq.level, "uart16550: IRQ still asserted after reset")
  const resetRegs = [IER, IIR, LCR, MCR, LSR].map((r) => uart.read(r, 1))
  must(
    JSON.stringify(resetRegs) === JSON.stringify([0x00, 0x01, 0x00, 0x00, 0x60]),
    `uart16550: after reset IER IIR LCR MCR LSR read ${resetRegs.map(hex).join(" ")}, not 0x0 0x1 0x0 0x0 0x60`
  )
  uart.write(LCR, 1, 0x03) // 8N1, DLAB = 0
  uart.write(MCR, 1, 0x0b) // DTR | RTS | OUT2
  must(!irq.level, "uart16550: IRQ asserted with every interrupt disabled")
  uart.write(IER, 1, 0x02) // ETBEI: THR is empty, so THRE is pending at once (8.7)
  must(irq.level, "uart16550: enabling ETBEI with THR empty did not raise the interrupt")
  const iir = uart.read(IIR, 1)
  must(iir === 0x02, `uart16550: IIR reads ${hex(iir)} with THRE pending, not 0x02`)
  must(!irq.level, "uart16550: reading IIR that reported THRE did not clear it")
  const raises = irq.raises
  sent.length = 0
  uart.write(THR, 1, c.byte)
  must(
    sent.length === 1 && sent[0] === c.byte,
    `uart16550: THR write of ${hex(c.byte)} sent ${JSON.stringify(sent)} to the back-end`
  )
  must(irq.raises === raises + 1 && irq.level, "uart16550: the emptied THR did not raise THRE again")
}
