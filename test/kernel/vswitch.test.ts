/**
 * The vSwitch (kernel/vswitch/vswitch.ts, service.ts): flooding within a
 * port group, MAC learning (IEEE 802.1D 7.8) and moves, filtering, frame
 * validation, per-port counters, detach, the per-port learning limit,
 * synchronous non-recursive delivery, the scoped Effect service, and a
 * fast-check property: random traffic never crosses port groups, never
 * returns to its sender, and known unicast reaches exactly its port.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Exit, Scope } from "effect"
import fc from "fast-check"
import { VSwitches, VSwitchNotFoundError } from "../../kernel/vswitch/service.ts"
import { formatMac, MAX_CASCADE, VSwitch } from "../../kernel/vswitch/vswitch.ts"

const mac = (n: number) => [0x02, 0, 0, 0, (n >> 8) & 0xff, n & 0xff]
const BROADCAST = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff]
const MULTICAST = [0x01, 0x00, 0x5e, 0, 0, 1]

const frame = (dst: ReadonlyArray<number>, src: ReadonlyArray<number>, length = 60, tag = 0) => {
  const f = new Uint8Array(Math.max(length, 15))
  f.set(dst, 0)
  f.set(src, 6)
  f[12] = 0x08
  f[14] = tag
  return f.slice(0, length)
}

const port = (sw: VSwitch, group: string, name: string) => {
  const got: Array<Uint8Array> = []
  const a = sw.attach(group, name)
  a.port.onReceive((f) => got.push(f))
  return { ...a, got, send: (f: Uint8Array) => a.port.send(f) }
}

describe("vSwitch forwarding", () => {
  it("floods unknown unicast, broadcast and multicast within the port group, never back to the sender", () => {
    const sw = new VSwitch()
    const a = port(sw, "pg1", "a")
    const b = port(sw, "pg1", "b")
    const c = port(sw, "pg1", "c")
    const x = port(sw, "pg2", "x")
    for (const dst of [mac(99), BROADCAST, MULTICAST]) a.send(frame(dst, mac(1)))
    expect(a.got).toHaveLength(0)
    expect(b.got).toHaveLength(3)
    expect(c.got).toHaveLength(3)
    expect(x.got).toHaveLength(0)
    expect(sw.stats()).toMatchObject({ flooded: 3, unicast: 0 })
  })

  it("learns source MACs: a second frame to a learned MAC is unicast, not flooded", () => {
    const sw = new VSwitch()
    const a = port(sw, "pg", "a")
    const b = port(sw, "pg", "b")
    const c = port(sw, "pg", "c")
    b.send(frame(BROADCAST, mac(2)))
    a.send(frame(mac(2), mac(1)))
    expect(b.got).toHaveLength(1)
    expect(c.got).toHaveLength(1) // only b's broadcast
    expect(sw.lookup("pg", formatMac(Uint8Array.from(mac(2))))).toBe("b")
    // the MAC moves to c
    c.send(frame(BROADCAST, mac(2)))
    a.send(frame(mac(2), mac(1)))
    expect(c.got).toHaveLength(2)
    expect(b.got).toHaveLength(2) // c's broadcast only
    expect(sw.portInfo().find((p) => p.name === "b")!.macs).toEqual([])
    // destination on the sender's own port: filtered
    c.send(frame(mac(2), mac(2)))
    expect(sw.stats().filtered).toBe(1)
    // a multicast source is never learned
    a.send(frame(BROADCAST, MULTICAST))
    expect(sw.lookup("pg", formatMac(Uint8Array.from(MULTICAST)))).toBeUndefined()
  })

  it("keeps learning tables per port group", () => {
    const sw = new VSwitch()
    const a = port(sw, "pg1", "a")
    const b = port(sw, "pg1", "b")
    const x = port(sw, "pg2", "x")
    const y = port(sw, "pg2", "y")
    a.send(frame(BROADCAST, mac(1)))
    x.send(frame(BROADCAST, mac(1))) // the same MAC in another group
    b.send(frame(mac(1), mac(2)))
    y.send(frame(mac(1), mac(3)))
    expect(a.got).toHaveLength(1)
    expect(x.got).toHaveLength(1)
    expect(b.got).toHaveLength(1)
    expect(y.got).toHaveLength(1)
  })

  it("validates frame sizes and counts per port", () => {
    const sw = new VSwitch()
    const a = port(sw, "pg", "a")
    const b = port(sw, "pg", "b")
    const tagged = frame(BROADCAST, mac(1), 1518)
    tagged[12] = 0x81
    tagged[13] = 0x00
    for (const f of [
      frame(BROADCAST, mac(1), 13),
      frame(BROADCAST, mac(1), 14),
      frame(BROADCAST, mac(1), 1514),
      frame(BROADCAST, mac(1), 1515),
      tagged,
      frame(BROADCAST, mac(1), 1519)
    ])
      a.send(f)
    expect(b.got.map((f) => f.length)).toEqual([14, 1514, 1518])
    expect(a.counters()).toEqual({
      txFrames: 3,
      txBytes: 14 + 1514 + 1518,
      txDropped: 3,
      rxFrames: 0,
      rxBytes: 0,
      rxDropped: 0
    })
    expect(b.counters()).toMatchObject({ rxFrames: 3, rxBytes: 14 + 1514 + 1518 })
    expect(sw.stats().dropped).toBe(3)
    // a port without a receiver counts its drops
    const mute = sw.attach("pg", "mute")
    a.send(frame(BROADCAST, mac(1)))
    expect(mute.counters().rxDropped).toBe(1)
  })

  it("gives each receiver its own copy", () => {
    const sw = new VSwitch()
    const a = port(sw, "pg", "a")
    const b = sw.attach("pg", "b")
    const c = port(sw, "pg", "c")
    b.port.onReceive((f) => f.fill(0))
    const f = frame(BROADCAST, mac(1))
    a.send(f)
    f.fill(0x55)
    expect(c.got[0]).toEqual(frame(BROADCAST, mac(1)))
  })

  it("forgets a detached port's MACs and neither delivers to it nor takes its frames", () => {
    const sw = new VSwitch()
    const a = port(sw, "pg", "a")
    const b = port(sw, "pg", "b")
    const c = port(sw, "pg", "c")
    b.send(frame(BROADCAST, mac(2)))
    b.detach()
    b.detach()
    expect(sw.lookup("pg", formatMac(Uint8Array.from(mac(2))))).toBeUndefined()
    a.send(frame(mac(2), mac(1)))
    expect(b.got).toHaveLength(0)
    expect(c.got).toHaveLength(2) // b's broadcast, then the flood of the now-unknown MAC
    b.send(frame(BROADCAST, mac(2)))
    expect(b.counters().txDropped).toBe(1)
    expect(sw.portInfo().map((p) => p.name)).toEqual(["a", "c"])
  })

  it("bounds the MACs a port can own, evicting its own least recently seen", () => {
    const sw = new VSwitch({ macsPerPort: 4 })
    const a = port(sw, "pg", "a")
    const b = port(sw, "pg", "b")
    b.send(frame(BROADCAST, mac(500)))
    for (let i = 0; i < 100; i++) a.send(frame(BROADCAST, mac(i)))
    const info = sw.portInfo()
    expect(info[0]!.macs).toHaveLength(4)
    expect(info[0]!.macs.at(-1)).toBe(formatMac(Uint8Array.from(mac(99))))
    expect(sw.lookup("pg", formatMac(Uint8Array.from(mac(500))))).toBe("b")
  })

  it("delivers frames sent from inside a receiver after the current one, without recursion", () => {
    const sw = new VSwitch()
    const order: Array<string> = []
    const a = sw.attach("pg", "a")
    const b = sw.attach("pg", "b")
    const c = sw.attach("pg", "c")
    a.port.onReceive((f) => order.push(`a:${f[14]}`))
    b.port.onReceive((f) => {
      order.push(`b:${f[14]}`)
      if (f[14] === 1) b.port.send(frame(BROADCAST, mac(2), 60, 2)) // an immediate answer
    })
    c.port.onReceive((f) => order.push(`c:${f[14]}`))
    a.port.send(frame(BROADCAST, mac(1), 60, 1))
    expect(order).toEqual(["b:1", "c:1", "a:2", "c:2"])
    // a broadcast storm between two echoing ports ends at the cascade limit
    const d = sw.attach("storm", "d")
    const e = sw.attach("storm", "e")
    let echoes = 0
    for (const p of [d, e])
      p.port.onReceive((f) => {
        echoes++
        p.port.send(f)
        p.port.send(f)
      })
    d.port.send(frame(BROADCAST, mac(4)))
    expect(echoes).toBe(MAX_CASCADE)
    expect(d.counters().txDropped + e.counters().txDropped).toBe(MAX_CASCADE + 1)
    // and the switch works normally afterwards
    order.length = 0
    a.port.send(frame(BROADCAST, mac(1), 60, 7))
    expect(order).toEqual(["b:7", "c:7"])
  })
})

describe("VSwitches service", () => {
  it.effect("attaches ports for the lifetime of a scope and names unknown switches", () =>
    Effect.gen(function* () {
      const switches = yield* VSwitches
      expect(switches.names).toEqual(["vSwitch0", "vSwitch1"])
      const sw = yield* switches.get("vSwitch0")
      const scope = yield* Scope.make()
      const attachment = yield* Scope.provide(scope)(switches.attach("vSwitch0", "VM Network", "vm1.eth0"))
      expect(attachment.id).toBeGreaterThan(0)
      expect(sw.portInfo().map((p) => p.name)).toEqual(["vm1.eth0"])
      yield* Scope.close(scope, Exit.void)
      expect(sw.portInfo()).toEqual([])
      const error = yield* Effect.flip(switches.get("nope"))
      expect(error).toBeInstanceOf(VSwitchNotFoundError)
      expect(error.message).toMatch(/vSwitch0, vSwitch1/)
    }).pipe(Effect.provide(VSwitches.layer({ switches: [{ name: "vSwitch0" }, { name: "vSwitch1" }] })))
  )
})

describe("vSwitch property", () => {
  it("random traffic never crosses port groups, never returns to the sender, and known unicast is exact", () => {
    const step = fc.record({
      from: fc.nat(5),
      dst: fc.oneof(fc.nat(7), fc.constant(-1)), // -1: broadcast
      src: fc.nat(7),
      length: fc.oneof(fc.integer({ min: 14, max: 1514 }), fc.integer({ min: 0, max: 2000 }))
    })
    fc.assert(
      fc.property(fc.array(step, { maxLength: 60 }), (steps) => {
        const sw = new VSwitch({ macsPerPort: 3 })
        const groups = ["g0", "g1", "g0", "g1", "g0", "g0"]
        const ports = groups.map((g, i) => {
          const got: Array<Uint8Array> = []
          const a = sw.attach(g, `p${i}`)
          a.port.onReceive((f) => got.push(f))
          return { a, got, group: g }
        })
        for (const s of steps) {
          const before = ports.map((p) => p.got.length)
          const dst = s.dst < 0 ? BROADCAST : mac(s.dst)
          const learned = s.dst < 0 ? undefined : sw.lookup(groups[s.from]!, formatMac(Uint8Array.from(dst)))
          ports[s.from]!.a.port.send(frame(dst, mac(s.src), s.length))
          const valid = s.length >= 14 && s.length <= 1514
          // exact expectations except when the sender's own learning changes the answer
          const exact = s.dst !== s.src && learned !== `p${s.from}`
          ports.forEach((p, i) => {
            const got = p.got.length - before[i]!
            if (i === s.from || p.group !== groups[s.from] || !valid) expect(got).toBe(0)
            else if (!exact) expect(got).toBeLessThanOrEqual(1)
            else if (learned !== undefined) expect(got).toBe(learned === `p${i}` ? 1 : 0)
            else expect(got).toBe(1)
          })
        }
      }),
      { numRuns: 200, seed: 6 }
    )
  })
})
