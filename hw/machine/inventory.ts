/**
 * A human-readable inventory of the host machine, the table `fibervisor
 * start` prints (what a server's firmware setup screen or `esxcli hardware`
 * shows). It is read back from the firmware table in the machine's ROM,
 * exactly as the vmkernel discovers the hardware. Pure: machine in, text out.
 */
import { decodeFirmwareTable } from "../firmware/table.ts"
import type { MachineConfig } from "./config.ts"
import type { Machine } from "./machine.ts"

const hex = (n: number) => `0x${n.toString(16).padStart(n > 0xffff ? 8 : 4, "0")}`

export const machineInventory = (config: MachineConfig, machine?: Machine): string => {
  const rows: Array<[string, string]> = [
    ["host", config.name],
    ["pCPUs", `${config.pcpus} x IA-32 (VT-x-like extension with EPT)`],
    ["machine RAM", `${config.ramMiB} MiB`],
    ["cost profile", config.costProfile],
    ["seed", String(config.seed)],
    ["console", `16550 UART -> ${config.uart.backend}`],
    [
      "timer",
      config.timer.kind === "both" ? "PIT 8254 + PIC 8259, local APIC timer" : config.timer.kind.replace("-", " + ")
    ],
    ["datastore", config.block === null ? "none" : `${config.block.path} (${config.block.sizeMiB} MiB)`],
    ["NIC", `back-end ${config.nic.backend}`]
  ]
  if (machine !== undefined) {
    const decoded = decodeFirmwareTable(machine.firmware)
    if (!decoded.ok) rows.push(["firmware table", `INVALID: ${decoded.error.message}`])
    else {
      const t = decoded.table
      rows.push([
        "firmware table",
        `FVFW v1 in ROM: ${t.cpus.length} CPUs, ${t.memory.length} memory regions, ${t.devices.length} devices`
      ])
      for (const m of t.memory) rows.push([`  memory ${m.type}`, `${hex(m.base)}-${hex(m.base + m.length - 1)}`])
      for (const d of t.devices) {
        rows.push([
          `  device ${d.type}`,
          `${d.space} ${hex(d.base)} +${d.length}${d.irq === null ? "" : `, IRQ ${d.irq}`}`
        ])
      }
    }
  }
  const width = Math.max(...rows.map(([k]) => k.length))
  return rows.map(([k, v]) => `${k.padEnd(width)}  ${v}`).join("\n")
}
