/**
 * `bench density` (issue 9): how many small idle VMs one process runs at
 * once, and what each costs beyond its guest memory (Firecracker: < 5 MiB
 * per microVM; fibervisor's target: >= 1,000 idle 1-MiB VMs at < 256 KiB
 * each, in an 8 GiB budget).
 *
 * Each step boots one host sized for N VMs (RAM for N guests plus their EPT
 * tables, at most the 3.5 GiB a host can have; beyond that memory is
 * overcommitted, which lazy backing allows), creates N VMs of `guestMiB`
 * with the standard PC devices, each running the idle guest
 * (idle-guest.ts: a 100 Hz PIT tick, HLT in between), runs `virtualMs` of
 * virtual time, and measures with `process.memoryUsage()` after `gc()`:
 *
 *   baseline   after the host is up and 16 VMs per pCPU were created, run
 *              and destroyed (V8 has compiled the code paths, each pCPU
 *              has all its tagged TLB sets), before the N VMs
 *   after      the N VMs created and run for `virtualMs`
 *
 *   machine frames per VM  (guest frames backed + EPT table frames) x 4 KiB,
 *                          from the memory manager; they live in the host's
 *                          RAM buffer (allocated before the baseline) and
 *                          count in RSS once touched (zeroed at allocation)
 *   overhead per VM        what the process spends per VM beyond those
 *                          frames: the larger of
 *                            heap: (heapUsed + external) growth / N (V8
 *                              objects and typed arrays, touched or not)
 *                            RSS:  RSS growth / N - machine frames per VM
 *
 * Each N runs in a fresh `node --expose-gc` child (a clean heap; RSS never
 * shrinks back); N grows through `counts` until a step fails, its peak RSS
 * passes the memory budget, or the next step would not fit the time budget.
 * The wall clock is read here, in scripts/, the only layer allowed to.
 */
import { execFile } from "node:child_process"
import { resolve } from "node:path"
import { fileURLToPath } from "node:url"
import { Effect, Exit, Scope } from "effect"
import { MachineMemory } from "../../kernel/memory/service.ts"
import { Worlds } from "../../kernel/sched/runtime.ts"
import { defaultVmConfig } from "../../vmm/config.ts"
import { addStandardDevices } from "../../vmm/platform/standard.ts"
import { createVm, type VirtualMachine } from "../../vmm/vm.ts"
import { type BootedHost, bootKernel, collectGarbage, MAX_HOST_RAM_MIB, powerOn } from "./host.ts"
import { IDLE_TICK_HZ, idleGuestPayload, TICKS_ADDRESS } from "./idle-guest.ts"

export interface DensityOptions {
  /** The VM counts to try, ascending. */
  readonly counts: ReadonlyArray<number>
  /** Guest RAM per VM (MiB). */
  readonly guestMiB: number
  /** Virtual time the VMs run before the measurement (ms). */
  readonly virtualMs: number
  /** pCPUs of the host. */
  readonly pcpus: number
  /** Process memory budget (MiB): no step may pass it (peak RSS); also the child's V8 heap limit. */
  readonly memoryBudgetMiB: number
  /** Wall-time budget for the whole benchmark (s): a step that would not fit is not started. */
  readonly timeBudgetS: number
  /** Measure in this process instead of a fresh child per step (tests; the heap holds what ran before). */
  readonly inProcess: boolean
}

export const defaultDensityOptions: DensityOptions = {
  counts: [250, 500, 1000, 2000, 4000, 8000, 16000],
  guestMiB: 1,
  virtualMs: 100,
  pcpus: 2,
  memoryBudgetMiB: 8192,
  timeBudgetS: 90,
  inProcess: false
}

export interface MemorySample {
  readonly rss: number
  readonly heapUsed: number
  readonly heapTotal: number
  readonly external: number
  readonly arrayBuffers: number
}

export interface DensityStep {
  readonly vms: number
  /** Every VM alive, halted at the end, and ticked as often as virtual time says. */
  readonly ok: boolean
  readonly problems: ReadonlyArray<string>
  readonly hostRamMiB: number
  /** The VMs' guest RAM adds up to more than the host has (lazy backing covers it). */
  readonly overcommitted: boolean
  readonly createMs: number
  /** Wall time to run `virtualMs` of virtual time with every VM. */
  readonly runMs: number
  readonly virtualMs: number
  /** Timer interrupts counted by the guests: fewest, most, and what virtual time predicts. */
  readonly ticks: { readonly min: number; readonly max: number; readonly expected: number }
  /** Guest instructions per VM, on average. */
  readonly instructionsPerVm: number
  /** Share of the host's virtual pCPU time the VMs used while running (100 %: saturated, ticks get lost). */
  readonly pcpuBusyPercent: number
  readonly guestFrames: number
  readonly tableFrames: number
  readonly baseline: MemorySample
  readonly after: MemorySample
  /** Peak RSS of the process (bytes). */
  readonly peakRss: number
  /** Per VM, bytes: */
  readonly perVm: {
    readonly guestFrames: number
    readonly tableFrames: number
    readonly heap: number
    readonly rss: number
    /** max(heap, rss - guest frames - table frames): the headline. */
    readonly overhead: number
  }
}

