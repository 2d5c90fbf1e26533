/**
 * The fvblk controller's state as a named plain record (snapshots, migration,
 * tests): JSON-safe. `Fvblk.snapshot()` produces one, `restore()` takes one.
 * The disk's contents are not here: they belong to the back-end.
 */
export interface FvblkState {
  readonly ringBase: number
  readonly ringSize: number
  /** DOORBELL: descriptors posted so far (mod 2^32). */
  readonly producer: number
  /** COMPLETION: descriptors completed so far (mod 2^32). */
  readonly completed: number
  readonly intStatus: number
  readonly intMask: number
  readonly faultCode: number
  /** Virtual time (ns) at which the request in service completes; null when idle. */
  readonly serviceEnd: number | null
}
