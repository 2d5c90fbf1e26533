/**
 * The kernel trace: a bounded ring of structured events (scheduling
 * decisions, VM exits, boot steps, panics) that tests and the panic dump
 * read. Events are typed records with a `_tag`, never free-form strings, and
 * carry virtual time only. Recording is synchronous and allocation-light so
 * the scheduler can call it once per quantum.
 */
import { Context, Effect, Layer } from "effect"

export type TraceEvent =
  | { readonly _tag: "Boot"; readonly at: number; readonly step: string; readonly detail: string }
  | { readonly _tag: "Dispatch"; readonly at: number; readonly pcpu: number; readonly world: string }
  | {
      readonly _tag: "Charge"
      readonly at: number
      readonly pcpu: number
      readonly world: string
      readonly used: number
      readonly state: string
    }
  | { readonly _tag: "Idle"; readonly at: number; readonly pcpu: number; readonly until: number }
  | { readonly _tag: "VmExit"; readonly at: number; readonly vm: string; readonly reason: number }
  | { readonly _tag: "VmEnded"; readonly at: number; readonly vm: string; readonly why: string }
  | { readonly _tag: "Panic"; readonly at: number; readonly message: string }

/** A fixed-capacity ring buffer of trace events, oldest overwritten first. */
export class TraceRing {
  readonly capacity: number
  private readonly events: Array<TraceEvent | undefined>
  private next = 0
  private count = 0

  constructor(capacity = 4096) {
    this.capacity = capacity
    this.events = new Array<TraceEvent | undefined>(capacity)
  }

  record(event: TraceEvent): void {
    this.events[this.next] = event
    this.next = (this.next + 1) % this.capacity
    if (this.count < this.capacity) this.count++
  }

  /** The most recent `n` events, oldest first. */
  recent(n = this.capacity): Array<TraceEvent> {
    const k = Math.min(n, this.count)
    const out: Array<TraceEvent> = []
    for (let i = k; i > 0; i--) out.push(this.events[(this.next - i + this.capacity) % this.capacity]!)
    return out
  }
}

export class Trace extends Context.Service<
  Trace,
  {
    /** Record synchronously (hot paths inside Effect.sync). */
    readonly recordUnsafe: (event: TraceEvent) => void
    readonly record: (event: TraceEvent) => Effect.Effect<void>
    readonly recent: (n?: number) => Effect.Effect<ReadonlyArray<TraceEvent>>
  }
>()("fibervisor/Trace") {
  static readonly layer = (capacity = 4096) =>
    Layer.sync(Trace, () => {
      const ring = new TraceRing(capacity)
      return Trace.of({
        recordUnsafe: (event) => ring.record(event),
        record: (event) => Effect.sync(() => ring.record(event)),
        recent: (n) => Effect.sync(() => ring.recent(n))
      })
    })
}
