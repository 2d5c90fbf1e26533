/**
 * `bench exits`: the cost of a VM exit, two ways.
 * - Host speed: VM exits handled per second of wall clock, for a guest that
 *   does nothing but exit: an I/O-port loop (`out dx, al` to COM1's scratch
 *   register 0x3FF, a device write with no side effect) and a CPUID loop.
 *   Each exit goes the whole way: vmenter, the exit raised by the guest's
 *   instruction, the VMM's dispatch, the instruction emulator, the port bus,
 *   back into the guest. Best of `repeats` runs.
 * - Simulated cost: cycles of virtual time per exit under each cost profile
 *   (hw/machine/cost-profiles.ts): the VM's used time (the scheduler's
 *   accounting) in cycles at the profile's clock, over the exits it took.
 *   This is the guest's loop body plus the profile's entry and exit costs,
 *   and is deterministic.
 * The guests are raw flat 32-bit code at 1 MiB on a booted vmkernel (one
 * pCPU, one VM with the standard PC devices); they leave through
 * isa-debug-exit (port 0xF4). Wall time is read here, in scripts/, the only
 * layer allowed to.
 */
import { Effect } from "effect"
import { type CostProfileName, decodeMachineConfig, defaultMachineConfig } from "../../hw/machine/config.ts"
import { costProfiles } from "../../hw/machine/cost-profiles.ts"
import { Machine } from "../../hw/machine/machine.ts"
import { Kernel } from "../../kernel/boot.ts"
import { Worlds } from "../../kernel/sched/runtime.ts"
import { defaultVmConfig } from "../../vmm/config.ts"
import type { ExitCounters } from "../../vmm/exits/types.ts"
import { flat32Payload } from "../../vmm/loader/raw-payload.ts"
import { addStandardDevices } from "../../vmm/platform/standard.ts"
import { createVm } from "../../vmm/vm.ts"

const le32 = (n: number) => [n & 0xff, (n >>> 8) & 0xff, (n >>> 16) & 0xff, n >>> 24]

export interface ExitGuest {
  readonly name: string
  readonly description: string
  readonly source: ReadonlyArray<string>
  /** The code for `iterations` loop iterations (one exit each), ending with a debug exit of 0. */
  readonly bytes: (iterations: number) => ReadonlyArray<number>
  /** The counter its loop's exits land in. */
  readonly counter: keyof ExitCounters
}

/** `out dx, al` to COM1's scratch register (0x3FF) ECX times, then `out 0xf4, al` with AL = 0. */
export const ioGuest: ExitGuest = {
  name: "io",
  description: "out dx, al to COM1 scratch (0x3FF)",
  source: ["mov ecx, N", "mov dx, 0x3ff", "xor eax, eax", "l: out dx, al", "dec ecx", "jnz l", "out 0xf4, al", "hlt"],
  bytes: (n) => [
    ...[0xb9, ...le32(n)], // mov ecx, n
    ...[0x66, 0xba, 0xff, 0x03], // mov dx, 0x3ff
    ...[0x31, 0xc0], // xor eax, eax
    0xee, // l: out dx, al
    0x49, // dec ecx
    ...[0x75, 0xfc], // jnz l
    ...[0xe6, 0xf4], // out 0xf4, al
    0xf4 // hlt
  ],
  counter: "exit_io_out"
}

/** CPUID leaf 0 ESI times (CPUID writes ECX), then the debug exit. */
export const cpuidGuest: ExitGuest = {
  name: "cpuid",
  description: "cpuid (leaf 0)",
  source: ["mov esi, N", "l: xor eax, eax", "cpuid", "dec esi", "jnz l", "xor eax, eax", "out 0xf4, al", "hlt"],
  bytes: (n) => [
    ...[0xbe, ...le32(n)], // mov esi, n
    ...[0x31, 0xc0], // l: xor eax, eax
    ...[0x0f, 0xa2], // cpuid
    0x4e, // dec esi
    ...[0x75, 0xf9], // jnz l
    ...[0x31, 0xc0], // xor eax, eax
    ...[0xe6, 0xf4], // out 0xf4, al
    0xf4 // hlt
  ],
  counter: "exit_cpuid"
}

export const exitGuests = [ioGuest, cpuidGuest] as const

export interface ExitRun {
  readonly guest: string
  readonly profile: CostProfileName
  /** Every exit the VM took (the loop's, the final debug exit, preemption-timer exits at quantum ends). */
  readonly exits: number
  /** Exits of the loop's own kind (I/O out, CPUID). */
  readonly loopExits: number
  readonly exitsByReason: Readonly<Record<string, number>>
  readonly instructions: number
  /** Cycles of virtual time the VM used (scheduler accounting, at the profile's clock). */
  readonly simulatedCycles: number
  readonly simulatedNs: number
  readonly wallMs: number
  readonly ended: string
}

