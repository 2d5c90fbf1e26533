/**
 * The 8254 PIT (hw/devices/pit8254) against the Intel 8254 datasheet: the
 * time base, one test per mode and read operation (each naming its
 * section), snapshot/restore, and fast-check properties: the closed-form
 * counters agree pulse for pulse with a stepping reference written from the
 * datasheet's mode text, deadlines are the exact rising edges, and random
 * port traffic never throws and leaves a PIT that works after reset.
 */
import { describe, expect, it } from "@effect/vitest"
import fc from "fast-check"
import {
  controlWord,
  countValue,
  latchCount,
  latchStatus,
  newCounter,
  readCount,
  setGate,
  writeCount
} from "../../../hw/devices/pit8254/counter.ts"
import { Pit8254 } from "../../../hw/devices/pit8254/pit8254.ts"
import { PIT_HZ, pitTicks, pitTickTime } from "../../../hw/devices/pit8254/registers.ts"
import type { CounterState } from "../../../hw/devices/pit8254/state.ts"
import { recordingIrq } from "../../../hw/machine/device.ts"

const CTL = 3

const makePit = (startPulse = 0) => {
  const time = { now: pitTickTime(startPulse) }
  const irq0 = recordingIrq()
  const pit = new Pit8254({ clock: () => time.now, out0: irq0 })
  /** Move virtual time to just after pulse `pulse` (relative to the start). */
  const at = (pulse: number) => {
    time.now = pitTickTime(startPulse + pulse)
  }
  const ctl = (value: number) => pit.write(CTL, 1, value)
  const count16 = (ch: number, n: number) => {
    pit.write(ch, 1, n & 0xff)
    pit.write(ch, 1, (n >> 8) & 0xff)
  }
  const read16 = (ch: number) => pit.read(ch, 1) | (pit.read(ch, 1) << 8)
  /** Counter latch command, then the latched LSB/MSB. */
  const latched = (ch: number) => {
    ctl(ch << 6)
    return read16(ch)
  }
  return { pit, time, irq0, at, ctl, count16, read16, latched }
}

/** OUT of `ch` at each pulse from..to (inclusive), as a string of 0/1. */
const outTrace = (m: ReturnType<typeof makePit>, ch: number, from: number, to: number) => {
  let s = ""
  for (let p = from; p <= to; p++) {
    m.at(p)
    s += m.pit.readOut(ch) ? "1" : "0"
  }
  return s
}

describe("time base: CLK = 1.193182 MHz in virtual nanoseconds", () => {
  it("pitTicks is floor(now * 1193182 / 1e9), exactly, up to 2^53 ns", () => {
    fc.assert(
      fc.property(
        fc.oneof(fc.integer({ min: 0, max: 10 ** 10 }), fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER })),
        (now) => {
          const exact = Number((BigInt(now) * BigInt(PIT_HZ)) / 1_000_000_000n)
          expect(pitTicks(now)).toBe(exact)
        }
      ),
      { seed: 0x8254, numRuns: 2000 }
    )
  })

  it("pitTickTime(k) is the first nanosecond at which pulse k has happened", () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 2 ** 42 }), (k) => {
        const t = pitTickTime(k)
        expect(pitTicks(t)).toBe(k)
        expect(pitTicks(t - 1)).toBe(k - 1)
      }),
      { seed: 0x8255, numRuns: 2000 }
    )
    expect(pitTicks(1_000_000_000)).toBe(PIT_HZ)
    expect(pitTickTime(PIT_HZ)).toBe(1_000_000_000)
    expect(pitTicks(-5)).toBe(0)
    expect(pitTicks(Number.NaN)).toBe(0)
  })
})

