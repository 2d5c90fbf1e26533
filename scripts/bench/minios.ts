/**
 * `bench minios`: an OS-shaped workload. images/minios is a ring-3
 * multitasking kernel (paging, a TSS, INT 0x80 system calls, demand-paged
 * user stacks, a 10 kHz preemptive scheduler, spawn/wait); it runs a fixed
 * job and ends with a summary line of what it did, counted by the guest
 * itself (the same on any machine, QEMU included):
 *   "minios: 6 processes, 17 page faults, 51 system calls, all exited correctly"
 * (page faults: the demand faults it served; the kill of the misbehaving
 * child is one #PF more). Those counts over the VM's virtual time (its
 * clock when the guest wrote to isa-debug-exit) give system calls, page
 * faults and process creations per simulated second, under every execution
 * mode that is built (vmm/config.ts availableModes: new modes appear here by
 * themselves; `pv` runs the image's PV build, minios-pv.elf) and every cost profile (the profile sets what an instruction,
 * a page walk, an event delivery and a VM transition cost in virtual time).
 * Deterministic; the wall time is reported beside it, read here in scripts/.
 */
import { existsSync, readFileSync } from "node:fs"
import { fileURLToPath } from "node:url"
import { Effect } from "effect"
import type { CostProfileName } from "../../hw/machine/config.ts"
import { costProfiles } from "../../hw/machine/cost-profiles.ts"
import { availableModes, type ExecutionMode } from "../../vmm/config.ts"

import { runBenchVm } from "./vm-run.ts"

export const MINIOS_IMAGE = fileURLToPath(new URL("../../images/minios/minios.elf", import.meta.url))

/** The PV build of an image (scripts/images/build.ts): `<name>-pv.elf` next to `<name>.elf`. */
export const pvBuildOf = (path: string): string => path.replace(/\.elf$/, "-pv.elf")

const SUMMARY = /minios: (\d+) processes, (\d+) page faults, (\d+) system calls, all exited correctly/

export interface MiniosCounts {
  readonly processes: number
  readonly pageFaults: number
  readonly syscalls: number
}

/** The guest's own counts from its console output (undefined: no summary line, the run failed). */
export const parseMiniosSummary = (serial: string): MiniosCounts | undefined => {
  const m = SUMMARY.exec(serial)
  return m === null ? undefined : { processes: Number(m[1]), pageFaults: Number(m[2]), syscalls: Number(m[3]) }
}

export interface MiniosRow extends MiniosCounts {
  readonly mode: ExecutionMode
  readonly profile: CostProfileName
  /** The VM's virtual time when the guest ended (ns). */
  readonly simulatedNs: number
  readonly syscallsPerSecond: number
  readonly pageFaultsPerSecond: number
  readonly processesPerSecond: number
  readonly instructions: number
  readonly exits: Readonly<Record<string, number>>
  readonly wallMs: number
}

export interface MiniosReport {
  readonly image: string
  readonly rows: ReadonlyArray<MiniosRow>
}

export interface MiniosOptions {
  /** Execution modes (default: every available mode). */
  readonly modes?: ReadonlyArray<ExecutionMode>
  /** Cost profiles (default: all). */
  readonly profiles?: ReadonlyArray<CostProfileName>
  /** The minios ELF (default: the committed images/minios/minios.elf). */
  readonly image?: string
}

const MEMORY_MIB = 16
/** Virtual time the guest may take before the run counts as failed (it needs about 5 ms). */
const MAX_NS = 2_000_000_000

/** One minios run on a one-pCPU host with `profile`, its VM in `mode`. */
export const runMinios = (image: Uint8Array, mode: ExecutionMode, profile: CostProfileName): Effect.Effect<MiniosRow> =>
  Effect.gen(function* () {
    const run = yield* runBenchVm(image, {
      name: "minios",
      profile,
      memoryMiB: MEMORY_MIB,
      vm: { mode },
      maxNs: MAX_NS
    })
    const counts = parseMiniosSummary(run.serial)
    if (run.ended?._tag !== "DebugExit" || run.ended.code !== 0 || counts === undefined) {
      const how = run.ended === undefined ? "still running" : JSON.stringify(run.ended)
      return yield* Effect.die(
        new Error(`bench minios (${mode}, ${profile}): the guest failed (${how}):\n${run.serial}`)
      )
    }
    const seconds = run.simulatedNs / 1e9
    return {
      mode,
      profile,
      ...counts,
      simulatedNs: run.simulatedNs,
      syscallsPerSecond: counts.syscalls / seconds,
      pageFaultsPerSecond: counts.pageFaults / seconds,
      processesPerSecond: counts.processes / seconds,
      instructions: run.instructions,
      exits: run.exits,
      wallMs: run.wallMs
    }
  })

/** Effect-returning: minios under every (mode, cost profile) pair. */
export const benchMinios = (options: MiniosOptions = {}): Effect.Effect<MiniosReport> =>
  Effect.gen(function* () {
    const path = options.image ?? MINIOS_IMAGE
    const image = yield* Effect.try(() => new Uint8Array(readFileSync(path))).pipe(Effect.orDie)
    // `pv` runs the PV build of the same source next to it (<name>-pv.elf), when there is one
    const pvPath = pvBuildOf(path)
    const rows: Array<MiniosRow> = []
    // `trap` is a demonstration that x86 cannot be virtualized that way, not a mode to measure
    const modes = options.modes ?? availableModes.filter((m) => m !== "trap" && (m !== "pv" || existsSync(pvPath)))
    for (const mode of modes) {
      const bytes =
        mode === "pv" ? yield* Effect.try(() => new Uint8Array(readFileSync(pvPath))).pipe(Effect.orDie) : image
      for (const profile of options.profiles ?? (Object.keys(costProfiles) as Array<CostProfileName>))
        rows.push(yield* runMinios(bytes, mode, profile))
    }
    return { image: path, rows }
  })

const rate = (n: number) => Math.round(n).toLocaleString("en-US")

export const formatMinios = (report: MiniosReport): string => {
  const header = [
    "mode",
    "profile",
    "sim ms",
    "syscalls/s",
    "page faults/s",
    "processes/s",
    "counts (sc/pf/proc)",
    "wall ms"
  ]
  const body = report.rows.map((r) => [
    r.mode,
    r.profile,
    (r.simulatedNs / 1e6).toFixed(3),
    rate(r.syscallsPerSecond),
    rate(r.pageFaultsPerSecond),
    rate(r.processesPerSecond),
    `${r.syscalls}/${r.pageFaults}/${r.processes}`,
    r.wallMs.toFixed(0)
  ])
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((row) => row[i]!.length)))
  const fmt = (row: ReadonlyArray<string>) =>
    row.map((cell, i) => (i < 2 ? cell.padEnd(widths[i]!) : cell.padStart(widths[i]!))).join("  ")
  return [
    "minios: system calls, page faults and process creations per simulated second (counts from the guest's summary line)",
    fmt(header),
    ...body.map(fmt)
  ].join("\n")
}