export interface DensityReport {
  readonly options: DensityOptions
  readonly steps: ReadonlyArray<DensityStep>
  /** The largest N that ran with every check passing. */
  readonly largest: number
  /** Overhead per VM (bytes) at `largest`. */
  readonly overheadPerVm: number
  /**
   * RSS per added VM between the two largest good steps, minus machine
   * frames (bytes): the per-process constants (V8's heap slack, code) cancel.
   */
  readonly marginalOverheadPerVm: number | undefined
  /** Why N stopped growing. */
  readonly stoppedBecause: string
}

const MIB = 1024 * 1024
const FRAME = 4096
const SLICE_NS = 10_000_000
/** Warm-up VMs per pCPU: twice the tagged TLB sets a pCPU keeps (hw/cpu/cpu.ts MAX_TLB_SETS = 8). */
const WARM_UP_VMS = 16

const sample = (): MemorySample => {
  for (let i = 0; i < 3; i++) collectGarbage()
  const m = process.memoryUsage()
  return {
    rss: m.rss,
    heapUsed: m.heapUsed,
    heapTotal: m.heapTotal,
    external: m.external,
    arrayBuffers: m.arrayBuffers
  }
}

/** Host RAM for `vms` guests of `guestMiB` plus their EPT tables (16 KiB each) and 64 MiB for the vmkernel. */
const hostRamFor = (vms: number, guestMiB: number) =>
  Math.min(MAX_HOST_RAM_MIB, 64 + Math.ceil(vms * (guestMiB + 1 / 64)))

const createIdle = (host: BootedHost, scope: Scope.Scope, name: string, guestMiB: number) =>
  Effect.gen(function* () {
    const vm = yield* createVm({ ...defaultVmConfig(name, "idle"), memoryMiB: guestMiB }, idleGuestPayload(), {
      console: () => {}
    }).pipe(Scope.provide(scope), Effect.provideContext(host), Effect.orDie)
    addStandardDevices(vm)
    return vm
  })

/** Run `ns` of virtual time; the pCPU time used (ns, summed over pCPUs) and elapsed meanwhile. */
const runVirtual = (host: BootedHost, ns: number) =>
  Effect.gen(function* () {
    const worlds = yield* Worlds
    const before = yield* worlds.stats
    for (let t = 0; t < ns; t += SLICE_NS) yield* worlds.runFor(Math.min(SLICE_NS, ns - t))
    const after = yield* worlds.stats
    const sum = (stats: typeof before, key: "used" | "elapsed") => stats.pcpus.reduce((s, p) => s + p[key], 0)
    return { used: sum(after, "used") - sum(before, "used"), elapsed: sum(after, "elapsed") - sum(before, "elapsed") }
  }).pipe(Effect.provideContext(host))

