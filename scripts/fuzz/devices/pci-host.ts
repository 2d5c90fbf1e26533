/**
 * The `pci-host` case of the fuzz suite `devices` (scripts/fuzz/suites/devices.ts):
 * the i440FX host bridge's configuration mechanism #1 (0xCF8 / 0xCFC,
 * vmm/devices/pci-host) under random address / data traffic. After `reset()`
 * the host bridge answers with its i440FX ID and an empty slot reads all-ones.
 */
import fc from "fast-check"
import { PciHost } from "../../../vmm/devices/pci-host/pci-host.ts"
import { accesses, checkRead, hex, must, type Ops, offsetArb, opList, rd, wr } from "./ops.ts"

export type PciHostCase = { readonly device: "pci-host"; readonly ops: Ops }

export const pciCase: fc.Arbitrary<PciHostCase> = fc.record({
  device: fc.constant("pci-host" as const),
  ops: opList(...accesses(offsetArb(8)))
})

export const checkPciHost = (c: PciHostCase): void => {
  const host = new PciHost({ onReset: () => {} })
  for (const op of c.ops) {
    if (op.kind === "read") checkRead("pci-host", op, rd(host, op.offset, op.size))
    else if (op.kind === "write") wr(host, op.offset, op.size, op.value)
  }
  host.reset()
  host.write(0, 4, 0x8000_0000)
  const id = host.read(4, 4)
  must(id === 0x1237_8086, `pci-host: after reset 00:00.0 ID reads ${hex(id)}, not the i440FX 0x12378086`)
  host.write(0, 4, 0x8000_0800)
  const empty = host.read(4, 2)
  must(empty === 0xffff, `pci-host: an empty slot's vendor ID reads ${hex(empty)}, not 0xffff`)
}
