/**
 * `bench cpu` against its peers (issue 9): guest MIPS of the ALU and memory
 * loops, run from the same Multiboot image (images/bench/bench.elf) on
 * fibervisor (a hw-mode VM, in-process), on v86 with and without its JIT
 * and on QEMU TCG, plus the loops as raw code on a bare pCPU (the
 * interpreter without the VMM around it).
 *
 * Every engine is timed the same way: the wall time between the guest's "["
 * and "]" COM1 markers, as the engine delivers them, for two iteration
 * counts N1 and N2 = 5 * N1; MIPS = perIteration * (N2 - N1) / (t2 - t1).
 * The difference removes boot, start-up, marker latency and warm-up costs
 * that do not grow with N. N1 is calibrated per engine and loop so that
 * t2 - t1 is about `targetSeconds`; each count then runs `repeats` times and
 * the fastest run counts (the machine is shared and noisy). A peer that
 * cannot run here is a row "unavailable: reason", never a crash.
 */
import { execFile } from "node:child_process"
import { readFileSync } from "node:fs"
import { fileURLToPath } from "node:url"
import { flatProtectedCpu, runGuestOnce } from "./cpu.ts"
import { computeGuests } from "./guests.ts"
import { type MarkedRun, runFibervisorImage } from "./peers/fibervisor.ts"
import {
  expectedResultLine,
  type LoopKind,
  loopInfo,
  loopKinds,
  patchBenchImage,
  readBenchImage,
  withTempImage
} from "./peers/image.ts"
import { qemuUnavailable, qemuVersion, runQemuImage } from "./peers/qemu.ts"
import { runV86Image, v86Unavailable } from "./peers/v86.ts"

export type CpuEngine = "fibervisor" | "fibervisor-bare" | "v86-nojit" | "v86-jit" | "qemu"

export const cpuEngines: ReadonlyArray<CpuEngine> = ["fibervisor", "fibervisor-bare", "v86-nojit", "v86-jit", "qemu"]

export const engineLabels: Record<CpuEngine, string> = {
  fibervisor: "fibervisor VM (hw mode)",
  "fibervisor-bare": "fibervisor interpreter (bare pCPU)",
  "v86-nojit": "v86 without JIT",
  "v86-jit": "v86 with JIT",
  qemu: "QEMU TCG"
}

/** A first guess at each engine's MIPS, only to size the first calibration run. */
const guessMips: Record<CpuEngine, number> = {
  fibervisor: 50,
  "fibervisor-bare": 60,
  "v86-nojit": 100,
  "v86-jit": 1000,
  qemu: 3000
}

export interface CpuPeersOptions {
  /** Loop seconds that t(N2) - t(N1) is calibrated to (default 0.5). */
  readonly targetSeconds?: number
  /** Runs of each of N1 and N2 after calibration; the fastest counts (default 5). */
  readonly repeats?: number
  /** Engines to measure (default all, in cpuEngines order). */
  readonly engines?: ReadonlyArray<CpuEngine>
  readonly loops?: ReadonlyArray<LoopKind>
  /** Limit for one run of the image on a child-process peer (default 60 s); one (engine, loop) measurement gets 5x that. */
  readonly timeoutMs?: number
  /** Called with each row as soon as it is measured (e.g. to show progress). */
  readonly onRow?: (row: CpuPeerRow) => void
}

export interface CpuPeerRow {
  readonly engine: CpuEngine
  readonly label: string
  readonly loop: LoopKind
  readonly status: "ok" | "unavailable" | "failed"
  /** Why the engine is unavailable or failed. */
  readonly reason?: string
  readonly iterations?: readonly [number, number]
  /** Fastest loop seconds at N1 and N2. */
  readonly loopSeconds?: readonly [number, number]
  /** perIteration * (N2 - N1): the instructions the MIPS figure is made of. */
  readonly instructions?: number
  /** The engine's own instruction count for N2 minus that for N1, when it counts (should equal `instructions`). */
  readonly countedInstructions?: number
  readonly mips?: number
  /** The guest's result line at N2 (" eax=..." after the markers). */
  readonly result?: string
}

/** fibervisor VM MIPS / peer MIPS, per loop. */
export interface CpuPeerRatio {
  readonly loop: LoopKind
  readonly peer: CpuEngine
  readonly label: string
  readonly ratio: number
}

