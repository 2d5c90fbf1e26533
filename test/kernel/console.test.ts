/**
 * kernel/console/service.ts: KernelConsole log lines travel through the
 * serial driver to the physical UART of a real Machine and reach its host
 * back-end; the ring keeps the most recent lines for the panic dump;
 * virtual-time prefixes; control characters cannot reach the host terminal.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Fiber } from "effect"
import { SerialConsole } from "../../drivers/serial.ts"
import { KernelConsole, LineRing, sanitize, timestamp } from "../../kernel/console/service.ts"
import { makeHost, unwrap } from "../drivers/harness.ts"

const text = (bytes: ReadonlyArray<number>) => new TextDecoder().decode(Uint8Array.from(bytes))

const host = (options: { capacity?: number; clock?: boolean } = {}) => {
  const h = makeHost()
  const serial = unwrap(SerialConsole.open(h.machine.ports))
  const layer = KernelConsole.layer({
    serial,
    ...(options.capacity === undefined ? {} : { capacity: options.capacity }),
    ...(options.clock ? { now: () => h.machine.now } : {})
  })
  return { ...h, layer }
}

describe("KernelConsole", () => {
  it.effect("log lines reach the UART's host back-end", () => {
    const h = host()
    return Effect.gen(function* () {
      const kc = yield* KernelConsole
      yield* kc.log("vmkernel: booting")
      yield* kc.log("two\nlines\n")
      expect(text(h.serial)).toBe("vmkernel: booting\ntwo\nlines\n")
      expect(yield* kc.recent()).toEqual(["vmkernel: booting", "two", "lines"])
      expect(yield* kc.stats).toEqual({ lines: 3, bytes: h.serial.length, dropped: 0 })
    }).pipe(Effect.provide(h.layer))
  })

  it.effect("prefixes lines with the machine's virtual time", () => {
    const h = host({ clock: true })
    return Effect.gen(function* () {
      const kc = yield* KernelConsole
      h.machine.advanceDevices(1_234_567_890)
      yield* kc.log("tick")
      expect(text(h.serial)).toBe("[    1.234567] tick\n")
    }).pipe(Effect.provide(h.layer))
  })

  it.effect("keeps only the most recent lines for the panic dump", () => {
    const h = host({ capacity: 4 })
    return Effect.gen(function* () {
      const kc = yield* KernelConsole
      for (let i = 0; i < 10; i++) yield* kc.log(`line ${i}`)
      expect(yield* kc.recent()).toEqual(["line 6", "line 7", "line 8", "line 9"])
      expect(kc.recentUnsafe(2)).toEqual(["line 8", "line 9"])
      expect(text(h.serial).split("\n").length).toBe(11) // every line still went out
    }).pipe(Effect.provide(h.layer))
  })

  it.effect("concurrent fibers never interleave inside a line", () => {
    const h = host()
    return Effect.gen(function* () {
      const kc = yield* KernelConsole
      const writer = (who: string) =>
        Effect.forEach(
          Array.from({ length: 20 }, (_, i) => i),
          (i) => kc.log(`${who}:${i}:${who.repeat(30)}`).pipe(Effect.andThen(Effect.yieldNow))
        )
      const a = yield* Effect.forkChild(writer("a"))
      const b = yield* Effect.forkChild(writer("b"))
      yield* Fiber.join(a)
      yield* Fiber.join(b)
      const lines = text(h.serial).trimEnd().split("\n")
      expect(lines.length).toBe(40)
      for (const line of lines) expect(line).toMatch(/^(a:\d+:a{30}|b:\d+:b{30})$/)
    }).pipe(Effect.provide(h.layer))
  })

  it("escapes control characters so a log line cannot drive the host terminal", () => {
    expect(sanitize("red \u001b[31m bell \u0007 del \u007f ok é")).toBe("red \\x1b[31m bell \\x07 del \\x7f ok é")
    const h = host()
    Effect.runSync(KernelConsole.use((kc) => kc.log("evil \u001b]0;pwned\u0007")).pipe(Effect.provide(h.layer)))
    expect(h.serial.includes(0x1b)).toBe(false)
    expect(h.serial.includes(0x07)).toBe(false)
  })

  it("formats timestamps and keeps a bounded ring", () => {
    expect(timestamp(0)).toBe("[    0.000000]")
    expect(timestamp(61_000_001_000)).toBe("[   61.000001]")
    const ring = new LineRing(3)
    for (const l of ["a", "b", "c", "d"]) ring.push(l)
    expect(ring.recent()).toEqual(["b", "c", "d"])
    expect(ring.recent(0)).toEqual([])
    expect(() => new LineRing(0)).toThrow(RangeError)
  })
})
