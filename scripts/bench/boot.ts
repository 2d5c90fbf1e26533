/**
 * `bench boot` (issue 9): how fast a VM comes up, measured in process along
 * the path `fibervisor boot images/hello/hello.elf` takes (scripts/boot/
 * images.ts and run.ts): read the ELF, plan its Multiboot load, power on the
 * Machine, Kernel.boot, createVm + addStandardDevices, then run the worlds
 * until the guest's first COM1 byte (Firecracker's anchor: <= 125 ms to guest
 * init; fibervisor's target: under 20 ms to the first serial byte).
 *
 *   - power-on included: every step above, a new host per run;
 *   - warm: the same VM on a host that is already up: read + plan the image,
 *     createVm + devices, run to the first byte;
 *   - throughput (Firecracker: 150 microVMs/s per host): VMs created, run to
 *     hello's debug-exit and destroyed, one after another (sequential), and B
 *     created at once, run together until every one exited, then destroyed
 *     (batched).
 *
 * Times are medians over `runs` after one unmeasured warm-up run (the first,
 * cold, run is reported on its own: it pays for V8 compiling the code). A
 * full GC runs before each power-on run, outside the timed window: a real
 * host powers on once per process, so the previous hosts' garbage is not its
 * cost. The wall clock is read here, in scripts/, the only layer allowed to.
 */
import { readFileSync } from "node:fs"
import { relative } from "node:path"
import { fileURLToPath } from "node:url"
import { Effect, Exit, Scope } from "effect"
import type { Machine } from "../../hw/machine/machine.ts"
import { Worlds } from "../../kernel/sched/runtime.ts"
import { defaultVmConfig } from "../../vmm/config.ts"
import { planMultibootLoad } from "../../vmm/loader/multiboot.ts"
import { addStandardDevices } from "../../vmm/platform/standard.ts"
import { type BootPayload, createVm, type VirtualMachine } from "../../vmm/vm.ts"
import { type BootedHost, bootKernel, collectGarbage, MAX_HOST_RAM_MIB, powerOn } from "./host.ts"

export interface BootBenchOptions {
  /** The Multiboot image (default: the repository's images/hello/hello.elf, wherever the process runs). */
  readonly image: string
  /** Measured runs per latency figure (after one warm-up). */
  readonly runs: number
  /** VMs created, run to their exit and destroyed one after another. */
  readonly sequentialVms: number
  /** VMs created at once and run together. */
  readonly batch: number
  /** Guest RAM per VM (MiB), as `fibervisor boot --mem` (default 16). */
  readonly memoryMiB: number
  /** pCPUs of the host (as `fibervisor boot --pcpus`, default 2). */
  readonly pcpus: number
}

export const defaultBootBenchOptions: BootBenchOptions = {
  image: fileURLToPath(new URL("../../images/hello/hello.elf", import.meta.url)),
  runs: 20,
  sequentialVms: 300,
  batch: 100,
  memoryMiB: 16,
  pcpus: 2
}

/** Wall milliseconds of each step of one boot; `total` is from the first step to the first serial byte. */
export interface BootStages {
  /** Read the ELF and plan its Multiboot load. */
  readonly plan: number
  /** Machine construction (power-on included runs only; else 0). */
  readonly powerOn: number
  /** Kernel.boot: firmware table, memory manager, drivers, scheduler fibers (power-on included only). */
  readonly kernel: number
  /** createVm + addStandardDevices. */
  readonly create: number
  /** Running the worlds until the guest's first COM1 byte. */
  readonly firstByte: number
  readonly total: number
}

export interface Throughput {
  readonly vms: number
  readonly seconds: number
  readonly perSecond: number
}

export interface BootReport {
  readonly image: string
  readonly runs: number
  /** The very first boot in this process (V8 still compiling). */
  readonly cold: BootStages
  /** Medians (per stage, and of the totals) with a new host per run. */
  readonly powerOn: BootStages
  readonly powerOnMin: number
  /** Medians with the host already up: image -> VM -> first byte. */
  readonly warm: BootStages
  readonly warmMin: number
  /** Create + run to exit + destroy, one VM at a time, on one host. */
  readonly sequential: Throughput
  /** `batch` VMs created, run together to their exits, destroyed. */
  readonly batched: Throughput & { readonly batch: number }
  /** Every VM of the run wrote 0 to the debug-exit port. */
  readonly allSucceeded: boolean
}

const MIB = 1024 * 1024
const SLICE_NS = 10_000_000
/** A guest that has not exited after this much virtual time is a failed boot. */
const MAX_VIRTUAL_NS = 1_000_000_000

const median = (values: ReadonlyArray<number>): number => {
  const sorted = [...values].sort((a, b) => a - b)
  const mid = sorted.length >> 1
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2
}

const medianStages = (all: ReadonlyArray<BootStages>): BootStages => ({
  plan: median(all.map((s) => s.plan)),
  powerOn: median(all.map((s) => s.powerOn)),
  kernel: median(all.map((s) => s.kernel)),
  create: median(all.map((s) => s.create)),
  firstByte: median(all.map((s) => s.firstByte)),
  total: median(all.map((s) => s.total))
})