describe("8254 'Programming the 8254': control word, count writes, reads", () => {
  it("LSB-then-MSB writes and reads; the count is loaded on the next CLK pulse", () => {
    const m = makePit()
    m.ctl(0x34) // counter 0, LSB/MSB, mode 2
    m.count16(0, 0x1234)
    expect(m.latched(0)).not.toBe(0x1234) // not loaded yet: CE undefined (here 0)
    m.at(1)
    expect(m.latched(0)).toBe(0x1234)
    m.at(3)
    expect(m.read16(0)).toBe(0x1232)
  })

  it("LSB-only and MSB-only modes", () => {
    const m = makePit()
    m.ctl(0x54) // counter 1, LSB only, mode 2
    m.pit.write(1, 1, 0x20)
    m.ctl(0xa4) // counter 2, MSB only, mode 2
    m.pit.write(2, 1, 0x01)
    m.at(1)
    expect(m.pit.read(1, 1)).toBe(0x20)
    expect(m.pit.read(1, 1)).toBe(0x20)
    expect(m.pit.read(2, 1)).toBe(0x01)
  })

  it("reads and writes of one counter may interleave (separate byte flip-flops)", () => {
    const m = makePit()
    m.ctl(0x30)
    m.count16(0, 0x0a0b)
    m.at(1)
    m.ctl(0x00) // latch 0x0a0b
    expect(m.pit.read(0, 1)).toBe(0x0b)
    m.pit.write(0, 1, 0x34)
    expect(m.pit.read(0, 1)).toBe(0x0a)
    m.pit.write(0, 1, 0x12)
    m.at(2)
    expect(m.latched(0)).toBe(0x1234)
  })

  it("the control port reads 0xFF and wide accesses split into bytes; bad offsets float", () => {
    const m = makePit()
    expect(m.pit.read(CTL, 1)).toBe(0xff)
    m.pit.write(0, 4, 0x34_00_00_00) // counter 0, 1, 2 data bytes (0), then control word 0x34
    m.pit.write(0, 2, 0x0010) // LSB 0x10 to counter 0, MSB... 0x00 to counter 1
    m.pit.write(0, 1, 0x00)
    m.at(1)
    expect(m.latched(0)).toBe(0x0010)
    expect(m.pit.read(4, 1)).toBe(0xff)
    expect(m.pit.read(-4, 2)).toBe(0xffff)
    expect(m.pit.read(2.5, 1)).toBe(0xff)
  })
})

describe("8254 'Read Operations': counter latch command", () => {
  it("the OL holds the count until read; further latch commands are ignored meanwhile", () => {
    const m = makePit()
    m.ctl(0x34)
    m.count16(0, 1000)
    m.at(11) // CE = 990
    m.ctl(0x00)
    m.at(21)
    m.ctl(0x00) // ignored
    expect(m.read16(0)).toBe(990)
    expect(m.read16(0)).toBe(980) // unlatched: follows the CE
  })

  it("a control word discards a latched count", () => {
    const m = makePit()
    m.ctl(0x34)
    m.count16(0, 1000)
    m.at(11)
    m.ctl(0x00)
    m.ctl(0x34)
    m.count16(0, 500)
    m.at(12)
    expect(m.read16(0)).toBe(500)
  })
})

describe("8254 'Read-Back Command' and 'Status Byte'", () => {
  it("status = OUT | NULL COUNT | control bits; null count clears when the count is loaded", () => {
    const m = makePit()
    m.ctl(0xb7) // counter 2, LSB/MSB, mode 3, BCD
    m.ctl(0xe8) // read-back status of counter 2
    expect(m.pit.read(2, 1)).toBe(0x80 | 0x40 | 0x37)
    m.count16(2, 0x0100)
    m.at(1)
    m.ctl(0xe8)
    expect(m.pit.read(2, 1)).toBe(0x80 | 0x37)
    m.ctl(0x30) // counter 0 mode 0: OUT low
    m.ctl(0xe2)
    expect(m.pit.read(0, 1)).toBe(0x40 | 0x30)
  })

  it("count and status latched together: status reads first, then the count", () => {
    const m = makePit()
    m.ctl(0x74) // counter 1, mode 2
    m.count16(1, 300)
    m.at(6)
    m.ctl(0xc4) // count and status of counter 1
    m.at(50)
    m.ctl(0xe4) // status again: ignored, one is latched
    expect(m.pit.read(1, 1)).toBe(0x80 | 0x34)
    expect(m.read16(1)).toBe(295)
  })
})

