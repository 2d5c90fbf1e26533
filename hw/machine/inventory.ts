/**
 * A human-readable inventory of the host machine, the table `fibervisor start`
 * prints (what a server's firmware setup screen or `esxcli hardware` shows).
 * Pure: config in, text out.
 */
import type { MachineConfig } from "./config.ts"

export const machineInventory = (config: MachineConfig): string => {
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
  const width = Math.max(...rows.map(([k]) => k.length))
  return rows.map(([k, v]) => `${k.padEnd(width)}  ${v}`).join("\n")
}
