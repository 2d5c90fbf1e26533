/**
 * A lockstep simulation loop for the scheduler tests: virtual time advances
 * in equal quanta; at every step each pCPU picks a world, every picked world
 * runs the whole quantum and is charged at the step's end. Hooks inject
 * wakes/halts before the picks and observe the state after the charges.
 * No Effect and no clock: the loop IS the machine's time.
 */
import type { Scheduler } from "../../../kernel/sched/scheduler.ts"
import type { NextState, VmId, WorldId } from "../../../kernel/sched/types.ts"

export interface LockstepOptions {
  readonly quantum: number
  readonly quanta: number
  /** Virtual time of the first step (default 0). */
  readonly start?: number
  /** What a world does after its quantum (default: it stays runnable). */
  readonly next?: (world: WorldId, t: number) => NextState
  /** Before the picks of each step, at its start time. */
  readonly before?: (step: number, t: number) => void
  /** After the charges of each step, at its end time. */
  readonly after?: (step: number, t: number) => void
}

/** Run the loop; returns the decision trace, one "t:pcpu:world" entry per pick ("-" = idle). */
export const runLockstep = (s: Scheduler, o: LockstepOptions): Array<string> => {
  const trace: Array<string> = []
  const pcpus = s.config.pcpus
  const start = o.start ?? 0
  for (let k = 0; k < o.quanta; k++) {
    const t = start + k * o.quantum
    o.before?.(k, t)
    const picked: Array<WorldId | undefined> = []
    for (let p = 0; p < pcpus; p++) {
      const w = s.pick(p, t)
      picked.push(w)
      trace.push(`${t}:${p}:${w ?? "-"}`)
    }
    const end = t + o.quantum
    for (const w of picked) if (w !== undefined) s.charge(w, o.quantum, end, o.next?.(w, end) ?? "runnable")
    o.after?.(k, end)
  }
  return trace
}

/** A VM's used time as a fraction of one pCPU over the time from the start to `now`. */
export const shareOf = (s: Scheduler, now: number, vm: VmId): number =>
  s.stats(now).vms.find((v) => v.id === vm)!.used / (now - s.config.start)

/** A VM with `vcpus` runnable worlds, added at `now`. */
export const vmWith = (
  s: Scheduler,
  config: Parameters<Scheduler["addVm"]>[0],
  vcpus = 1,
  now = 0
): { vm: VmId; worlds: Array<WorldId> } => {
  const vm = s.addVm(config)
  const worlds = Array.from({ length: vcpus }, () => s.addWorld(vm, now))
  return { vm, worlds }
}
