/**
 * Scheduler and per-VM resource settings: the three ESX CPU controls
 * (VMware "vSphere Resource Management Guide", chapter "Configuring Resource
 * Allocation Settings": shares, reservation, limit) and the scheduler's own
 * parameters (quantum, co-stop skew threshold, accounting window).
 *
 * Units: every time is in the caller's virtual time unit (the machine's
 * virtual nanoseconds, or cycles); the defaults below assume nanoseconds.
 * Reservation and limit are fractions of ONE pCPU's time (0.5 = half a pCPU;
 * a 2-vCPU VM may have up to 2.0) and apply to the VM as a whole, as in ESX
 * (where they are MHz for the whole VM): the VM's worlds draw on one budget.
 *
 * Invariants checked here (a violation is a caller bug: SchedulerError):
 * - shares > 0 and finite; 0 <= reservation; limit > 0; reservation <= limit;
 * - admission control (ESX "Admission Control"): the sum of all VMs'
 *   reservations never exceeds the number of pCPUs;
 * - window >= quantum > 0, skewThreshold > 0.
 */

/** Raised on a scheduler API misuse (a hypervisor bug, never a guest condition). */
export class SchedulerError extends Error {
  override readonly name = "SchedulerError"
}

/** ESX share levels, per vCPU ("Resource Management Guide", "CPU shares": high 2000, normal 1000, low 500). */
export const shareLevels = { high: 2000, normal: 1000, low: 500 } as const
export type ShareLevel = keyof typeof shareLevels

/**
 * One VM's CPU settings. `shares`: a level (per vCPU, so a 2-vCPU "normal"
 * VM holds 2000) or a custom number (for the whole VM, as ESX's "custom").
 * Each world's weight is the VM's shares divided among its live vCPUs.
 */
export interface VmConfig {
  readonly name?: string
  readonly shares?: ShareLevel | number
  /** Guaranteed fraction of one pCPU for the VM (default 0). */
  readonly reservation?: number
  /** Cap as a fraction of one pCPU for the VM (default: none). */
  readonly limit?: number
}

/** Recommended quantum: 1 ms of virtual time (millions of cycles, far above DESIGN.md's ~10k-instruction floor). */
export const RECOMMENDED_QUANTUM_NS = 1_000_000

export interface SchedulerConfig {
  readonly pcpus: number
  /** The caller's quantum; used to size the defaults below (default RECOMMENDED_QUANTUM_NS). */
  readonly quantum?: number
  /** Co-stop a vCPU whose progress leads its VM's laggard by this much (default 3 quanta: ESX's 3 ms). */
  readonly skewThreshold?: number
  /** Accounting window of reservations and limits: the most credit or debt a VM carries (default 10 quanta). */
  readonly window?: number
  /** Virtual time at which the pCPUs come up (default 0). */
  readonly start?: number
}

export interface ResolvedConfig {
  readonly pcpus: number
  readonly quantum: number
  readonly skewThreshold: number
  readonly window: number
  readonly start: number
}

const positive = (what: string, v: number): number => {
  if (!(Number.isFinite(v) && v > 0)) throw new SchedulerError(`${what} must be a positive finite number, got ${v}`)
  return v
}

export const resolveConfig = (c: SchedulerConfig): ResolvedConfig => {
  if (!(Number.isInteger(c.pcpus) && c.pcpus >= 1)) throw new SchedulerError(`pcpus must be an integer >= 1`)
  const quantum = positive("quantum", c.quantum ?? RECOMMENDED_QUANTUM_NS)
  const skewThreshold = positive("skewThreshold", c.skewThreshold ?? 3 * quantum)
  const window = positive("window", c.window ?? 10 * quantum)
  if (window < quantum) throw new SchedulerError(`window (${window}) must be at least one quantum (${quantum})`)
  const start = c.start ?? 0
  if (!Number.isFinite(start)) throw new SchedulerError(`start must be finite`)
  return { pcpus: c.pcpus, quantum, skewThreshold, window, start }
}

/** A VM's settings with defaults applied; `limit` is Infinity for "none". */
export interface ResolvedVmConfig {
  readonly name: string
  readonly shares: ShareLevel | number
  readonly reservation: number
  readonly limit: number
}

export const resolveVmConfig = (c: VmConfig, fallbackName: string): ResolvedVmConfig => {
  const shares = c.shares ?? "normal"
  if (typeof shares === "number") positive("shares", shares)
  else if (!(shares in shareLevels)) throw new SchedulerError(`unknown share level ${String(shares)}`)
  const reservation = c.reservation ?? 0
  if (!(Number.isFinite(reservation) && reservation >= 0))
    throw new SchedulerError(`reservation must be a finite number >= 0, got ${reservation}`)
  const limit = c.limit === undefined ? Number.POSITIVE_INFINITY : positive("limit", c.limit)
  if (reservation > limit) throw new SchedulerError(`reservation ${reservation} exceeds limit ${limit}`)
  return { name: c.name ?? fallbackName, shares, reservation, limit }
}

/** The VM's total shares with `vcpus` live vCPUs. */
export const vmShares = (shares: ShareLevel | number, vcpus: number): number =>
  typeof shares === "number" ? shares : shareLevels[shares] * vcpus
