/**
 * The vmkernel's console: kernel log lines go out through the serial driver
 * (drivers/serial.ts) to the host's physical UART, and from there to the
 * UART's host back-end (stdout, a socket, a test buffer). The most recent
 * lines are also kept in a bounded ring for the panic dump, so a dump still
 * shows what the kernel said just before it died.
 *
 * Line format: `[sssss.uuuuuu] text` with the machine's virtual time when a
 * `now` clock is given (seconds and microseconds, as Linux prints its log),
 * else just `text`. A message with several lines is logged as several
 * lines, each with the prefix. Control characters (C0, DEL, C1) are shown
 * escaped as `\xNN`: a string a guest managed to get into a log
 * line cannot drive the host's terminal.
 *
 * Writing is synchronous inside one Effect.sync, so concurrent fibers never
 * interleave within a line. Named KernelConsole so as not to clash with
 * effect's Console service.
 */
import { Context, Effect, Layer } from "effect"
import type { SerialConsole } from "../../drivers/serial.ts"

export interface KernelConsoleOptions {
  /** The opened serial driver (drivers/serial.ts). */
  readonly serial: SerialConsole
  /** Lines kept for the panic dump (default 256). */
  readonly capacity?: number
  /** Machine virtual time in ns, for the line prefix (e.g. () => machine.now). */
  readonly now?: () => number
}

export interface KernelConsoleStats {
  readonly lines: number
  /** Bytes the UART took. */
  readonly bytes: number
  /** Bytes given up on (the UART never showed THRE). */
  readonly dropped: number
}

export interface KernelConsoleShape {
  /** Write one message (one or more lines) to the UART and the ring. */
  readonly log: (message: string) => Effect.Effect<void>
  /** The same, synchronously (hot paths already inside Effect.sync, the panic path). */
  readonly logUnsafe: (message: string) => void
  /** The most recent `n` lines (default: all kept), oldest first, as they were written. */
  readonly recent: (n?: number) => Effect.Effect<ReadonlyArray<string>>
  /** The same, synchronously (for the panic dump). */
  readonly recentUnsafe: (n?: number) => ReadonlyArray<string>
  readonly stats: Effect.Effect<KernelConsoleStats>
}

/** A fixed-capacity ring of lines, oldest overwritten first. */
export class LineRing {
  readonly capacity: number
  private readonly lines: Array<string>
  private next = 0
  private count = 0

  constructor(capacity: number) {
    if (!Number.isInteger(capacity) || capacity < 1) throw new RangeError("LineRing: capacity must be >= 1")
    this.capacity = capacity
    this.lines = new Array<string>(capacity).fill("")
  }

  push(line: string): void {
    this.lines[this.next] = line
    this.next = (this.next + 1) % this.capacity
    if (this.count < this.capacity) this.count++
  }

  recent(n = this.capacity): Array<string> {
    const k = Math.max(0, Math.min(Math.floor(n), this.count))
    const out: Array<string> = []
    for (let i = k; i > 0; i--) out.push(this.lines[(this.next - i + this.capacity) % this.capacity]!)
    return out
  }
}

// C0 controls, DEL, and C1 controls
// biome-ignore lint/suspicious/noControlCharactersInRegex: matching control characters is the point
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/g

/** Escape control characters so a log line cannot drive the host terminal. */
export const sanitize = (line: string): string =>
  line.replace(CONTROL, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, "0")}`)

/** `[sssss.uuuuuu]` for a virtual time in ns. */
export const timestamp = (ns: number): string => {
  const t = Math.max(0, Math.floor(ns))
  const seconds = Math.floor(t / 1e9)
  const micros = Math.floor((t % 1e9) / 1000)
  return `[${String(seconds).padStart(5, " ")}.${String(micros).padStart(6, "0")}]`
}

/** Split a message into the lines it will be logged as (a trailing newline adds no empty line). */
export const linesOf = (message: string): Array<string> => {
  const lines = message.split(/\r?\n/)
  if (lines.length > 1 && lines[lines.length - 1] === "") lines.pop()
  return lines
}

export const make = (options: KernelConsoleOptions): Effect.Effect<KernelConsoleShape> =>
  Effect.sync(() => {
    const { serial, now } = options
    const ring = new LineRing(options.capacity ?? 256)
    let lines = 0
    const logUnsafe = (message: string): void => {
      const prefix = now === undefined ? "" : `${timestamp(now())} `
      for (const raw of linesOf(message)) {
        const line = prefix + sanitize(raw)
        ring.push(line)
        lines++
        serial.writeString(`${line}\n`)
      }
    }
    return {
      log: (message) => Effect.sync(() => logUnsafe(message)),
      logUnsafe,
      recent: (n) => Effect.sync(() => ring.recent(n)),
      recentUnsafe: (n) => ring.recent(n),
      stats: Effect.sync(() => ({ lines, bytes: serial.transmitted, dropped: serial.dropped }))
    }
  })

export class KernelConsole extends Context.Service<KernelConsole, KernelConsoleShape>()("fibervisor/KernelConsole") {
  static readonly make = make
  static readonly layer = (options: KernelConsoleOptions): Layer.Layer<KernelConsole> =>
    Layer.effect(KernelConsole, make(options))
}