/** One step in this process: N idle VMs on a fresh host, measured. */
export const measureDensity = (
  vms: number,
  options: Pick<DensityOptions, "guestMiB" | "virtualMs" | "pcpus">
): Effect.Effect<DensityStep> =>
  Effect.scoped(
    Effect.gen(function* () {
      const hostRamMiB = hostRamFor(vms, options.guestMiB)
      const machine = yield* powerOn({ ramMiB: hostRamMiB, pcpus: options.pcpus })
      const host = yield* bootKernel(machine)
      // warm-up: VMs created, run and destroyed, so the baseline has the compiled code and every pCPU's
      // tagged TLB sets (at most 8 per pCPU, 4 MiB each: host memory, not per VM) in it
      const warm = yield* Scope.make()
      for (let i = 0; i < WARM_UP_VMS * options.pcpus; i++) yield* createIdle(host, warm, `warm${i}`, options.guestMiB)
      yield* runVirtual(host, 2 * SLICE_NS)
      yield* Scope.close(warm, Exit.void)
      const baseline = sample()

      const scope = yield* Scope.make()
      const started = performance.now()
      const list: Array<VirtualMachine> = []
      for (let i = 0; i < vms; i++) list.push(yield* createIdle(host, scope, `idle${i}`, options.guestMiB))
      const created = performance.now()
      const virtualNs = options.virtualMs * 1e6
      const busy = yield* runVirtual(host, virtualNs)
      const ran = performance.now()

      const problems: Array<string> = []
      const ticks = list.map((vm) => vm.guest.readValue(TICKS_ADDRESS, 2))
      const expected = Math.floor((options.virtualMs * IDLE_TICK_HZ) / 1000)
      const ended = list.filter((vm) => vm.ended !== undefined)
      if (ended.length > 0)
        problems.push(`${ended.length} VM(s) ended (first: ${ended[0]!.name}: ${ended[0]!.ended!._tag})`)
      const awake = list.filter((vm) => !vm.vcpus[0]!.halted).length
      if (awake > 0) problems.push(`${awake} vCPU(s) not halted at the end`)
      const min = ticks.reduce((m, t) => Math.min(m, t), Number.POSITIVE_INFINITY)
      const max = ticks.reduce((m, t) => Math.max(m, t), 0)
      // the first tick comes one period after the guest programs the PIT: expected - 1 is on time too
      if (min < expected - 1 || max > expected)
        problems.push(`ticks ${min}..${max}, expected ${expected - 1}..${expected}`)
      const instructions = list.reduce((sum, vm) => sum + vm.instructions, 0)
      const stats = yield* MachineMemory.pipe(
        Effect.flatMap((m) => m.stats),
        Effect.provideContext(host)
      )
      let guestFrames = 0
      let tableFrames = 0
      for (const pool of stats.vms) {
        guestFrames += pool.guestFrames
        tableFrames += pool.tableFrames
      }
      const after = sample()
      const peakRss = process.resourceUsage().maxRSS * 1024
      const heap = (after.heapUsed + after.external - baseline.heapUsed - baseline.external) / vms
      const rss = (after.rss - baseline.rss) / vms
      const framesPerVm = ((guestFrames + tableFrames) * FRAME) / vms
      yield* Scope.close(scope, Exit.void)
      return {
        vms,
        ok: problems.length === 0,
        problems,
        hostRamMiB,
        overcommitted: vms * options.guestMiB > hostRamMiB - 64,
        createMs: created - started,
        runMs: ran - created,
        virtualMs: options.virtualMs,
        ticks: { min, max, expected },
        instructionsPerVm: instructions / vms,
        pcpuBusyPercent: (100 * busy.used) / Math.max(1, busy.elapsed),
        guestFrames,
        tableFrames,
        baseline,
        after,
        peakRss,
        perVm: {
          guestFrames: (guestFrames * FRAME) / vms,
          tableFrames: (tableFrames * FRAME) / vms,
          heap,
          rss,
          overhead: Math.max(heap, rss - framesPerVm)
        }
      } satisfies DensityStep
    })
  )

const CHILD_FLAG = "--density-child"
const thisFile = fileURLToPath(import.meta.url)

/** One step in a fresh `node --expose-gc` child; a failed or killed child is a failed step. */
const measureInChild = (vms: number, options: DensityOptions, timeoutMs: number): Effect.Effect<DensityStep | string> =>
  Effect.callback<DensityStep | string>((resume) => {
    const child = execFile(
      process.execPath,
      [
        "--expose-gc",
        `--max-old-space-size=${options.memoryBudgetMiB}`,
        thisFile,
        CHILD_FLAG,
        JSON.stringify({ vms, guestMiB: options.guestMiB, virtualMs: options.virtualMs, pcpus: options.pcpus })
      ],
      { maxBuffer: 16 * MIB, timeout: timeoutMs, killSignal: "SIGKILL" },
      (error, stdout, stderr) => {
        if (error !== null) {
          const why = error.killed ? `killed after ${(timeoutMs / 1000).toFixed(0)} s` : error.message.split("\n")[0]
          resume(
            Effect.succeed(`N=${vms}: the child failed (${why}) ${stderr.trim().split("\n").slice(-3).join(" | ")}`)
          )
          return
        }
        try {
          resume(Effect.succeed(JSON.parse(stdout) as DensityStep))
        } catch {
          resume(Effect.succeed(`N=${vms}: the child printed no report`))
        }
      }
    )
    return Effect.sync(() => child.kill("SIGKILL"))
  })

