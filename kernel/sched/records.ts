/**
 * The scheduler's internal records (one per VM, world and pCPU) and the
 * read-only views derived from them: a world's weight, its co-scheduling
 * progress, and the named accounting records of types.ts, projected to a
 * later `now` without changing anything (time since a record was last
 * brought up to date goes to the column of the state it is in).
 *
 * Invariant: a world's columns (used, ready, halted, costop, limited) are
 * current to `since` unless it is running; a running world's dispatch
 * [dispatchedAt, now) is accounted only when it is charged.
 */
import { type ResolvedVmConfig, vmShares } from "./config.ts"
import { skewOf, type VcpuProgress } from "./cosched.ts"
import { accrue, type Buckets } from "./entitlement.ts"
import type { PcpuStats, VmId, VmStats, WorldId, WorldState, WorldStats } from "./types.ts"

export interface VmRec {
  readonly id: VmId
  readonly config: ResolvedVmConfig
  readonly buckets: Buckets
  readonly worlds: Array<WorldRec>
  /** Worlds not exited. */
  live: number
}

export interface WorldRec {
  readonly id: WorldId
  readonly vm: VmRec
  readonly vcpu: number
  readonly affinity: ReadonlySet<number> | undefined
  readonly createdAt: number
  /** Progress a hot-added vCPU starts with (its siblings' laggard). */
  readonly progressBase: number
  state: WorldState
  /** Columns are current to this time (not meaningful while running). */
  since: number
  exitedAt: number | undefined
  used: number
  ready: number
  halted: number
  costop: number
  limited: number
  vtime: number
  pcpu: number | undefined
  lastPcpu: number | undefined
  dispatchedAt: number
}

export interface PcpuRec {
  readonly id: number
  current: WorldRec | undefined
  idleSince: number
  used: number
  idle: number
}

/** Runnable but not on a pCPU. */
export const isWaiting = (s: WorldState): boolean => s === "ready" || s === "costop" || s === "limited"

/** A world's share weight: its VM's shares over the VM's live vCPUs. */
export const weightOf = (w: WorldRec): number => {
  const live = Math.max(1, w.vm.live)
  return vmShares(w.vm.config.shares, live) / live
}

/** Co-scheduling view of a world at `now`: progress = used + halted (+ pending halt, + dispatch so far). */
export const progressOf = (w: WorldRec, now: number): VcpuProgress => {
  const pendingHalt = w.state === "halted" ? now - w.since : 0
  const inFlight = w.state === "running" ? now - w.dispatchedAt : 0
  return { halted: w.state === "halted", progress: w.progressBase + w.used + w.halted + pendingHalt + inFlight }
}

/** The live vCPUs of a VM as the co-scheduler sees them. */
export const vcpusOf = (vm: VmRec, now: number): Array<VcpuProgress> =>
  vm.worlds.filter((w) => w.state !== "exited").map((w) => progressOf(w, now))

export const worldStats = (w: WorldRec, now: number): WorldStats => {
  const pending = w.state !== "running" && w.state !== "exited" ? now - w.since : 0
  const running = w.state === "running" ? now - w.dispatchedAt : 0
  const halted = w.halted + (w.state === "halted" ? pending : 0)
  return {
    id: w.id,
    vm: w.vm.id,
    vcpu: w.vcpu,
    state: w.state,
    pcpu: w.pcpu,
    used: w.used,
    ready: w.ready + (w.state === "ready" ? pending : 0),
    halted,
    costop: w.costop + (w.state === "costop" ? pending : 0),
    limited: w.limited + (w.state === "limited" ? pending : 0),
    running,
    lifetime: (w.exitedAt ?? now) - w.createdAt,
    vtime: w.vtime,
    progress: w.progressBase + w.used + halted + running,
    weight: weightOf(w)
  }
}

export const vmStats = (vm: VmRec, now: number, window: number, worlds: ReadonlyMap<WorldId, WorldStats>): VmStats => {
  const mine = vm.worlds.map((w) => worlds.get(w.id)!)
  const sum = (k: "used" | "ready" | "halted" | "costop" | "limited" | "running"): number =>
    mine.reduce((s, w) => s + w[k], 0)
  const buckets = { ...vm.buckets }
  accrue(buckets, vm.config, window, now)
  const live = mine.filter((w) => w.state !== "exited")
  return {
    id: vm.id,
    name: vm.config.name,
    shares: vmShares(vm.config.shares, vm.live),
    reservation: vm.config.reservation,
    limit: vm.config.limit,
    vcpus: vm.live,
    used: sum("used"),
    ready: sum("ready"),
    halted: sum("halted"),
    costop: sum("costop"),
    limited: sum("limited"),
    running: sum("running"),
    skew: skewOf(live.map((w) => ({ halted: w.state === "halted", progress: w.progress }))),
    reserveCredit: buckets.reserve,
    limitBudget: buckets.budget,
    worlds: mine.map((w) => w.id)
  }
}

export const pcpuStats = (p: PcpuRec, now: number, start: number): PcpuStats => ({
  id: p.id,
  used: p.used,
  idle: p.idle + (p.current === undefined ? now - p.idleSince : 0),
  running: p.current === undefined ? 0 : now - p.current.dispatchedAt,
  elapsed: now - start,
  current: p.current?.id
})