export interface CpuPeersReport {
  readonly method: string
  readonly targetSeconds: number
  readonly repeats: number
  readonly rows: ReadonlyArray<CpuPeerRow>
  readonly ratios: ReadonlyArray<CpuPeerRatio>
  readonly peers: { readonly qemu: string; readonly v86: string }
  /** This round's target: fibervisor's ALU MIPS >= 0.6x v86 without its JIT. */
  readonly target: { readonly metric: string; readonly value?: number; readonly target: number; readonly met?: boolean }
}

const MAX_ITERATIONS = 0xffffffff

type Runner = (iterations: number) => Promise<MarkedRun>

/** Calibrate N1, then the fastest of `repeats` runs at N1 and at N2 = 5 * N1. */
const measure = async (
  engine: CpuEngine,
  loop: LoopKind,
  run: Runner,
  options: { targetSeconds: number; repeats: number }
): Promise<CpuPeerRow> => {
  const per = loopInfo[loop].perIteration
  const target = options.targetSeconds
  const maxN1 = Math.floor(MAX_ITERATIONS / 5)
  const clampN1 = (n: number) => Math.max(1000, Math.min(maxN1, Math.floor(n)))
  let n1 = clampN1((guessMips[engine] * 1e6 * target) / (4 * per))
  let a = await run(n1)
  let b = await run(5 * n1)
  // t(N2) should be about 1.25 * target (t2 - t1 is 4/5 of it); rescale from t(N2) alone, which
  // includes the constant costs and so never suggests more than the engine can do (a noisy
  // difference must not blow N up), at most 20x per step
  for (let attempt = 0; attempt < 3; attempt++) {
    const want = 1.25 * target
    if ((b.loopSeconds >= 0.8 * want && b.loopSeconds <= 3 * want) || (n1 === maxN1 && b.loopSeconds < want)) break
    n1 = clampN1(n1 * Math.min(20, want / Math.max(b.loopSeconds, 1e-4)))
    a = await run(n1)
    b = await run(5 * n1)
  }
  let bestA = a
  let bestB = b
  for (let r = 1; r < options.repeats; r++) {
    const ra = await run(n1)
    if (ra.loopSeconds < bestA.loopSeconds) bestA = ra
    const rb = await run(5 * n1)
    if (rb.loopSeconds < bestB.loopSeconds) bestB = rb
  }
  const instructions = per * 4 * n1
  const seconds = bestB.loopSeconds - bestA.loopSeconds
  const result = bestB.serial.replace(/^\[\]\s*/, "").trim()
  const base = { engine, label: engineLabels[engine], loop }
  if (!expectedResultLine.test(bestB.serial))
    return { ...base, status: "failed", reason: `unexpected COM1 output ${JSON.stringify(bestB.serial)}` }
  if (!(seconds > 0))
    return { ...base, status: "failed", reason: `t(N2) - t(N1) = ${seconds.toFixed(4)} s: too noisy to measure` }
  return {
    ...base,
    status: "ok",
    iterations: [n1, 5 * n1],
    loopSeconds: [bestA.loopSeconds, bestB.loopSeconds],
    instructions,
    ...(bestA.instructions !== undefined && bestB.instructions !== undefined
      ? { countedInstructions: bestB.instructions - bestA.instructions }
      : {}),
    mips: instructions / seconds / 1e6,
    result
  }
}

/** The loops as raw code on a bare flat-mode pCPU (scripts/bench/guests.ts), timed around cpu.run. */
const bareRunner = (loop: LoopKind): Runner => {
  const guest = computeGuests.find((g) => g.name === loop)!
  const cpu = flatProtectedCpu(16 << 20)
  return async (iterations) => {
    const r = runGuestOnce(cpu, guest, iterations)
    const eax = (cpu.getState().eax >>> 0).toString(16).padStart(8, "0")
    return {
      loopSeconds: r.ms / 1000,
      wallSeconds: r.ms / 1000,
      instructions: r.instructions,
      serial: `[] eax=${eax}\r\n`
    }
  }
}

