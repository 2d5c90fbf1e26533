/**
 * The vmkernel CPU scheduler: a deterministic proportional-share scheduler
 * of worlds (one world per vCPU) onto pCPUs, with ESX semantics for shares,
 * reservation and limit, and relaxed co-scheduling of SMP VMs. Plain
 * TypeScript over VIRTUAL time: the caller passes `now` and the time a world
 * used; nothing here reads a clock. kernel/'s scheduler fibers drive it.
 *
 * Algorithm: start-time fair queueing (Goyal, Vin & Cheng, "Start-time Fair
 * Queueing: A Scheduling Algorithm for Integrated Services Packet Switching
 * Networks", SIGCOMM 1996) in the form of stride scheduling (Waldspurger &
 * Weihl, "Lottery Scheduling: Flexible Proportional-Share Resource
 * Management", OSDI 1994; Waldspurger, "Lottery and Stride Scheduling", MIT
 * PhD thesis 1995). ESX's share-based resource management comes from the
 * same line of work (Waldspurger, "Memory Resource Management in VMware ESX
 * Server", OSDI 2002; VMware, "The CPU Scheduler in VMware vSphere 5.1",
 * 2013; "vSphere Resource Management Guide", shares/reservation/limit).
 * - Each world has a virtual time `vtime` (the stride "pass"): running for
 *   `used` adds used / weight, where weight = its VM's shares / live vCPUs.
 * - pick(pcpu) runs the eligible world with the least key
 *   (reserved class first, vtime, last ran on this pCPU, world id).
 * - The scheduler's virtual time V = max(V, min vtime of eligible worlds).
 *   A world that BECOMES eligible (added, woken, no longer limited or
 *   co-stopped) gets vtime = max(vtime, V): a sleeper keeps no credit, so a
 *   wake-up is never a burst (SFQ's rule for a flow that becomes backlogged).
 * - A charged world's vtime may lead V by at most window / weight: a world
 *   that ran on its reservation, or alone on its pCPU (an "infeasible"
 *   weight on an SMP, Chandra et al., "Surplus Fair Scheduling", OSDI 2000),
 *   carries a bounded debt, not an unbounded one.
 * - Reservation and limit are per VM token buckets (entitlement.ts): a VM
 *   behind its reservation puts its worlds in the reserved class; a VM at its
 *   limit makes them "limited" (not eligible) until time refills the bucket.
 *   Vtime is charged in both classes, so a VM gets max(reservation, its
 *   share-based entitlement), capped at its limit: ESX's entitlement.
 * - Multi-vCPU VMs: relaxed co-scheduling (cosched.ts); a leader
 *   `skewThreshold` or more ahead of its laggard is "costop" (not eligible).
 * - Affinity: a world may carry a hard affinity (a pCPU set); otherwise it
 *   migrates freely, and "last ran here" is only a tie-breaker (cache
 *   affinity in ESX is a cost/benefit heuristic that is not modelled).
 *
 * Accounting is lazy: a world's columns are brought up to `now` when its
 * state changes, the interval since then going to the state it was in
 * (`stats` projects the interval still pending); every call re-classifies
 * the runnable worlds (ready / costop / limited). A dispatched world is
 * accounted when it is charged: `used` to used, the rest of its dispatch to
 * ready (runnable) or halted (halted / exited); its pCPU gets used and idle
 * likewise. So that thousands of idle VMs do not make every event cost
 * O(VMs), the ready and running worlds are kept in a set (V and `pick` scan
 * only those), only VMs with a reservation or limit accrue, and only VMs
 * with a limit or more than one vCPU are re-classified (the waiting world of
 * any other VM can only be ready).
 *
 * Invariants: `now` never decreases across calls (the caller orders events
 * by virtual time); a pCPU runs at most one world, a world runs on at most
 * one pCPU, only inside its affinity; halted, limited, co-stopped and exited
 * worlds are never picked; the accounting identities of types.ts hold
 * exactly when times are integers; same calls => same decisions (Maps iterate
 * in insertion order, which is id order, and every tie ends on the id).
 */
import {
  type ResolvedConfig,
  resolveConfig,
  resolveVmConfig,
  type SchedulerConfig,
  SchedulerError,
  type VmConfig
} from "./config.ts"
import { isCoStopped, laggardProgress } from "./cosched.ts"
import { accrue, drain, isLimited, isReserved, limitLiftsAt, newBuckets } from "./entitlement.ts"
import {
  isWaiting,
  type PcpuRec,
  pcpuStats,
  progressOf,
  type VmRec,
  vcpusOf,
  vmStats,
  type WorldRec,
  weightOf,
  worldStats
} from "./records.ts"
import type { NextState, SchedulerStats, VmId, WorldId, WorldOptions, WorldState } from "./types.ts"