/** Read and plan a Multiboot image for `memoryMiB` of RAM, as `fibervisor boot` does. */
const planImage = (path: string, memoryMiB: number): BootPayload => {
  const plan = planMultibootLoad(readFileSync(path), { ramBytes: memoryMiB * MIB, cmdline: "" })
  if (plan._tag === "Failure") throw new Error(`${path}: ${plan.failure.message}`)
  return { writes: plan.success.writes, registers: plan.success.registers }
}

interface Booting {
  readonly vm: VirtualMachine
  /** performance.now() at the first COM1 byte. */
  firstByteAt: number | undefined
}

/** createVm + the standard devices, in `scope`; the console records when the first byte arrives. */
const createBooting = (host: BootedHost, scope: Scope.Scope, name: string, payload: BootPayload, memoryMiB: number) =>
  Effect.gen(function* () {
    const booting: { vm: VirtualMachine | undefined; firstByteAt: number | undefined } = {
      vm: undefined,
      firstByteAt: undefined
    }
    const console = (_byte: number) => {
      if (booting.firstByteAt === undefined) booting.firstByteAt = performance.now()
    }
    const config = { ...defaultVmConfig(name, "bench"), memoryMiB }
    const vm = yield* createVm(config, payload, { console }).pipe(
      Scope.provide(scope),
      Effect.provideContext(host),
      Effect.orDie
    )
    addStandardDevices(vm, console)
    booting.vm = vm
    return booting as Booting
  })

/** Run virtual time until `done` holds (checked between 10 ms slices); fails after MAX_VIRTUAL_NS. */
const runUntil = (host: BootedHost, done: () => boolean) =>
  Effect.gen(function* () {
    const worlds = yield* Worlds
    for (let t = 0; !done(); t += SLICE_NS) {
      if (t >= MAX_VIRTUAL_NS)
        return yield* Effect.die(new Error("bench boot: a guest did not finish in 1 s of virtual time"))
      yield* worlds.runFor(SLICE_NS)
    }
  }).pipe(Effect.provideContext(host))

const succeeded = (vm: VirtualMachine) => vm.ended?._tag === "DebugExit" && vm.ended.code === 0

/** One boot on `host`, created in a fresh scope closed afterwards: its stages (powerOn, kernel 0). */
const bootOnHost = (host: BootedHost, image: string, name: string, memoryMiB: number) =>
  Effect.gen(function* () {
    const t0 = performance.now()
    const payload = planImage(image, memoryMiB)
    const t1 = performance.now()
    const scope = yield* Scope.make()
    const booting = yield* createBooting(host, scope, name, payload, memoryMiB)
    const t2 = performance.now()
    yield* runUntil(host, () => booting.firstByteAt !== undefined || booting.vm.ended !== undefined)
    if (booting.firstByteAt === undefined) return yield* Effect.die(new Error(`${image}: no serial output`))
    yield* runUntil(host, () => booting.vm.ended !== undefined)
    const ok = succeeded(booting.vm)
    yield* Scope.close(scope, Exit.void)
    const stages: BootStages = {
      plan: t1 - t0,
      powerOn: 0,
      kernel: 0,
      create: t2 - t1,
      firstByte: booting.firstByteAt - t2,
      total: booting.firstByteAt - t0
    }
    return { stages, ok }
  })

const hostRamMiB = (vms: number, memoryMiB: number) => Math.min(MAX_HOST_RAM_MIB, 64 + vms * (memoryMiB + 2))

/** One boot from nothing: a new machine and vmkernel, then the VM; everything is torn down after. */
const bootFromPowerOn = (options: BootBenchOptions, name: string) =>
  Effect.scoped(
    Effect.gen(function* () {
      const t0 = performance.now()
      const payload = planImage(options.image, options.memoryMiB)
      const t1 = performance.now()
      const machine: Machine = yield* powerOn({ ramMiB: hostRamMiB(1, options.memoryMiB), pcpus: options.pcpus })
      const t2 = performance.now()
      const host = yield* bootKernel(machine)
      const t3 = performance.now()
      const scope = yield* Scope.make()
      const booting = yield* createBooting(host, scope, name, payload, options.memoryMiB)
      const t4 = performance.now()
      yield* runUntil(host, () => booting.firstByteAt !== undefined || booting.vm.ended !== undefined)
      if (booting.firstByteAt === undefined) return yield* Effect.die(new Error(`${options.image}: no serial output`))
      yield* runUntil(host, () => booting.vm.ended !== undefined)
      const ok = succeeded(booting.vm)
      yield* Scope.close(scope, Exit.void)
      const stages: BootStages = {
        plan: t1 - t0,
        powerOn: t2 - t1,
        kernel: t3 - t2,
        create: t4 - t3,
        firstByte: booting.firstByteAt - t4,
        total: booting.firstByteAt - t0
      }
      return { stages, ok }
    })
  )

