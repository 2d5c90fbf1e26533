/**
 * What an fvnic's cable plugs into. The device calls `send` for each frame it
 * transmits and registers one receive callback at construction; a back-end
 * delivers incoming frames by calling it. In-process back-ends here:
 *
 * - `noneBackend`: a cable to nowhere; frames sent vanish, none arrive;
 * - `loopbackBackend`: a loopback plug; every frame sent comes back in;
 * - `loopbackPair`: a crossover cable between two NICs.
 *
 * Loopback delivery is synchronous (inside `send`) and copies the frame, so
 * a run is deterministic and a receiver never aliases the sender's memory.
 * Host-facing back-ends (sockets, taps) belong in hw/backends/.
 */

export interface NicBackend {
  send(frame: Uint8Array): void
  onReceive(callback: (frame: Uint8Array) => void): void
}

export const noneBackend = (): NicBackend => ({
  send: () => {},
  onReceive: () => {}
})

/** One end of a cable: frames sent on it arrive at `peer()`'s receiver. */
const cableEnd = (
  peer: () => ((frame: Uint8Array) => void) | undefined,
  set: (cb: (frame: Uint8Array) => void) => void
) => ({
  send: (frame: Uint8Array) => peer()?.(frame.slice()),
  onReceive: set
})

export const loopbackBackend = (): NicBackend => {
  let receiver: ((frame: Uint8Array) => void) | undefined
  return cableEnd(
    () => receiver,
    (cb) => {
      receiver = cb
    }
  )
}

/** Two back-ends wired to each other: what `a` sends, `b` receives, and back. */
export const loopbackPair = (): { readonly a: NicBackend; readonly b: NicBackend } => {
  let toA: ((frame: Uint8Array) => void) | undefined
  let toB: ((frame: Uint8Array) => void) | undefined
  return {
    a: cableEnd(
      () => toB,
      (cb) => {
        toA = cb
      }
    ),
    b: cableEnd(
      () => toA,
      (cb) => {
        toB = cb
      }
    )
  }
}