describe("8254 'Mode 0: Interrupt on Terminal Count'", () => {
  it("OUT low after the control word, high N+1 pulses after the count is written; the CE wraps", () => {
    const m = makePit()
    m.ctl(0x30)
    expect(m.pit.readOut(0)).toBe(false)
    m.count16(0, 5)
    expect(outTrace(m, 0, 0, 7)).toBe("00000011")
    expect(m.latched(0)).toBe(0xffff)
  })

  it("GATE low suspends counting; the first byte of a new count stops it and drives OUT low", () => {
    const m = makePit()
    m.ctl(0xb0) // counter 2, mode 0
    m.pit.setGate(2, false)
    m.count16(2, 4)
    m.at(10)
    expect(m.latched(2)).toBe(4) // loaded even with GATE low, not counted
    m.pit.setGate(2, true)
    expect(outTrace(m, 2, 11, 15)).toBe("00011") // high 4 pulses after the gate rose
    m.pit.write(2, 1, 9) // first byte
    expect(m.pit.readOut(2)).toBe(false)
    m.at(30)
    expect(m.latched(2)).toBe(0xffff) // frozen at the first-byte write (pulse 15)
    m.pit.write(2, 1, 0)
    expect(outTrace(m, 2, 30, 40)).toBe("00000000001")
  })
})

describe("8254 'Mode 1: Hardware Retriggerable One-Shot'", () => {
  it("a GATE rising edge drives OUT low on the next pulse for N pulses; retriggers restart it", () => {
    const m = makePit()
    m.ctl(0xb2) // counter 2, mode 1
    m.count16(2, 3)
    expect(outTrace(m, 2, 0, 3)).toBe("1111") // armed, no trigger
    m.pit.setGate(2, false)
    m.pit.setGate(2, true) // trigger at pulse 3
    expect(outTrace(m, 2, 3, 8)).toBe("100011")
    m.at(9)
    m.pit.setGate(2, false)
    m.pit.setGate(2, true)
    m.at(11)
    m.pit.setGate(2, false)
    m.pit.setGate(2, true) // retrigger before the end
    expect(outTrace(m, 2, 12, 16)).toBe("00011")
  })
})

describe("8254 'Mode 2: Rate Generator'", () => {
  it("OUT low for the one pulse the CE holds 1; period N; IRQ0 rises every N pulses", () => {
    const m = makePit()
    m.ctl(0x34)
    m.count16(0, 4)
    expect(outTrace(m, 0, 0, 13)).toBe("11110111011101")
    expect(m.irq0.raises).toBe(1 + 3) // the control word itself raised OUT (mode 0 had it low)
  })

  it("a new count takes effect at the end of the current period", () => {
    const m = makePit()
    m.ctl(0x34)
    m.count16(0, 4)
    m.at(2)
    m.count16(0, 2)
    expect(outTrace(m, 0, 2, 10)).toBe("110101010")
  })

  it("GATE low forces OUT high at once; the rising edge reloads on the next pulse", () => {
    const m = makePit()
    m.ctl(0xb4) // counter 2, mode 2
    m.count16(2, 3)
    m.at(3) // CE = 1, OUT low
    expect(m.pit.readOut(2)).toBe(false)
    m.pit.setGate(2, false)
    expect(m.pit.readOut(2)).toBe(true)
    m.at(10)
    m.pit.setGate(2, true)
    expect(outTrace(m, 2, 10, 16)).toBe("1110110") // low N pulses after the trigger
  })
})

