/**
 * The fw_cfg device's guest-visible state as a named plain record. The
 * items themselves are configuration (built from the options), not state.
 */
export interface FwCfgState {
  /** The 16-bit key last written to the selector. */
  readonly selector: number
  /** The data offset within the selected item. */
  readonly offset: number
}
