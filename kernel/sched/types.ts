/**
 * The scheduler's public vocabulary: ids, world states and the named
 * accounting records `Scheduler.stats` returns (esxtop's CPU panel: %USED,
 * %RDY, %WAIT/%IDLE, %CSTP, %MLMTD, in absolute virtual time).
 *
 * Accounting identities (checked by test/kernel/sched/accounting.test.ts):
 * - per world: used + ready + halted + costop + limited + running = lifetime;
 * - per pCPU:  used + idle + running = elapsed;
 * where `running` is the time a world has been dispatched and not yet
 * charged (0 whenever every pCPU has been charged). esxtop's %RDY includes
 * %MLMTD; here `ready` excludes it so that the columns partition time.
 */

export type VmId = number
export type WorldId = number

/**
 * running: dispatched on a pCPU, not yet charged.
 * ready:   runnable and eligible, waiting for a pCPU.
 * costop:  runnable, held back by co-scheduling (leads its VM's laggard).
 * limited: runnable, held back because its VM is at its limit.
 * halted:  HLT/idle (waits for `wake`), consumes nothing.
 * exited:  gone; its accounting is frozen.
 */
export type WorldState = "running" | "ready" | "costop" | "limited" | "halted" | "exited"

/** What a world does after its quantum, as `charge` is told. */
export type NextState = "runnable" | "halted" | "exited"

export interface WorldOptions {
  /** Hard affinity: the pCPUs this world may run on (default: all; worlds migrate freely). */
  readonly affinity?: ReadonlyArray<number>
  /** Start halted (a secondary vCPU waiting for its INIT/SIPI, say). */
  readonly halted?: boolean
}

/** Time columns shared by worlds and VMs. */
export interface TimeColumns {
  readonly used: number
  readonly ready: number
  readonly halted: number
  readonly costop: number
  readonly limited: number
  /** Dispatched and not yet charged. */
  readonly running: number
}

export interface WorldStats extends TimeColumns {
  readonly id: WorldId
  readonly vm: VmId
  /** Index of this vCPU in its VM (0 = boot vCPU). */
  readonly vcpu: number
  readonly state: WorldState
  /** The pCPU it is dispatched on, if running. */
  readonly pcpu: number | undefined
  /** From `addWorld` to now (or to its exit). */
  readonly lifetime: number
  /** Its virtual time (stride "pass"): used / weight, clamped as documented. */
  readonly vtime: number
  /** Co-scheduling progress: used + halted (+ running). */
  readonly progress: number
  /** Its share weight: the VM's shares over its live vCPUs. */
  readonly weight: number
}

export interface VmStats extends TimeColumns {
  readonly id: VmId
  readonly name: string
  /** Total shares of the VM (over its live vCPUs). */
  readonly shares: number
  readonly reservation: number
  /** Infinity: no limit. */
  readonly limit: number
  /** Live (not exited) vCPUs. */
  readonly vcpus: number
  /** Spread of progress among its non-halted vCPUs. */
  readonly skew: number
  /** Reservation credit (> 0: behind its reservation). */
  readonly reserveCredit: number
  /** Limit budget (< 0: at its cap). */
  readonly limitBudget: number
  readonly worlds: ReadonlyArray<WorldId>
}

export interface PcpuStats {
  readonly id: number
  readonly used: number
  readonly idle: number
  /** Dispatched and not yet charged. */
  readonly running: number
  /** Since the scheduler started. */
  readonly elapsed: number
  readonly current: WorldId | undefined
}

export interface SchedulerStats {
  readonly now: number
  /** The scheduler's virtual time V (minimum vtime of the eligible worlds, never decreasing). */
  readonly virtualTime: number
  readonly pcpus: ReadonlyArray<PcpuStats>
  readonly vms: ReadonlyArray<VmStats>
  readonly worlds: ReadonlyArray<WorldStats>
}