describe("8254 'Mode 3: Square Wave Mode'", () => {
  it("even N: N/2 pulses high, N/2 low, the CE stepping by 2", () => {
    const m = makePit()
    m.ctl(0x36)
    m.count16(0, 6)
    m.at(2)
    expect(m.latched(0)).toBe(4)
    expect(outTrace(m, 0, 2, 13)).toBe("110001110001")
  })

  it("odd N: (N+1)/2 pulses high, (N-1)/2 low", () => {
    const m = makePit()
    m.ctl(0x36)
    m.count16(0, 5)
    const ces: number[] = []
    for (let p = 1; p <= 5; p++) {
      m.at(p)
      ces.push(m.latched(0))
    }
    expect(ces).toEqual([4, 2, 0, 4, 2])
    expect(outTrace(m, 0, 5, 11)).toBe("0111001")
  })

  it("a new count is loaded at the end of the current half-cycle", () => {
    const m = makePit()
    m.ctl(0x36)
    m.count16(0, 8)
    m.at(2)
    m.count16(0, 2)
    expect(outTrace(m, 0, 1, 9)).toBe("111101010")
  })

  it("GATE low while OUT is low sets OUT high at once; a trigger restarts the high half on the next pulse", () => {
    const m = makePit()
    m.ctl(0xb6) // counter 2, mode 3
    m.count16(2, 4)
    m.at(3) // pulses 1-2 high, 3-4 low
    expect(m.pit.readOut(2)).toBe(false)
    m.pit.setGate(2, false)
    expect(m.pit.readOut(2)).toBe(true)
    m.at(8)
    expect(m.latched(2)).toBe(4) // counting stopped
    m.pit.setGate(2, true)
    expect(outTrace(m, 2, 8, 13)).toBe("111001")
  })

  it("the PC's 18.2 Hz BIOS tick: count 0 is 65536 pulses", () => {
    const m = makePit()
    m.ctl(0x36)
    m.pit.write(0, 1, 0)
    m.pit.write(0, 1, 0)
    const first = m.pit.tick(m.time.now)
    expect(pitTicks(first)).toBe(65536 + 1)
    expect(m.pit.tick(first)).toBe(pitTickTime(2 * 65536 + 1))
  })
})

describe("8254 'Mode 4: Software Triggered Strobe' and 'Mode 5: Hardware Triggered Strobe'", () => {
  it("mode 4: OUT strobes low for one pulse N+1 pulses after the count write", () => {
    const m = makePit()
    m.ctl(0x38)
    m.count16(0, 3)
    expect(outTrace(m, 0, 0, 6)).toBe("1111011")
    m.at(70_000) // no second strobe after the CE wraps
    expect(m.pit.readOut(0)).toBe(true)
    expect(m.irq0.raises).toBe(2) // the control word's OUT high, then the end of the strobe
  })

  it("mode 5: a GATE rising edge starts the count; the strobe comes N+1 pulses later", () => {
    const m = makePit()
    m.ctl(0xba)
    m.count16(2, 2)
    m.at(5)
    m.pit.setGate(2, false)
    m.pit.setGate(2, true)
    expect(outTrace(m, 2, 5, 9)).toBe("11101")
  })
})

describe("8254 'Operation Common to All Modes': BCD counting", () => {
  it("BCD counts and reads in decimal digits; 0 is 10^4", () => {
    const m = makePit()
    m.ctl(0x35) // mode 2, BCD
    m.count16(0, 0x0010)
    m.at(3)
    expect(m.latched(0)).toBe(0x0008)
    expect(outTrace(m, 0, 3, 11)).toBe("111111101")
    m.ctl(0x31) // mode 0, BCD, count 0 = 10000
    m.count16(0, 0)
    m.at(12)
    expect(m.latched(0)).toBe(0x0000)
    m.at(13)
    expect(m.latched(0)).toBe(0x9999)
    m.at(11 + 10_000)
    expect(m.pit.readOut(0)).toBe(false)
    m.at(11 + 10_001)
    expect(m.pit.readOut(0)).toBe(true)
  })
})

