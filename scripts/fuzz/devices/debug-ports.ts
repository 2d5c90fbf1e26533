/**
 * The `debug-ports` case of the fuzz suite `devices` (scripts/fuzz/suites/devices.ts):
 * debugcon (0xE9) and isa-debug-exit (vmm/devices/debug-ports) under random
 * traffic. Every byte debugcon emits is a byte and every exit value an
 * unsigned 32-bit integer; after `reset()` isa-debug-exit still exits.
 */
import fc from "fast-check"
import { Debugcon, DebugExit } from "../../../vmm/devices/debug-ports/debug-ports.ts"
import { accesses, checkRead, isU32, must, type Ops, offsetArb, opList, rd, wr } from "./ops.ts"

export type DebugPortsCase = { readonly device: "debug-ports"; readonly ops: Ops }

export const debugCase: fc.Arbitrary<DebugPortsCase> = fc.record({
  device: fc.constant("debug-ports" as const),
  ops: opList(...accesses(offsetArb(5), ["debugcon", "exit"]))
})

export const checkDebugPorts = (c: DebugPortsCase): void => {
  const bytes: number[] = []
  const exits: number[] = []
  const con = new Debugcon({ sink: (b) => bytes.push(b) })
  const exit = new DebugExit({ onExit: (v) => exits.push(v) })
  for (const op of c.ops) {
    if (op.kind !== "read" && op.kind !== "write") continue
    const dev = op.port === "exit" ? exit : con
    if (op.kind === "read") checkRead(`debug-ports ${op.port}`, op, rd(dev, op.offset, op.size))
    else wr(dev, op.offset, op.size, op.value)
  }
  must(
    bytes.every((b) => Number.isInteger(b) && b >= 0 && b <= 0xff),
    `debug-ports: debugcon emitted ${JSON.stringify(bytes)}`
  )
  must(exits.every(isU32), `debug-ports: isa-debug-exit reported ${JSON.stringify(exits)}`)
  exit.reset()
  exit.write(0, 1, 0)
  must(exit.exitValue === 0, `debug-ports: after reset a write of 0 gives exit value ${exit.exitValue}`)
}
