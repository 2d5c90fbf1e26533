/** The debug ports' state as named plain records (snapshots, tests). */
export interface DebugconState {
  /** Bytes written so far (a counter, not the bytes: they went to the sink). */
  readonly bytesWritten: number
}

export interface DebugExitState {
  /** The value of the last exit request, or null if the guest never wrote the port. */
  readonly exitValue: number | null
}