describe("deadlines: tick(now) returns the exact next rising edge of OUT0", () => {
  it("100 Hz in mode 2 over one virtual second, ticking only at deadlines", () => {
    const m = makePit()
    m.ctl(0x34)
    m.count16(0, 11932)
    let deadline = m.pit.tick(0)
    let ticks = 0
    while (deadline <= 1_000_000_000) {
      const before = m.irq0.raises
      m.pit.tick(deadline - 1)
      expect(m.irq0.raises).toBe(before) // not a nanosecond early
      m.time.now = deadline
      deadline = m.pit.tick(deadline)
      expect(m.irq0.raises).toBe(before + 1)
      ticks++
    }
    expect(ticks).toBe(Math.floor((PIT_HZ - 1) / 11932)) // rising edges at pulses 1 + k*N
  })

  it("a late tick after many periods still gives one fresh edge, then the next exact deadline", () => {
    const m = makePit(123_456_789)
    m.ctl(0x36)
    m.count16(0, 1000)
    m.pit.tick(m.time.now)
    const raises = m.irq0.raises
    m.at(10_250)
    const next = m.pit.tick(m.time.now)
    expect(m.irq0.raises).toBe(raises + 1)
    expect(m.irq0.level).toBe(true) // pulse 10250 is in a high half (1 + 500 high pulses from 10001)
    expect(next).toBe(pitTickTime(123_456_789 + 11_001))
  })

  it("nothing connected or nothing counting: Infinity", () => {
    const time = { now: 0 }
    const bare = new Pit8254({ clock: () => time.now })
    bare.write(CTL, 1, 0x34)
    bare.write(0, 1, 10)
    bare.write(0, 1, 0)
    expect(bare.tick(1000)).toBe(Number.POSITIVE_INFINITY)
    const m = makePit()
    expect(m.pit.tick(0)).toBe(Number.POSITIVE_INFINITY)
    m.ctl(0x30)
    m.count16(0, 10)
    m.at(20)
    expect(m.pit.tick(m.time.now)).toBe(Number.POSITIVE_INFINITY) // mode 0 after terminal count
  })

  it("time never runs backwards", () => {
    const m = makePit()
    m.ctl(0x34)
    m.count16(0, 100)
    m.pit.tick(pitTickTime(50))
    m.at(10)
    expect(m.latched(0)).toBe(51)
  })
})

describe("snapshot / restore", () => {
  it("a restored PIT continues exactly where the original was", () => {
    const a = makePit(777)
    a.ctl(0x36)
    a.count16(0, 301)
    a.ctl(0xb2)
    a.count16(2, 50)
    a.at(40)
    a.pit.setGate(2, false)
    a.pit.setGate(2, true)
    a.ctl(0x80) // latch counter 2
    const state = a.pit.snapshot()
    const b = makePit(777)
    b.time.now = a.time.now
    b.pit.restore(JSON.parse(JSON.stringify(state)))
    expect(b.pit.snapshot()).toEqual(state)
    expect(b.read16(2)).toBe(a.read16(2))
    for (const p of [41, 100, 190, 500, 1000]) {
      a.at(p)
      b.at(p)
      expect(b.pit.tick(b.time.now)).toBe(a.pit.tick(a.time.now))
      expect(b.latched(0)).toBe(a.latched(0))
      expect(b.pit.readOut(2)).toBe(a.pit.readOut(2))
    }
  })
})

// ---------------------------------------------------------------------------
// A stepping reference: one CLK pulse at a time, from the datasheet's mode text.
// Events (control word, count write, gate, latches) use counter.ts's own event
// functions; what is checked is the closed-form time jump.

const refStep = (c: CounterState): void => {
  const m = c.bcd ? 10_000 : 0x10000
  if (c.loadPending && (c.gate || (c.mode !== 2 && c.mode !== 3))) {
    const n = countValue(c)
    Object.assign(c, { loadPending: false, nullCount: false, newCount: false, running: true, strobed: false })
    c.period = n
    c.high = true
    c.ce = c.mode === 3 && n % 2 === 1 ? n - 1 : n
    if (c.mode === 1) c.out = false
    else if (c.mode !== 0) c.out = true
    return
  }
  if (!c.running) return
  const takeNew = () => {
    if (!c.newCount) return
    c.period = countValue(c)
    c.newCount = false
    c.nullCount = false
  }
  const toggle = () => {
    c.high = !c.high
    takeNew()
    c.ce = c.period % 2 === 1 ? c.period - 1 : c.period
    if (!c.high && c.ce === 0) c.high = true // count 1: the low half is empty
  }
  switch (c.mode) {
    case 0:
    case 1:
      if (c.mode === 0 && !c.gate) return
      c.ce = (c.ce - 1 + m) % m
      if (c.ce === 0) c.out = true
      return
    case 4:
    case 5:
      if (c.mode === 4 && !c.gate) return
      if (!c.out) {
        c.out = true
        c.strobed = true
      }
      c.ce = (c.ce - 1 + m) % m
      if (c.ce === 0 && !c.strobed) c.out = false
      return
    case 2:
      if (c.ce === 1) {
        takeNew()
        c.ce = c.period
      } else c.ce -= 1
      c.out = c.ce !== 1
      return
    default:
      if (c.high && c.period % 2 === 1) {
        if (c.ce === 0) toggle()
        else c.ce -= 2
      } else {
        c.ce -= 2
        if (c.ce === 0) toggle()
      }
      c.out = c.high
  }
}

