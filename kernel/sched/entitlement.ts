/**
 * Reservation and limit of one VM as two token buckets over virtual time
 * (the leaky-bucket form of an ESX "entitlement": VMware "vSphere Resource
 * Management Guide", "CPU Virtualization Basics" / "Limits"; Turner, "New
 * directions in communications", 1986, for the bucket itself).
 *
 *   reserve: +reservation per unit of time, -used when the VM is charged,
 *            kept within [-reservation*window, +reservation*window].
 *            reserve > 0  <=> the VM is behind its guaranteed share over the
 *            window: its worlds go first (the "reserved" class).
 *   budget:  +limit per unit of time, -used when charged, at most
 *            limit*window (no floor: a VM that overran waits it off).
 *            budget < 0   <=> the VM is at its cap: its worlds are not
 *            eligible ("limited", esxtop's %MLMTD) until time refills it.
 *
 * Over any interval T a VM therefore uses at most limit*T + limit*window
 * + (vCPUs x quantum), and, while it stays runnable, at least
 * reservation*T - reservation*window - (one quantum per pCPU). Accrual is
 * linear in time between charges, so the result does not depend on how
 * often the caller looks (refilling in one step or in many gives the same
 * balance, up to rounding: `isLimited` forgives 1e-12 of a window).
 */
import type { ResolvedVmConfig } from "./config.ts"

export interface Buckets {
  /** Reservation credit (positive: owed time). */
  reserve: number
  /** Limit budget (negative: over the cap). */
  budget: number
  /** Virtual time both balances are current to. */
  at: number
}

/** Fresh buckets: no reservation credit yet, a full limit budget (the VM starts as if it had been idle). */
export const newBuckets = (cfg: ResolvedVmConfig, window: number, now: number): Buckets => ({
  reserve: 0,
  budget: Number.isFinite(cfg.limit) ? cfg.limit * window : 0,
  at: now
})

/** Bring both balances to `now` (time only refills). */
export const accrue = (b: Buckets, cfg: ResolvedVmConfig, window: number, now: number): void => {
  const dt = now - b.at
  if (dt <= 0) return
  b.at = now
  if (cfg.reservation > 0) b.reserve = Math.min(cfg.reservation * window, b.reserve + cfg.reservation * dt)
  if (Number.isFinite(cfg.limit)) b.budget = Math.min(cfg.limit * window, b.budget + cfg.limit * dt)
}

/** Charge `used` time of one of the VM's worlds to both balances. */
export const drain = (b: Buckets, cfg: ResolvedVmConfig, window: number, used: number): void => {
  if (cfg.reservation > 0) b.reserve = Math.max(-cfg.reservation * window, b.reserve - used)
  if (Number.isFinite(cfg.limit)) b.budget -= used
}

/** Behind its reservation over the window: the VM's worlds are scheduled first. */
export const isReserved = (b: Buckets, cfg: ResolvedVmConfig): boolean => cfg.reservation > 0 && b.reserve > 0

/** At its cap: the VM's worlds wait ("limited") until the budget refills to zero. */
export const isLimited = (b: Buckets, cfg: ResolvedVmConfig, window: number): boolean =>
  Number.isFinite(cfg.limit) && b.budget < -cfg.limit * window * 1e-12

/** When a limited VM becomes eligible again (undefined: it is not limited). */
export const limitLiftsAt = (b: Buckets, cfg: ResolvedVmConfig, window: number): number | undefined =>
  isLimited(b, cfg, window) ? b.at + -b.budget / cfg.limit : undefined