const imageRunner = (engine: CpuEngine, loop: LoopKind, image: Uint8Array, timeoutMs: number): Runner => {
  switch (engine) {
    case "fibervisor":
      return (n) => runFibervisorImage(patchBenchImage(image, loop, n))
    case "fibervisor-bare":
      return bareRunner(loop)
    case "v86-nojit":
    case "v86-jit":
      return (n) =>
        withTempImage(patchBenchImage(image, loop, n), (path) =>
          runV86Image(path, { jit: engine === "v86-jit", timeoutMs })
        )
    case "qemu":
      return (n) => withTempImage(patchBenchImage(image, loop, n), (path) => runQemuImage(path, { timeoutMs }))
  }
}

const unavailable = (engine: CpuEngine): string | undefined =>
  engine === "qemu" ? qemuUnavailable() : engine.startsWith("v86") ? v86Unavailable() : undefined

/** Measure one engine on one loop in this process (the child side of measureInChild). */
export const measureEngine = async (
  engine: CpuEngine,
  loop: LoopKind,
  options: { targetSeconds: number; repeats: number; timeoutMs: number }
): Promise<CpuPeerRow> => {
  const missing = unavailable(engine)
  if (missing !== undefined)
    return { engine, label: engineLabels[engine], loop, status: "unavailable", reason: missing }
  try {
    return await measure(engine, loop, imageRunner(engine, loop, readBenchImage(), options.timeoutMs), options)
  } catch (e) {
    const reason = e instanceof Error ? e.message : String(e)
    return { engine, label: engineLabels[engine], loop, status: "failed", reason }
  }
}

const ROW_PREFIX = "FVBENCH-ROW "

/**
 * Each (engine, loop) is measured in a child Node process of its own: in one
 * process, whichever of the VM and the bare pCPU ran second was up to a third
 * slower (V8 had already specialised the shared CPU code for the other one's
 * memory bus), and the peers' runs are child processes anyway.
 */
const measureInChild = (
  engine: CpuEngine,
  loop: LoopKind,
  options: { targetSeconds: number; repeats: number; timeoutMs: number }
): Promise<CpuPeerRow> =>
  new Promise((resolve) => {
    const fail = (reason: string) => resolve({ engine, label: engineLabels[engine], loop, status: "failed", reason })
    execFile(
      process.execPath,
      [fileURLToPath(import.meta.url), "--measure", JSON.stringify({ engine, loop, ...options })],
      { timeout: options.timeoutMs * 5, maxBuffer: 16 << 20, encoding: "utf8" },
      (error, stdout, stderr) => {
        const line = stdout.split("\n").find((l) => l.startsWith(ROW_PREFIX))
        if (line !== undefined) resolve(JSON.parse(line.slice(ROW_PREFIX.length)) as CpuPeerRow)
        else fail(`measuring process printed no row: ${error?.message ?? ""} ${stderr.trim().slice(-500)}`.trim())
      }
    )
  })

export const benchCpuPeers = async (options: CpuPeersOptions = {}): Promise<CpuPeersReport> => {
  const targetSeconds = options.targetSeconds ?? 0.5
  const repeats = options.repeats ?? 5
  const timeoutMs = options.timeoutMs ?? 60_000
  const engines = options.engines ?? cpuEngines
  const loops = options.loops ?? loopKinds
  const rows: Array<CpuPeerRow> = []
  for (const engine of engines)
    for (const loop of loops) {
      const row = await measureInChild(engine, loop, { targetSeconds, repeats, timeoutMs })
      rows.push(row)
      options.onRow?.(row)
    }
  const ratios: Array<CpuPeerRatio> = []
  for (const loop of loops) {
    const ours = rows.find((r) => r.engine === "fibervisor" && r.loop === loop)?.mips
    if (ours === undefined) continue
    for (const r of rows)
      if (r.loop === loop && r.engine !== "fibervisor" && r.mips !== undefined)
        ratios.push({ loop, peer: r.engine, label: r.label, ratio: ours / r.mips })
  }
  const aluVsV86 = ratios.find((r) => r.loop === "alu" && r.peer === "v86-nojit")?.ratio
  return {
    method:
      "wall time between the guest's COM1 markers at N1 and N2 = 5*N1 iterations; MIPS = perIteration*(N2-N1)/(t2-t1), fastest of the repeats",
    targetSeconds,
    repeats,
    rows,
    ratios,
    peers: {
      qemu: engines.includes("qemu") && qemuUnavailable() === undefined ? qemuVersion() : "not measured",
      v86: engines.some((e) => e.startsWith("v86")) ? v86PackageVersion() : "not measured"
    },
    target: {
      metric: "fibervisor ALU loop / v86 without JIT",
      ...(aluVsV86 === undefined ? {} : { value: aluVsV86, met: aluVsV86 >= 0.6 }),
      target: 0.6
    }
  }
}

