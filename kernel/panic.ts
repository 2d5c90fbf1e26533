/**
 * Kernel panic: the path for hypervisor bugs only. It stops every pCPU and
 * ends the kernel with a full diagnostic dump: the registers of every pCPU,
 * the world list, and the recent trace (the purple screen of ESX).
 * Guest-caused conditions never come here: they are typed errors that end
 * or reset one VM.
 */
import { Effect, Schema } from "effect"
import { disassemble } from "../hw/cpu/disasm.ts"
import type { Machine } from "../hw/machine/machine.ts"
import type { TraceEvent } from "./trace/trace.ts"

export class KernelPanic extends Schema.TaggedError<KernelPanic>()("KernelPanic", {
  message: Schema.String,
  dump: Schema.String
}) {}

const hex = (n: number) => (n >>> 0).toString(16).padStart(8, "0")

/** The diagnostic dump: one block per pCPU, then the worlds, then the trace tail. */
export const panicDump = (
  message: string,
  machine: Machine,
  worlds: ReadonlyArray<string>,
  trace: ReadonlyArray<TraceEvent>
): string => {
  const lines = [`*** fibervisor PANIC at ${machine.now} ns virtual: ${message}`]
  machine.cpus.forEach((cpu, i) => {
    const s = cpu.getState()
    const lin = (s.cs.base + s.eip) >>> 0
    const code =
      lin < machine.ram.length ? disassemble(machine.ram, lin, s.eip, (s.cs.access & 0x4000) !== 0).text : "?"
    lines.push(
      `pCPU ${i}: eip=${hex(s.eip)} eflags=${hex(s.eflags)} cr0=${hex(s.cr0)} cr3=${hex(s.cr3)} cycles=${cpu.cycles}${cpu.vmcs ? " (in a guest)" : ""}`,
      `  eax=${hex(s.eax)} ebx=${hex(s.ebx)} ecx=${hex(s.ecx)} edx=${hex(s.edx)} esi=${hex(s.esi)} edi=${hex(s.edi)} ebp=${hex(s.ebp)} esp=${hex(s.esp)}`,
      `  cs=${s.cs.selector.toString(16)} ss=${s.ss.selector.toString(16)} ds=${s.ds.selector.toString(16)}  next: ${code}`
    )
  })
  lines.push(`worlds (${worlds.length}): ${worlds.join(", ") || "none"}`)
  lines.push(`last ${trace.length} trace events:`)
  for (const e of trace) lines.push(`  ${JSON.stringify(e)}`)
  return lines.join("\n")
}

/** Stop every pCPU and die with the dump (a defect, not a typed error: nothing may recover from it). */
export const panic = (
  message: string,
  machine: Machine,
  worlds: ReadonlyArray<string>,
  trace: ReadonlyArray<TraceEvent>
): Effect.Effect<never> =>
  Effect.suspend(() => {
    for (const cpu of machine.cpus) cpu.requestStop()
    return Effect.die(new KernelPanic({ message, dump: panicDump(message, machine, worlds, trace) }))
  })