/** Run the density benchmark. An Effect: provide nothing, run it with Effect.runPromise or yield* it. */
export const benchDensity = (partial: Partial<DensityOptions> = {}): Effect.Effect<DensityReport> =>
  Effect.gen(function* () {
    const options = { ...defaultDensityOptions, ...partial }
    const start = performance.now()
    const budgetMs = options.timeBudgetS * 1000
    const steps: Array<DensityStep> = []
    let stoppedBecause = "every count ran"
    let lastMs = 0
    let lastN = 0
    for (const n of options.counts) {
      const elapsed = performance.now() - start
      // a step's wall time grows with N, faster once ticks pile up (see formatDensity): assume quadratically
      const predicted = lastN === 0 ? 0 : lastMs * (n / lastN) ** 2
      if (lastN > 0 && elapsed + predicted > budgetMs) {
        stoppedBecause = `N=${n} would take about ${(predicted / 1000).toFixed(0)} s, past the ${options.timeBudgetS} s budget`
        break
      }
      const t0 = performance.now()
      const result = options.inProcess
        ? yield* measureDensity(n, options)
        : yield* measureInChild(n, options, Math.round(Math.max(10_000, budgetMs - elapsed)))
      lastMs = performance.now() - t0
      lastN = n
      if (typeof result === "string") {
        stoppedBecause = result
        break
      }
      steps.push(result)
      if (!result.ok) {
        stoppedBecause = `N=${n}: ${result.problems.join("; ")}`
        break
      }
      if (result.peakRss > options.memoryBudgetMiB * MIB) {
        stoppedBecause = `N=${n}: peak RSS ${(result.peakRss / MIB).toFixed(0)} MiB passed the ${options.memoryBudgetMiB} MiB budget`
        break
      }
    }
    const good = steps.filter((s) => s.ok && s.peakRss <= options.memoryBudgetMiB * MIB)
    const best = good[good.length - 1]
    const previous = good[good.length - 2]
    const grown = (s: DensityStep) => s.after.rss - s.baseline.rss - (s.guestFrames + s.tableFrames) * FRAME
    return {
      options,
      steps,
      largest: best?.vms ?? 0,
      overheadPerVm: best?.perVm.overhead ?? Number.NaN,
      marginalOverheadPerVm:
        best !== undefined && previous !== undefined
          ? (grown(best) - grown(previous)) / (best.vms - previous.vms)
          : undefined,
      stoppedBecause
    }
  })

const kib = (bytes: number) => `${(bytes / 1024).toFixed(1)} KiB`
const mib = (bytes: number) => `${(bytes / MIB).toFixed(0)} MiB`

export const formatDensity = (r: DensityReport): string => {
  const o = r.options
  const columns = ["VMs", "create", "run", "busy", "ticks", "frames/VM", "heap/VM", "RSS/VM", "overhead/VM", "peak RSS"]
  const rows = r.steps.map((s) => [
    String(s.vms),
    `${(s.createMs / 1000).toFixed(2)} s`,
    `${(s.runMs / 1000).toFixed(2)} s`,
    `${s.pcpuBusyPercent.toFixed(0)} %`,
    `${s.ticks.min}-${s.ticks.max}`,
    kib(s.perVm.guestFrames + s.perVm.tableFrames),
    kib(s.perVm.heap),
    kib(s.perVm.rss),
    kib(s.perVm.overhead),
    mib(s.peakRss),
    `${s.overcommitted ? "host RAM overcommitted" : ""}${s.ok ? "" : ` FAILED: ${s.problems.join("; ")}`}`
  ])
  const widths = columns.map((c, i) => Math.max(c.length, ...rows.map((row) => row[i]!.length)))
  const line = (cells: ReadonlyArray<string>) =>
    `  ${cells.map((cell, i) => (i < widths.length ? cell.padStart(widths[i]!) : cell)).join("  ")}`.trimEnd()
  const best = r.steps.find((s) => s.vms === r.largest)
  return [
    `idle ${o.guestMiB}-MiB VMs (100 Hz PIT tick, HLT between), ${o.virtualMs} ms of virtual time each step, ${o.pcpus} pCPUs, budget ${o.memoryBudgetMiB} MiB / ${o.timeBudgetS} s:`,
    line(columns),
    ...rows.map(line),
    `largest N: ${r.largest} concurrent idle VMs (target >= 1000)`,
    `overhead per VM beyond its machine frames: ${kib(r.overheadPerVm)} at N=${r.largest}${r.marginalOverheadPerVm === undefined ? "" : `, ${kib(r.marginalOverheadPerVm)} per added VM`} (target < 256 KiB; Firecracker < 5 MiB)`,
    ...(best === undefined
      ? []
      : [
          `machine frames per VM: ${kib(best.perVm.guestFrames)} guest RAM backed + ${kib(best.perVm.tableFrames)} EPT tables, of ${o.guestMiB} MiB guest RAM (lazily backed)`
        ]),
    `stopped: ${r.stoppedBecause}`
  ].join("\n")
}

// the child side of measureInChild: one step, its report as JSON on stdout
if (process.argv[2] === CHILD_FLAG && process.argv[1] !== undefined && resolve(process.argv[1]) === thisFile) {
  const args = JSON.parse(process.argv[3] ?? "{}") as { vms: number } & Pick<
    DensityOptions,
    "guestMiB" | "virtualMs" | "pcpus"
  >
  Effect.runPromise(measureDensity(args.vms, args)).then(
    (step) => process.stdout.write(JSON.stringify(step)),
    (error: unknown) => {
      process.stderr.write(`${String(error)}\n`)
      process.exitCode = 1
    }
  )
}
