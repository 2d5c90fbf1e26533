/**
 * The fvnic controller's state as a named plain record (snapshots, migration,
 * tests): JSON-safe. `Fvnic.snapshot()` produces one, `restore()` takes one.
 */
export interface NicRingState {
  readonly base: number
  readonly size: number
  /** Descriptors completed by the controller (mod 2^32). */
  readonly head: number
  /** Descriptors posted by the driver (mod 2^32). */
  readonly tail: number
}

export interface FvnicState {
  /** The current MAC address, 6 bytes. */
  readonly mac: ReadonlyArray<number>
  readonly control: number
  readonly intStatus: number
  readonly intMask: number
  readonly tx: NicRingState
  readonly rx: NicRingState
  readonly faultCode: number
  readonly rxDropped: number
  /** Cable state (physical: RESET does not change it). */
  readonly linkUp: boolean
}
