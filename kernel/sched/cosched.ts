/**
 * Relaxed co-scheduling of a multi-vCPU VM, as ESX 4.x/5.x do it (VMware,
 * "The CPU Scheduler in VMware vSphere 5.1", 2013, section "Relaxed
 * Co-Scheduling"; "VMware vSphere 4: The CPU Scheduler in VMware ESX 4",
 * 2009). A guest OS assumes its CPUs advance together (spin locks, IPIs,
 * TLB shoot-downs); if one vCPU runs far ahead of a sibling that waits for a
 * pCPU, the guest sees that sibling as hung. So:
 *
 * - Each vCPU has a PROGRESS: the time it ran plus the time it was halted
 *   (a halted vCPU is idle in the guest's eyes, which is progress: it never
 *   makes its siblings look ahead). Ready, co-stopped and limited time are
 *   not progress. A dispatched vCPU counts its time on the pCPU so far.
 * - The LAGGARD is the least-progressed vCPU that is not halted; the SKEW of
 *   the VM is the spread of progress among its non-halted vCPUs.
 * - A runnable vCPU whose progress leads the laggard by the skew threshold
 *   or more is CO-STOPPED: not eligible until the laggard catches up
 *   (relaxed: only the leaders stop, the VM is never stopped as a whole, and
 *   the laggard itself is never co-stopped, so there is no deadlock).
 *
 * Since a vCPU is judged when it is picked (it leads by less than the
 * threshold) and then runs one quantum, the skew stays below threshold +
 * quantum.
 */

/** One vCPU as the co-scheduler sees it. */
export interface VcpuProgress {
  readonly halted: boolean
  readonly progress: number
}

/** Least progress among the non-halted vCPUs (undefined when all are halted). */
export const laggardProgress = (vcpus: ReadonlyArray<VcpuProgress>): number | undefined => {
  let min: number | undefined
  for (const v of vcpus) if (!v.halted && (min === undefined || v.progress < min)) min = v.progress
  return min
}

/** Spread of progress among the non-halted vCPUs (0 with fewer than two). */
export const skewOf = (vcpus: ReadonlyArray<VcpuProgress>): number => {
  let min = Number.POSITIVE_INFINITY
  let max = Number.NEGATIVE_INFINITY
  for (const v of vcpus) {
    if (v.halted) continue
    if (v.progress < min) min = v.progress
    if (v.progress > max) max = v.progress
  }
  return max > min ? max - min : 0
}

/** Whether a runnable vCPU with `progress` must be co-stopped. */
export const isCoStopped = (progress: number, laggard: number | undefined, threshold: number): boolean =>
  laggard !== undefined && progress - laggard >= threshold
