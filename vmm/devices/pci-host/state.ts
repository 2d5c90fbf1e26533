/**
 * The PCI host (configuration mechanism #1 + the i440FX host bridge) as a
 * named plain record (snapshots, migration, tests).
 */
export interface PciHostState {
  /** CONFIG_ADDRESS as last written (a dword). */
  readonly configAddress: number
  /** PIIX3 reset control register (bit 1 kept). */
  readonly resetControl: number
  /** The host bridge's 256-byte configuration space. */
  readonly hostBridgeConfig: readonly number[]
}