export class Scheduler {
  readonly config: ResolvedConfig
  private readonly vms = new Map<VmId, VmRec>()
  private readonly worlds = new Map<WorldId, WorldRec>()
  /** The worlds that are ready or running (what V and `pick` look at), kept by `setState`. */
  private readonly runnable = new Set<WorldRec>()
  /** VMs with a reservation or a limit: the only ones whose buckets move (in id order). */
  private readonly budgeted = new Set<VmRec>()
  /** VMs `classify` must look at: a limit, or more than one vCPU ever (the others' waiting world is always ready). */
  private readonly watched = new Set<VmRec>()
  private readonly cpus: Array<PcpuRec>
  private now: number
  private virtualTime = 0
  private nextVm = 0
  private nextWorld = 0

  constructor(config: SchedulerConfig) {
    this.config = resolveConfig(config)
    this.now = this.config.start
    this.cpus = Array.from({ length: this.config.pcpus }, (_, id) => ({
      id,
      current: undefined,
      idleSince: this.config.start,
      used: 0,
      idle: 0
    }))
  }

  /** The quantum the caller should grant (its own, or RECOMMENDED_QUANTUM_NS). */
  get quantum(): number {
    return this.config.quantum
  }

  /** Create a VM (no worlds yet). Throws on invalid settings or when admission control refuses its reservation. */
  addVm(config: VmConfig = {}): VmId {
    const id = this.nextVm++
    const resolved = resolveVmConfig(config, `vm${id}`)
    let reserved = resolved.reservation
    for (const vm of this.budgeted) reserved += vm.config.reservation // the others add 0
    if (reserved > this.config.pcpus + 1e-9)
      throw new SchedulerError(`admission control: reservations would total ${reserved} > ${this.config.pcpus} pCPUs`)
    const rec: VmRec = {
      id,
      config: resolved,
      buckets: newBuckets(resolved, this.config.window, this.now),
      worlds: [],
      live: 0
    }
    this.vms.set(id, rec)
    if (resolved.reservation > 0 || Number.isFinite(resolved.limit)) this.budgeted.add(rec)
    if (Number.isFinite(resolved.limit)) this.watched.add(rec)
    return id
  }

  /** Remove a VM and all its worlds (none may be running: charge them first). */
  removeVm(vm: VmId, now: number): void {
    const rec = this.vmRec(vm)
    this.advance(now)
    for (const w of rec.worlds)
      if (w.state === "running") throw new SchedulerError(`world ${w.id} of vm ${vm} is running`)
    for (const w of rec.worlds) {
      this.worlds.delete(w.id)
      this.runnable.delete(w)
    }
    this.vms.delete(vm)
    this.budgeted.delete(rec)
    this.watched.delete(rec)
    this.classify(now)
  }

  /** Add a vCPU world to `vm` at `now`: runnable (eligible at the current virtual time) unless `halted`. */
  addWorld(vm: VmId, now: number, options: WorldOptions = {}): WorldId {
    const rec = this.vmRec(vm)
    this.advance(now)
    let affinity: Set<number> | undefined
    if (options.affinity !== undefined) {
      affinity = new Set(options.affinity)
      if (affinity.size === 0) throw new SchedulerError(`empty affinity`)
      for (const p of affinity) this.pcpuRec(p)
    }
    const siblings = rec.worlds.filter((w) => w.state !== "exited").map((w) => progressOf(w, now))
    const progressBase =
      laggardProgress(siblings) ?? siblings.reduce((m, v) => Math.max(m, v.progress), Number.NEGATIVE_INFINITY)
    const id = this.nextWorld++
    const world: WorldRec = {
      id,
      vm: rec,
      vcpu: rec.worlds.length,
      affinity,
      createdAt: now,
      progressBase: Number.isFinite(progressBase) ? progressBase : 0,
      state: options.halted === true ? "halted" : "ready",
      since: now,
      exitedAt: undefined,
      used: 0,
      ready: 0,
      halted: 0,
      costop: 0,
      limited: 0,
      vtime: this.virtualTime,
      pcpu: undefined,
      lastPcpu: undefined,
      dispatchedAt: now
    }
    rec.worlds.push(world)
    rec.live++
    this.worlds.set(id, world)
    if (world.state === "ready") this.runnable.add(world)
    if (rec.worlds.length > 1) this.watched.add(rec)
    this.classify(now)
    return id
  }