/** Boot a one-pCPU host with `profile`, run `guest` for `iterations` exits, time the run (not the boot). */
export const runExitGuest = (guest: ExitGuest, iterations: number, profile: CostProfileName): Effect.Effect<ExitRun> =>
  Effect.gen(function* () {
    const config = yield* decodeMachineConfig(
      "bench exits host",
      JSON.stringify({ ...defaultMachineConfig, pcpus: 1, ramMiB: 64, costProfile: profile, uart: { backend: "none" } })
    ).pipe(Effect.orDie)
    const machine = new Machine(config)
    return yield* Effect.gen(function* () {
      const vm = yield* createVm(defaultVmConfig(guest.name, "inline"), flat32Payload(guest.bytes(iterations)), {
        console: () => {}
      }).pipe(Effect.orDie)
      addStandardDevices(vm)
      const worlds = yield* Worlds
      const slice = 100_000_000
      const start = performance.now()
      // generous: a few thousand simulated cycles per exit at the slowest profile's clock
      const limitNs = 1e9 + iterations * 2_000
      for (let t = 0; t < limitNs && vm.ended === undefined; t += slice) yield* worlds.runFor(slice)
      const wallMs = performance.now() - start
      const stats = yield* worlds.stats
      const usedNs = stats.vms.find((v) => v.name === vm.name)?.used ?? 0
      const exitsByReason = Object.fromEntries(Object.entries(vm.counters).filter(([, n]) => n > 0))
      const exits = Object.values(vm.counters).reduce((a, b) => a + b, 0)
      return {
        guest: guest.name,
        profile,
        exits,
        loopExits: vm.counters[guest.counter],
        exitsByReason,
        instructions: vm.instructions,
        simulatedCycles: Math.round((usedNs * costProfiles[profile].clockHz) / 1e9),
        simulatedNs: usedNs,
        wallMs,
        ended:
          vm.ended === undefined
            ? "still running"
            : vm.ended._tag === "DebugExit"
              ? `debug-exit ${vm.ended.code}`
              : vm.ended._tag
      }
    }).pipe(Effect.provide(Kernel.boot(machine)), Effect.scoped)
  }).pipe(Effect.orDie)

export interface ExitsRow {
  readonly guest: string
  readonly description: string
  readonly profile: CostProfileName
  readonly exits: number
  readonly loopExits: number
  readonly exitsByReason: Readonly<Record<string, number>>
  /** Best of the repeats. */
  readonly bestWallMs: number
  readonly exitsPerSecond: number
  readonly simulatedCycles: number
  readonly cyclesPerExit: number
  /** The profile's own VM entry + VM exit cycles (the rest of cyclesPerExit is the guest's loop). */
  readonly transitionCycles: number
}

export interface ExitsReport {
  readonly iterations: { readonly io: number; readonly cpuid: number }
  readonly repeats: number
  readonly rows: ReadonlyArray<ExitsRow>
}

export interface ExitsOptions {
  /** Loop iterations (exits) of the I/O guest per run. */
  readonly ioIterations: number
  /** Loop iterations (exits) of the CPUID guest per run. */
  readonly cpuidIterations: number
  /** Timed runs per guest and profile (best is reported). */
  readonly repeats: number
  /** Cost profiles to run under (default: all of them). */
  readonly profiles?: ReadonlyArray<CostProfileName>
}

export const defaultExitsOptions: ExitsOptions = { ioIterations: 1_000_000, cpuidIterations: 500_000, repeats: 3 }

/** Effect-returning: every guest under every cost profile, `repeats` timed runs each after a warm-up. */
export const benchExits = (options: ExitsOptions = defaultExitsOptions): Effect.Effect<ExitsReport> =>
  Effect.gen(function* () {
    const profiles = options.profiles ?? (Object.keys(costProfiles) as Array<CostProfileName>)
    const rows: Array<ExitsRow> = []
    for (const guest of exitGuests) {
      const iterations = guest === ioGuest ? options.ioIterations : options.cpuidIterations
      yield* runExitGuest(guest, Math.min(iterations, 100_000), profiles[0]!) // warm up the JIT
      for (const profile of profiles) {
        let best: ExitRun | undefined
        for (let i = 0; i < Math.max(1, options.repeats); i++) {
          const run = yield* runExitGuest(guest, iterations, profile)
          if (run.ended !== "debug-exit 0") {
            return yield* Effect.die(new Error(`bench exits: guest ${guest.name} ended with ${run.ended}`))
          }
          if (best === undefined || run.wallMs < best.wallMs) best = run
        }
        const p = costProfiles[profile]
        rows.push({
          guest: guest.name,
          description: guest.description,
          profile,
          exits: best!.exits,
          loopExits: best!.loopExits,
          exitsByReason: best!.exitsByReason,
          bestWallMs: best!.wallMs,
          exitsPerSecond: best!.exits / (best!.wallMs / 1000),
          simulatedCycles: best!.simulatedCycles,
          cyclesPerExit: best!.simulatedCycles / best!.exits,
          transitionCycles: p.vmEntry + p.vmExit
        })
      }
    }
    return {
      iterations: { io: options.ioIterations, cpuid: options.cpuidIterations },
      repeats: options.repeats,
      rows
    }
  })

const group = (n: number) => Math.round(n).toLocaleString("en-US")

export const formatExits = (report: ExitsReport): string => {
  const header = ["guest", "profile", "exits", "best ms", "exits/s", "sim cycles/exit", "(entry+exit)"]
  const body = report.rows.map((r) => [
    r.guest,
    r.profile,
    group(r.exits),
    r.bestWallMs.toFixed(1),
    group(r.exitsPerSecond),
    r.cyclesPerExit.toFixed(1),
    group(r.transitionCycles)
  ])
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((row) => row[i]!.length)))
  const fmt = (row: ReadonlyArray<string>) =>
    row.map((cell, i) => (i < 2 ? cell.padEnd(widths[i]!) : cell.padStart(widths[i]!))).join("  ")
  const guests = exitGuests.map((g) => `${g.name}: ${g.description}`).join("; ")
  return [
    `VM exits handled per wall second (best of ${report.repeats}) and simulated cycles per exit; ${guests}`,
    fmt(header),
    ...body.map(fmt)
  ].join("\n")
}
