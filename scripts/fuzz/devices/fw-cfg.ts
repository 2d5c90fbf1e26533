/**
 * The `fw-cfg` case of the fuzz suite `devices` (scripts/fuzz/suites/devices.ts):
 * QEMU's fw_cfg (selector / data ports, vmm/devices/fw-cfg) under random
 * traffic. After `reset()` the data port reads the "QEMU" signature
 * (selector 0, FW_CFG_SIGNATURE).
 */
import fc from "fast-check"
import { FwCfg } from "../../../vmm/devices/fw-cfg/fw-cfg.ts"
import { accesses, checkRead, must, type Ops, offsetArb, opList, rd, wr } from "./ops.ts"

export type FwCfgCase = { readonly device: "fw-cfg"; readonly ops: Ops }

export const fwCfgCase: fc.Arbitrary<FwCfgCase> = fc.record({
  device: fc.constant("fw-cfg" as const),
  ops: opList(...accesses(offsetArb(3)))
})

export const checkFwCfg = (c: FwCfgCase): void => {
  const fw = new FwCfg({ cpus: 2, ramBytes: 1 << 20, files: [{ name: "opt/x", data: Uint8Array.of(9) }] })
  for (const op of c.ops) {
    if (op.kind === "read") checkRead("fw-cfg", op, rd(fw, op.offset, op.size))
    else if (op.kind === "write") wr(fw, op.offset, op.size, op.value)
  }
  fw.reset()
  const signature = [1, 2, 3, 4].map(() => fw.read(1, 1))
  must(
    JSON.stringify(signature) === JSON.stringify([0x51, 0x45, 0x4d, 0x55]),
    `fw-cfg: after reset the signature reads ${JSON.stringify(signature)}, not "QEMU"`
  )
}