  /** Retire a world that is not running (a running one exits through `charge(..., "exited")`). */
  removeWorld(world: WorldId, now: number): void {
    const w = this.worldRec(world)
    this.advance(now)
    if (w.state === "running") throw new SchedulerError(`world ${world} is running: charge it with "exited"`)
    if (w.state !== "exited") this.exit(w, now)
    this.classify(now)
  }

  /** The world to run next on `pcpu` (undefined: idle). The pCPU must not have an uncharged world. */
  pick(pcpu: number, now: number): WorldId | undefined {
    const p = this.pcpuRec(pcpu)
    this.advance(now)
    if (p.current !== undefined) throw new SchedulerError(`pcpu ${pcpu} still runs world ${p.current.id}`)
    let best: WorldRec | undefined
    // `before` is a total order (it ends on the id): the result does not depend on the set's order
    for (const w of this.runnable) {
      if (w.state !== "ready" || (w.affinity !== undefined && !w.affinity.has(pcpu))) continue
      if (best === undefined || this.before(w, best, pcpu)) best = w
    }
    if (best === undefined) return undefined
    this.settle(best, now)
    this.setState(best, "running")
    best.pcpu = pcpu
    best.dispatchedAt = now
    p.current = best
    return best.id
  }

  /**
   * A dispatched world stopped at `now` after using `used` of its time on
   * the pCPU (0 <= used <= now - dispatch time); it is next `next`.
   */
  charge(world: WorldId, used: number, now: number, next: NextState): void {
    const w = this.worldRec(world)
    if (w.state !== "running") throw new SchedulerError(`world ${world} is not running (${w.state})`)
    const span = now - w.dispatchedAt
    if (!(now >= this.now && used >= 0 && used <= span))
      throw new SchedulerError(`world ${world} used ${used} of a ${span} dispatch ending at ${now} (now ${this.now})`)
    this.advance(now)
    const p = this.cpus[w.pcpu!]!
    const rest = span - used
    const weight = weightOf(w)
    w.used += used
    if (next === "runnable") w.ready += rest
    else w.halted += rest
    p.used += used
    p.idle += rest
    p.current = undefined
    p.idleSince = now
    w.vtime += used / weight
    drain(w.vm.buckets, w.vm.config, this.config.window, used)
    w.lastPcpu = w.pcpu
    w.pcpu = undefined
    w.since = now
    if (next === "runnable") {
      this.setState(w, "ready")
      w.vtime = Math.min(w.vtime, this.virtualTime + this.config.window / weight)
    } else if (next === "halted") this.setState(w, "halted")
    else this.exit(w, now)
    this.classify(now)
  }

  /** A virtual interrupt for a halted world: it becomes runnable at the current virtual time. No-op if not halted. */
  wake(world: WorldId, now: number): void {
    const w = this.worldRec(world)
    this.advance(now)
    if (w.state === "exited") throw new SchedulerError(`world ${world} has exited`)
    if (w.state !== "halted") return
    this.settle(w, now)
    this.setState(w, "ready")
    w.vtime = Math.max(w.vtime, this.virtualTime)
    this.classify(now)
  }

  /** Halt a world that is waiting for a pCPU (a running one halts through `charge(..., "halted")`). */
  halt(world: WorldId, now: number): void {
    const w = this.worldRec(world)
    this.advance(now)
    if (w.state === "running") throw new SchedulerError(`world ${world} is running: charge it with "halted"`)
    if (w.state === "exited") throw new SchedulerError(`world ${world} has exited`)
    this.settle(w, now)
    this.setState(w, "halted")
    this.classify(now)
  }

  /** The state of a world. */
  stateOf(world: WorldId): WorldState {
    return this.worldRec(world).state
  }

  /**
   * The earliest time a limited world becomes eligible by time alone
   * (undefined: none is limited), so an idle pCPU's loop can jump to it.
   */
  nextLimitLift(): number | undefined {
    let at: number | undefined
    for (const vm of this.watched) {
      if (!Number.isFinite(vm.config.limit) || !vm.worlds.some((w) => w.state === "limited")) continue
      const t = limitLiftsAt(vm.buckets, vm.config, this.config.window)
      if (t !== undefined && (at === undefined || t < at)) at = t
    }
    return at
  }