/** The installed v86 package's version, or why there is none. */
export const v86PackageVersion = (): string => {
  const missing = v86Unavailable()
  if (missing !== undefined) return missing
  const pkg = JSON.parse(readFileSync(new URL("../package.json", import.meta.resolve("v86")), "utf8")) as {
    version: string
  }
  return `v86 ${pkg.version}`
}

const fixed = (v: number, digits: number) => v.toFixed(digits)

export const formatCpuPeers = (report: CpuPeersReport): string => {
  const header = ["engine", "loop", "N1 / N2 iterations", "loop s at N1 / N2", "MIPS", "fibervisor x"]
  const body = report.rows.map((r) => {
    if (r.status !== "ok") return [r.label, r.loop, `${r.status}: ${r.reason ?? ""}`, "", "", ""]
    const ratio = report.ratios.find((x) => x.loop === r.loop && x.peer === r.engine)
    return [
      r.label,
      r.loop,
      `${r.iterations![0]} / ${r.iterations![1]}`,
      `${fixed(r.loopSeconds![0], 3)} / ${fixed(r.loopSeconds![1], 3)}`,
      r.mips! >= 100 ? fixed(r.mips!, 0) : fixed(r.mips!, 1),
      ratio === undefined ? (r.engine === "fibervisor" ? "1" : "") : fixed(ratio.ratio, 3)
    ]
  })
  const widths = header.map((h, i) =>
    Math.max(h.length, ...body.filter((row) => row[3] !== "").map((row) => row[i]!.length))
  )
  const line = (row: ReadonlyArray<string>) =>
    row[3] === "" && row[2] !== ""
      ? `${row[0]!.padEnd(widths[0]!)}  ${row[1]!.padEnd(widths[1]!)}  ${row[2]}`
      : row
          .map((cell, i) => (i >= 4 ? cell.padStart(widths[i]!) : cell.padEnd(widths[i]!)))
          .join("  ")
          .trimEnd()
  const t = report.target
  const verdict =
    t.value === undefined
      ? `${t.metric}: not measured (target >= ${t.target})`
      : `${t.metric}: ${fixed(t.value, 3)} (target >= ${t.target}: ${t.met === true ? "met" : "NOT met"})`
  return [
    line(header),
    ...body.map(line),
    "",
    `fibervisor x = fibervisor VM MIPS / that engine's MIPS on the same loop. ${verdict}`,
    `method: ${report.method}; peers: ${report.peers.qemu}, ${report.peers.v86}`
  ].join("\n")
}

/** Summary rows for the bench registry: { metric, value, unit, target?, met? } (registry.ts's Headline). */
export const cpuPeersHeadlines = (
  report: CpuPeersReport
): ReadonlyArray<{ metric: string; value: number; unit: string; target?: string; met?: boolean }> => [
  ...report.rows
    .filter((r) => r.mips !== undefined)
    .map((r) => ({ metric: `cpu ${r.loop}: ${r.label}`, value: r.mips!, unit: "MIPS" })),
  ...(report.target.value === undefined
    ? []
    : [
        {
          metric: report.target.metric,
          value: report.target.value,
          unit: "x",
          target: `>= ${report.target.target}`,
          met: report.target.met === true
        }
      ])
]

if (process.argv[1] === fileURLToPath(import.meta.url) && process.argv[2] === "--measure") {
  const { engine, loop, ...options } = JSON.parse(process.argv[3]!) as {
    engine: CpuEngine
    loop: LoopKind
    targetSeconds: number
    repeats: number
    timeoutMs: number
  }
  process.stdout.write(`${ROW_PREFIX}${JSON.stringify(await measureEngine(engine, loop, options))}\n`)
}