type Op =
  | { readonly kind: "wait"; readonly pulses: number; readonly jitter: number }
  | { readonly kind: "control"; readonly value: number }
  | { readonly kind: "program"; readonly value: number; readonly bytes: readonly number[] }
  | { readonly kind: "readback"; readonly value: number }
  | { readonly kind: "write"; readonly counter: number; readonly byte: number }
  | { readonly kind: "read"; readonly counter: number }
  | { readonly kind: "gate"; readonly counter: number; readonly level: boolean }

const counterIx = fc.integer({ min: 0, max: 2 })
const controlValue = (counter: number, rw: number, mode: number, bcd: boolean) =>
  (counter << 6) | (rw << 4) | (mode << 1) | (bcd ? 1 : 0)
/** A count, mostly small so that periods and terminal counts fall inside the waits. */
const countArb = fc.oneof(
  { weight: 8, arbitrary: fc.integer({ min: 0, max: 24 }) },
  { weight: 1, arbitrary: fc.integer({ min: 0, max: 0xffff }) }
)
const opArb: fc.Arbitrary<Op> = fc.oneof(
  {
    weight: 8,
    arbitrary: fc.record({
      kind: fc.constant("wait" as const),
      pulses: fc.oneof(
        { weight: 6, arbitrary: fc.integer({ min: 0, max: 6 }) },
        { weight: 3, arbitrary: fc.integer({ min: 0, max: 60 }) },
        { weight: 1, arbitrary: fc.integer({ min: 0, max: 3000 }) }
      ),
      jitter: fc.double({ min: 0, max: 0.999, noNaN: true })
    })
  },
  {
    // a control word and a whole count in its byte format: a running counter
    weight: 4,
    arbitrary: fc
      .record({
        counter: fc.oneof({ weight: 3, arbitrary: fc.constant(0) }, counterIx),
        rw: fc.integer({ min: 1, max: 3 }),
        mode: fc.integer({ min: 0, max: 7 }),
        bcd: fc.oneof({ weight: 4, arbitrary: fc.constant(false) }, fc.constant(true)),
        count: countArb
      })
      .map(({ counter, rw, mode, bcd, count }) => {
        const lsb = count & 0xff
        const msb = rw === 2 ? count % 3 : (count >> 8) & 0xff
        const bytes = rw === 1 ? [lsb] : rw === 2 ? [msb] : [lsb, msb]
        return { kind: "program" as const, value: controlValue(counter, rw, mode, bcd), bytes }
      })
  },
  {
    weight: 1,
    arbitrary: fc
      .record({
        counter: counterIx,
        rw: fc.integer({ min: 0, max: 3 }),
        mode: fc.integer({ min: 0, max: 7 }),
        bcd: fc.boolean()
      })
      .map(({ counter, rw, mode, bcd }) => ({ kind: "control" as const, value: controlValue(counter, rw, mode, bcd) }))
  },
  {
    weight: 1,
    arbitrary: fc.integer({ min: 0, max: 0x3f }).map((bits) => ({ kind: "readback" as const, value: 0xc0 | bits }))
  },
  {
    weight: 3,
    arbitrary: fc.record({
      kind: fc.constant("write" as const),
      counter: counterIx,
      byte: fc.oneof({ weight: 6, arbitrary: fc.integer({ min: 0, max: 24 }) }, fc.integer({ min: 0, max: 255 }))
    })
  },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant("read" as const), counter: counterIx }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant("gate" as const), counter: counterIx, level: fc.boolean() }) }
)