/** Run the boot benchmark. An Effect: provide nothing, run it with Effect.runPromise or yield* it. */
export const benchBoot = (partial: Partial<BootBenchOptions> = {}): Effect.Effect<BootReport> =>
  Effect.gen(function* () {
    const options = { ...defaultBootBenchOptions, ...partial }
    let allOk = true
    const cold = yield* bootFromPowerOn(options, "hello-cold")
    allOk &&= cold.ok
    const powerOnRuns: Array<BootStages> = []
    for (let i = 0; i <= options.runs; i++) {
      collectGarbage() // the hosts before this one are garbage (~90 MiB of buffers each): not this run's to collect
      const r = yield* bootFromPowerOn(options, `hello-p${i}`)
      allOk &&= r.ok
      if (i > 0) powerOnRuns.push(r.stages) // run 0 warms up
    }

    return yield* Effect.scoped(
      Effect.gen(function* () {
        const machine = yield* powerOn({
          ramMiB: hostRamMiB(options.batch, options.memoryMiB),
          pcpus: options.pcpus
        })
        const host = yield* bootKernel(machine)
        const warmRuns: Array<BootStages> = []
        for (let i = 0; i <= options.runs; i++) {
          const r = yield* bootOnHost(host, options.image, `hello-w${i}`, options.memoryMiB)
          allOk &&= r.ok
          if (i > 0) warmRuns.push(r.stages)
        }

        // sequential: image -> VM -> run to its exit -> destroy, one at a time
        const seqStart = performance.now()
        for (let i = 0; i < options.sequentialVms; i++) {
          const payload = planImage(options.image, options.memoryMiB)
          const scope = yield* Scope.make()
          const booting = yield* createBooting(host, scope, `hello-s${i}`, payload, options.memoryMiB)
          yield* runUntil(host, () => booting.vm.ended !== undefined)
          allOk &&= succeeded(booting.vm)
          yield* Scope.close(scope, Exit.void)
        }
        const seqSeconds = (performance.now() - seqStart) / 1000

        // batched: B VMs created, run together until every one exited, destroyed
        const batchStart = performance.now()
        const payload = planImage(options.image, options.memoryMiB)
        const scope = yield* Scope.make()
        const vms: Array<VirtualMachine> = []
        for (let i = 0; i < options.batch; i++)
          vms.push((yield* createBooting(host, scope, `hello-b${i}`, payload, options.memoryMiB)).vm)
        yield* runUntil(host, () => vms.every((vm) => vm.ended !== undefined))
        for (const vm of vms) allOk &&= succeeded(vm)
        yield* Scope.close(scope, Exit.void)
        const batchSeconds = (performance.now() - batchStart) / 1000

        return {
          image: options.image,
          runs: options.runs,
          cold: cold.stages,
          powerOn: medianStages(powerOnRuns),
          powerOnMin: Math.min(...powerOnRuns.map((s) => s.total)),
          warm: medianStages(warmRuns),
          warmMin: Math.min(...warmRuns.map((s) => s.total)),
          sequential: {
            vms: options.sequentialVms,
            seconds: seqSeconds,
            perSecond: options.sequentialVms / seqSeconds
          },
          batched: {
            vms: options.batch,
            batch: options.batch,
            seconds: batchSeconds,
            perSecond: options.batch / batchSeconds
          },
          allSucceeded: allOk
        } satisfies BootReport
      })
    )
  })

const ms = (n: number) => `${n < 10 ? n.toFixed(2) : n.toFixed(1)} ms`

const stageLine = (s: BootStages) =>
  [
    `plan ${ms(s.plan)}`,
    ...(s.powerOn > 0 || s.kernel > 0 ? [`power-on ${ms(s.powerOn)}`, `kernel ${ms(s.kernel)}`] : []),
    `createVm ${ms(s.create)}`,
    `run ${ms(s.firstByte)}`
  ].join(", ")

export const formatBoot = (r: BootReport): string =>
  [
    `boot to the first serial byte of ${relative(process.cwd(), r.image) || r.image} (median of ${r.runs}; target < 20 ms, Firecracker <= 125 ms to guest init):`,
    `  host power-on included: ${ms(r.powerOn.total)} (min ${ms(r.powerOnMin)}; ${stageLine(r.powerOn)})`,
    `  VM create on a booted host: ${ms(r.warm.total)} (min ${ms(r.warmMin)}; ${stageLine(r.warm)})`,
    `  first boot in the process (cold JIT): ${ms(r.cold.total)} (${stageLine(r.cold)})`,
    `VMs created, booted to exit and destroyed per second on one host (Firecracker: 150 microVMs/s):`,
    `  sequential: ${r.sequential.perSecond.toFixed(0)}/s (${r.sequential.vms} VMs in ${r.sequential.seconds.toFixed(2)} s)`,
    `  batched: ${r.batched.perSecond.toFixed(0)}/s (${r.batched.batch} at once in ${r.batched.seconds.toFixed(2)} s)`,
    `  every guest exited with success: ${r.allSucceeded ? "yes" : "NO"}`
  ].join("\n")
