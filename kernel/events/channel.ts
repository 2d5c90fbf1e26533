/**
 * Typed event / IPC channels between kernel fibers: a channel carries one
 * message type (a tagged union), so there are no string event names to
 * misspell. A thin wrapper over an unbounded Effect Queue.
 */
import { Effect, Queue } from "effect"

export interface Channel<A> {
  readonly send: (message: A) => Effect.Effect<void>
  /** Synchronous send, for callbacks running inside a quantum. */
  readonly sendUnsafe: (message: A) => void
  readonly receive: Effect.Effect<A>
  /** Everything queued now (possibly nothing), without waiting. */
  readonly drain: Effect.Effect<ReadonlyArray<A>>
}

export const makeChannel = <A>(): Effect.Effect<Channel<A>> =>
  Effect.map(Queue.unbounded<A>(), (queue) => ({
    send: (message) => Effect.asVoid(Queue.offer(queue, message)),
    sendUnsafe: (message) => {
      Queue.offerUnsafe(queue, message)
    },
    receive: Queue.take(queue),
    drain: Queue.clear(queue)
  }))