describe("properties", () => {
  it("closed-form counters match the pulse-stepping reference; deadlines are the reference's first rising edge", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 2 ** 40 }),
        fc.array(opArb, { minLength: 10, maxLength: 60 }),
        (start, ops) => {
          const m = makePit(start)
          const ref = [newCounter(), newCounter(), newCounter()] as const
          let pulse = 0 // relative to start
          let lastDeadline = m.pit.tick(m.time.now)
          for (const op of ops) {
            switch (op.kind) {
              case "wait": {
                let firstRise = -1
                for (let i = 1; i <= op.pulses; i++) {
                  const before = ref[0].out
                  for (const c of ref) refStep(c)
                  if (firstRise < 0 && !before && ref[0].out) firstRise = pulse + i
                }
                if (firstRise >= 0) expect(lastDeadline).toBe(pitTickTime(start + firstRise))
                else expect(lastDeadline).toBeGreaterThan(pitTickTime(start + pulse + op.pulses))
                const raises = m.irq0.raises
                pulse += op.pulses
                const base = pitTickTime(start + pulse)
                m.time.now = base + Math.floor(op.jitter * (pitTickTime(start + pulse + 1) - base))
                lastDeadline = m.pit.tick(m.time.now)
                expect(m.irq0.raises > raises).toBe(firstRise >= 0)
                break
              }
              case "control":
              case "program": {
                m.pit.write(CTL, 1, op.value)
                const ch = op.value >> 6
                const c = ref[ch]!
                if (((op.value >> 4) & 3) === 0) latchCount(c)
                else controlWord(c, op.value)
                for (const byte of op.kind === "program" ? op.bytes : []) {
                  m.pit.write(ch, 1, byte)
                  writeCount(c, byte)
                }
                break
              }
              case "readback":
                m.pit.write(CTL, 1, op.value)
                for (let i = 0; i < 3; i++) {
                  if (!(op.value & (2 << i))) continue
                  if (!(op.value & 0x10)) latchStatus(ref[i]!)
                  if (!(op.value & 0x20)) latchCount(ref[i]!)
                }
                break
              case "write":
                m.pit.write(op.counter, 1, op.byte)
                writeCount(ref[op.counter]!, op.byte)
                break
              case "read":
                expect(m.pit.read(op.counter, 1)).toBe(readCount(ref[op.counter]!))
                break
              case "gate":
                m.pit.setGate(op.counter, op.level)
                setGate(ref[op.counter]!, op.level)
                break
            }
            if (op.kind !== "wait") lastDeadline = m.pit.tick(m.time.now)
            expect(m.pit.snapshot().counters).toEqual(ref)
            expect(m.irq0.level).toBe(ref[0].out)
          }
        }
      ),
      { seed: 0x82540, numRuns: 250 }
    )
  })

  it("random port traffic never throws, and after reset the PIT runs a 1 kHz rate generator exactly", () => {
    const access = fc.record({
      write: fc.boolean(),
      offset: fc.integer({ min: -1, max: 5 }),
      size: fc.constantFrom(1 as const, 2 as const, 4 as const),
      value: fc.oneof(fc.integer({ min: 0, max: 0xff }), fc.integer({ min: -(2 ** 31), max: 2 ** 32 }), fc.double()),
      dt: fc.oneof(fc.integer({ min: 0, max: 5000 }), fc.integer({ min: -100, max: 10 ** 9 })),
      gate: fc.integer({ min: -1, max: 3 })
    })
    fc.assert(
      fc.property(fc.array(access, { maxLength: 60 }), (accesses) => {
        const m = makePit()
        for (const a of accesses) {
          m.time.now += a.dt
          if (a.write) m.pit.write(a.offset, a.size, a.value)
          else {
            const v = m.pit.read(a.offset, a.size)
            expect(v).toBeGreaterThanOrEqual(0)
            expect(v).toBeLessThan(2 ** (8 * a.size))
          }
          m.pit.setGate(a.gate, (a.value as number) > 0)
          const d = m.pit.tick(m.time.now)
          expect(d === Number.POSITIVE_INFINITY || d > m.time.now).toBe(true)
        }
        m.pit.reset()
        for (let ch = 0; ch < 3; ch++) m.pit.setGate(ch, true)
        m.ctl(0x34)
        m.count16(0, 1193)
        const start = m.pit.currentTick
        const raises = m.irq0.raises
        let d = m.pit.tick(m.time.now)
        for (let k = 1; k <= 5; k++) {
          expect(d).toBe(pitTickTime(start + 1 + k * 1193))
          m.time.now = d
          d = m.pit.tick(d)
        }
        expect(m.irq0.raises - raises).toBe(5)
      }),
      { seed: 0x82541, numRuns: 300 }
    )
  })
})
