/**
 * kernel/sched: the world scheduler (proportional share with ESX shares,
 * reservation and limit; relaxed co-scheduling). Start at scheduler.ts; the
 * mechanisms it composes are entitlement.ts (reservation/limit buckets) and
 * cosched.ts (skew and co-stop); config.ts holds the settings, types.ts the
 * accounting records, records.ts the internal records and their views.
 */
export {
  RECOMMENDED_QUANTUM_NS,
  type SchedulerConfig,
  SchedulerError,
  type ShareLevel,
  shareLevels,
  type VmConfig
} from "./config.ts"
export { Scheduler } from "./scheduler.ts"
export type {
  NextState,
  PcpuStats,
  SchedulerStats,
  TimeColumns,
  VmId,
  VmStats,
  WorldId,
  WorldOptions,
  WorldState,
  WorldStats
} from "./types.ts"