  /** Accounting as of `now` (default: the last time seen), as named records; changes nothing. */
  stats(now: number = this.now): SchedulerStats {
    if (!(now >= this.now)) throw new SchedulerError(`stats at ${now} before ${this.now}`)
    const worlds = [...this.worlds.values()].map((w) => worldStats(w, now))
    const byId = new Map(worlds.map((w) => [w.id, w]))
    const vms = [...this.vms.values()].map((vm) => vmStats(vm, now, this.config.window, byId))
    const pcpus = this.cpus.map((p) => pcpuStats(p, now, this.config.start))
    return { now, virtualTime: this.virtualTime, pcpus, vms, worlds }
  }

  // ---- internals ------------------------------------------------------------

  /** Bring pCPU idle time and VM buckets to `now`, then re-classify (worlds' columns are settled lazily). */
  private advance(now: number): void {
    if (!(now >= this.now)) throw new SchedulerError(`time went backwards: ${now} < ${this.now}`)
    for (const p of this.cpus) {
      if (p.current !== undefined) continue
      p.idle += now - p.idleSince
      p.idleSince = now
    }
    // accrual only moves the balances of a VM with a reservation or a limit
    for (const vm of this.budgeted) accrue(vm.buckets, vm.config, this.config.window, now)
    this.now = now
    this.classify(now)
  }

  private setState(w: WorldRec, state: WorldState): void {
    w.state = state
    if (state === "ready" || state === "running") this.runnable.add(w)
    else this.runnable.delete(w)
  }

  /** Bring a waiting or halted world's columns to `now` (before its state changes): the interval goes to its state. */
  private settle(w: WorldRec, now: number): void {
    const dt = now - w.since
    if (w.state === "running" || w.state === "exited" || dt === 0) return
    if (w.state === "ready") w.ready += dt
    else if (w.state === "costop") w.costop += dt
    else if (w.state === "limited") w.limited += dt
    else w.halted += dt
    w.since = now
  }

  /** Update V, then sort every waiting world into ready / costop / limited. */
  private classify(now: number): void {
    let min = Number.POSITIVE_INFINITY
    for (const w of this.runnable) if (w.vtime < min) min = w.vtime
    if (min !== Number.POSITIVE_INFINITY && min > this.virtualTime) this.virtualTime = min
    // the VMs not watched are never limited nor co-stopped: their waiting world is ready already
    for (const vm of this.watched) {
      const limited = isLimited(vm.buckets, vm.config, this.config.window)
      const lag = vm.live > 1 ? laggardProgress(vcpusOf(vm, now)) : undefined
      for (const w of vm.worlds) {
        if (!isWaiting(w.state)) continue
        const next: WorldState = limited
          ? "limited"
          : isCoStopped(progressOf(w, now).progress, lag, this.config.skewThreshold)
            ? "costop"
            : "ready"
        if (next === w.state) continue
        if (next === "ready") w.vtime = Math.max(w.vtime, this.virtualTime)
        this.settle(w, now)
        this.setState(w, next)
      }
    }
  }

  /** a goes before b on pCPU p: reserved class, then vtime, then last-ran-here, then id. */
  private before(a: WorldRec, b: WorldRec, p: number): boolean {
    const ra = isReserved(a.vm.buckets, a.vm.config)
    const rb = isReserved(b.vm.buckets, b.vm.config)
    if (ra !== rb) return ra
    if (a.vtime !== b.vtime) return a.vtime < b.vtime
    const ha = a.lastPcpu === p
    const hb = b.lastPcpu === p
    if (ha !== hb) return ha
    return a.id < b.id
  }

  private exit(w: WorldRec, now: number): void {
    this.settle(w, now)
    this.setState(w, "exited")
    w.exitedAt = now
    w.since = now
    w.vm.live--
  }

  private vmRec(id: VmId): VmRec {
    const vm = this.vms.get(id)
    if (vm === undefined) throw new SchedulerError(`no vm ${id}`)
    return vm
  }

  private worldRec(id: WorldId): WorldRec {
    const w = this.worlds.get(id)
    if (w === undefined) throw new SchedulerError(`no world ${id}`)
    return w
  }

  private pcpuRec(id: number): PcpuRec {
    const p = Number.isInteger(id) ? this.cpus[id] : undefined
    if (p === undefined) throw new SchedulerError(`no pcpu ${id}`)
    return p
  }
}
