/**
 * The benchmarks `fibervisor bench` runs (issue 9), in `all` order, each with
 * the headline numbers its summary row shows against this round's targets.
 * The machine they ran on is part of every report: ratios measured in one run
 * on one machine are what count.
 */
import { cpus, totalmem } from "node:os"
import { Effect } from "effect"
import { benchBoot, formatBoot } from "./boot.ts"
import { benchCpuPeers, cpuPeersHeadlines, formatCpuPeers } from "./cpu-peers.ts"
import { benchDensity, formatDensity } from "./density.ts"
import { benchExits, formatExits } from "./exits.ts"
import { benchMinios, formatMinios } from "./minios.ts"
import { benchModes, formatModes, modesSvg } from "./modes.ts"
import { benchSched, formatSchedBench } from "./sched.ts"

/** One summary row: a measured number, its unit, and the target it is held to (if any). */
export interface Headline {
  readonly metric: string
  readonly value: number
  readonly unit: string
  /** e.g. ">= 0.6" or "< 20"; undefined: reported, no target this round. */
  readonly target?: string
  readonly met?: boolean
}

export interface Benchmark<R = unknown> {
  readonly name: string
  readonly description: string
  readonly run: Effect.Effect<R>
  readonly format: (report: R) => string
  readonly headlines: (report: R) => ReadonlyArray<Headline>
  /** A chart of the report as an SVG document, which the bench command writes to its --svg file. */
  readonly svg?: (report: R) => string
}

const benchmark = <R>(b: Benchmark<R>): Benchmark => b as unknown as Benchmark

export const benchmarks: ReadonlyArray<Benchmark> = [
  benchmark({
    name: "cpu",
    description:
      "guest MIPS of the ALU and memory loops, the same Multiboot image on fibervisor, v86 (with and without its JIT) and QEMU TCG",
    run: Effect.promise(() => benchCpuPeers()),
    format: formatCpuPeers,
    headlines: cpuPeersHeadlines
  }),
  benchmark({
    name: "exits",
    description:
      "VM exits handled per second (wall) for an I/O-port guest and a CPUID loop, simulated cycles per exit per cost profile",
    run: benchExits(),
    format: formatExits,
    headlines: (r) =>
      r.rows.map((row) => {
        const io = row.guest === "io"
        return {
          metric: `exits ${row.guest} (${row.profile})`,
          value: row.exitsPerSecond,
          unit: "exits/s",
          ...(io ? { target: ">= 1,000,000", met: row.exitsPerSecond >= 1_000_000 } : {})
        }
      })
  }),
  benchmark({
    name: "boot",
    description: "wall time from power-on to hello's first serial byte, and VMs created+booted per second",
    run: benchBoot(),
    format: formatBoot,
    headlines: (r) => [
      {
        metric: "boot to first byte (median, power-on incl.)",
        value: r.powerOn.total,
        unit: "ms",
        target: "< 20",
        met: r.powerOn.total < 20
      },
      {
        metric: "boot to first byte (first boot in this process)",
        value: r.cold.total,
        unit: "ms",
        target: "< 20",
        met: r.cold.total < 20
      },
      { metric: "VMs created+booted, sequential", value: r.sequential.perSecond, unit: "/s" },
      { metric: `VMs created+booted, ${r.batched.batch} at once`, value: r.batched.perSecond, unit: "/s" }
    ]
  }),
  benchmark({
    name: "density",
    description:
      "the most idle 1-MiB VMs one process runs at once in 8 GiB, and memory overhead per VM beyond its frames",
    run: benchDensity(),
    format: formatDensity,
    headlines: (r) => [
      { metric: "concurrent idle 1-MiB VMs", value: r.largest, unit: "VMs", target: ">= 1000", met: r.largest >= 1000 },
      {
        metric: `overhead per VM at ${r.largest} VMs`,
        value: r.overheadPerVm / 1024,
        unit: "KiB",
        target: "< 256",
        met: r.overheadPerVm < 256 * 1024
      }
    ]
  }),
  benchmark({
    name: "sched",
    description: "world switches per second and Effect overhead per quantum",
    run: benchSched({ slices: 200_000, burnIterations: 300_000 }),
    format: formatSchedBench,
    headlines: (r) => [
      { metric: "world switches", value: r.switchesPerSecond, unit: "/s" },
      { metric: "Effect overhead per quantum", value: r.overheadPercent, unit: "%" }
    ]
  }),
  benchmark({
    name: "minios",
    description: "system calls, page faults and process creations per simulated second, per mode and cost profile",
    run: benchMinios(),
    format: formatMinios,
    headlines: (r) =>
      r.rows.map((row) => ({
        metric: `minios syscalls (${row.mode}, ${row.profile})`,
        value: row.syscallsPerSecond,
        unit: "/sim s"
      }))
  }),
  benchmark({
    name: "modes",
    description:
      "the ASPLOS 2006 nanobenchmarks (simulated ticks per op) natively and under emu, bt, pv, hw --ept off and hw, per cost profile, beside the paper's figures; minios per mode",
    run: benchModes(),
    format: formatModes,
    headlines: (r) =>
      r.rows
        .filter((row) => row.ticks.syscall !== undefined && row.ticks.pgfault !== undefined)
        .flatMap((row) => [
          { metric: `nanobench syscall (${row.mode}, ${row.profile})`, value: row.ticks.syscall!, unit: "ticks/op" },
          { metric: `nanobench pgfault (${row.mode}, ${row.profile})`, value: row.ticks.pgfault!, unit: "ticks/op" }
        ]),
    svg: modesSvg
  })
]

export interface MachineInfo {
  readonly cpu: string
  readonly cores: number
  readonly memoryGiB: number
  readonly node: string
  readonly date: string
}

export const machineInfo = (): MachineInfo => ({
  cpu: cpus()[0]?.model.trim() ?? "unknown CPU",
  cores: cpus().length,
  memoryGiB: Math.round(totalmem() / 2 ** 30),
  node: process.versions.node,
  date: new Date().toISOString().slice(0, 10)
})

const number = (v: number) =>
  Math.abs(v) >= 1000
    ? Math.round(v).toLocaleString("en-US")
    : v.toLocaleString("en-US", { maximumSignificantDigits: 3 })

/** The summary table: metric, value, unit, target, met. */
export const formatSummary = (rows: ReadonlyArray<Headline>): string => {
  const cells = rows.map((r) => [
    r.metric,
    number(r.value),
    r.unit,
    r.target ?? "",
    r.met === undefined ? "" : r.met ? "yes" : "NO"
  ])
  const header = ["metric", "value", "unit", "target", "met"]
  const widths = header.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i]!.length)))
  const line = (c: ReadonlyArray<string>) =>
    c
      .map((x, i) => (i === 1 ? x.padStart(widths[i]!) : x.padEnd(widths[i]!)))
      .join("  ")
      .trimEnd()
  return [line(header), ...cells.map(line)].join("\n")
}
