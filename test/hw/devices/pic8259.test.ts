/**
 * The 8259A PIC and the PC/AT pair (hw/devices/pic8259) against the Intel
 * 8259A datasheet: one test per behaviour, each naming its section, then
 * snapshot/restore and fast-check properties (random port traffic never
 * throws; after re-initialization the pair delivers interrupts correctly;
 * delivered vectors respect priority and masking).
 */
import { describe, expect, it } from "@effect/vitest"
import fc from "fast-check"
import { PicPair } from "../../../hw/devices/pic8259/pic-pair.ts"
import { Pic8259 } from "../../../hw/devices/pic8259/pic8259.ts"
import { recordingIrq } from "../../../hw/machine/device.ts"

const CMD = 0
const DATA = 1

/** The PC/AT initialization (what Linux's init_8259A and the BIOS do): vectors 0x20 and 0x28. */
const initPair = (pair: PicPair, masterBase = 0x20, slaveBase = 0x28, icw4 = 0x01) => {
  pair.master.write(CMD, 1, 0x11)
  pair.master.write(DATA, 1, masterBase)
  pair.master.write(DATA, 1, 0x04)
  pair.master.write(DATA, 1, icw4)
  pair.slave.write(CMD, 1, 0x11)
  pair.slave.write(DATA, 1, slaveBase)
  pair.slave.write(DATA, 1, 0x02)
  pair.slave.write(DATA, 1, icw4)
}

const makePair = () => {
  const intr = recordingIrq()
  const pair = new PicPair({ intr })
  initPair(pair)
  return { pair, intr }
}

/** A single 8259A in single mode, vector base 0x40. */
const makeSingle = (icw1 = 0x13, icw4 = 0x01) => {
  const intr = recordingIrq()
  const pic = new Pic8259({ intr })
  pic.write(CMD, 1, icw1)
  pic.write(DATA, 1, 0x40)
  if (icw1 & 1) pic.write(DATA, 1, icw4)
  return { pic, intr }
}

const readIrr = (pic: Pic8259) => {
  pic.write(CMD, 1, 0x0a)
  return pic.read(CMD, 1)
}
const readIsr = (pic: Pic8259) => {
  pic.write(CMD, 1, 0x0b)
  return pic.read(CMD, 1)
}
const pulse = (pair: PicPair, irq: number) => {
  pair.setIrq(irq, true)
  pair.setIrq(irq, false)
}

describe("8259A 'Initialization Command Words' (ICW1-ICW4)", () => {
  it("ICW1 starts the sequence; ICW2 sets the vector base; ICW3 only without SNGL; ICW4 only with IC4", () => {
    const { pic } = makeSingle(0x13) // SNGL, IC4: ICW1, ICW2, ICW4
    expect(pic.vectorBase).toBe(0x40)
    pic.write(DATA, 1, 0xfe) // initialized: this is OCW1
    expect(pic.read(DATA, 1)).toBe(0xfe)
    const { pic: noIcw4 } = makeSingle(0x12) // SNGL, no IC4
    noIcw4.write(DATA, 1, 0x5a)
    expect(noIcw4.read(DATA, 1)).toBe(0x5a)
    expect(noIcw4.snapshot().icw4).toBe(0)
  })

  it("ICW1 clears IMR, ISR and the edge latches, and restores IRR reads and default priority", () => {
    const { pic } = makeSingle()
    pic.write(DATA, 1, 0x0f)
    pic.setIrq(5, true)
    pic.acknowledge()
    pic.write(CMD, 1, 0xc3) // set priority: IR3 lowest
    pic.write(CMD, 1, 0x0b) // read ISR
    pic.write(CMD, 1, 0x13)
    pic.write(DATA, 1, 0x40)
    pic.write(DATA, 1, 0x01)
    const s = pic.snapshot()
    expect([s.imr, s.isr, s.edgeIrr, s.lowestPriority, s.readIsr]).toEqual([0, 0, 0, 7, false])
    expect(pic.read(CMD, 1)).toBe(0) // IRR, and IR5 (still high) needs a new edge after ICW1
    expect(pic.hasInterrupt()).toBe(false)
  })

  it("the PC/AT pair: IRQ0 is vector 0x20 and IRQ9 is 0x29 via the cascade on IR2", () => {
    const { pair, intr } = makePair()
    pulse(pair, 0)
    expect(intr.level).toBe(true)
    expect(pair.acknowledge()).toBe(0x20)
    pair.master.write(CMD, 1, 0x20)
    pulse(pair, 9)
    expect(pair.hasInterrupt()).toBe(true)
    expect(pair.acknowledge()).toBe(0x29)
    expect(readIsr(pair.master)).toBe(0x04)
    expect(readIsr(pair.slave)).toBe(0x02)
  })
})

describe("8259A 'Interrupt Sequence': IRR -> ISR on INTA", () => {
  it("INTA moves the winning IRR bit to ISR and drops INT", () => {
    const { pic, intr } = makeSingle()
    pic.setIrq(3, true)
    expect(readIrr(pic)).toBe(0x08)
    expect(intr.level).toBe(true)
    expect(pic.acknowledge()).toBe(0x43)
    expect(readIrr(pic)).toBe(0)
    expect(readIsr(pic)).toBe(0x08)
    expect(intr.level).toBe(false)
  })

  it("with nothing to give at INTA the chip answers IR7 without setting ISR (spurious IRQ7)", () => {
    const { pic } = makeSingle(0x1b) // level-triggered
    pic.setIrq(4, true)
    pic.setIrq(4, false) // request withdrawn before INTA
    expect(pic.acknowledge()).toBe(0x47)
    expect(readIsr(pic)).toBe(0)
  })

  it("a slave whose request vanished answers its own IR7 while master ISR2 is set (spurious IRQ15)", () => {
    const { pair } = makePair()
    pair.elcr.write(1, 1, 0x02) // IRQ9 level-triggered
    pair.setIrq(9, true) // slave INT -> master IR2 edge latched
    pair.setIrq(9, false) // gone before INTA
    expect(pair.acknowledge()).toBe(0x2f)
    expect(readIsr(pair.slave)).toBe(0)
    expect(readIsr(pair.master)).toBe(0x04) // the handler must EOI the master
  })

  it("drives the CPU's INTR through the `intr` line", () => {
    const { pair, intr } = makePair()
    pair.setIrq(1, true)
    expect(intr.level).toBe(true)
    pair.acknowledge()
    expect(intr.level).toBe(false)
    expect(intr.raises).toBe(1)
  })
})

describe("8259A 'Fully Nested Mode' and 'Interrupt Mask Register'", () => {
  it("the lowest-numbered request wins; a higher one nests over an in-service one; equal and lower wait", () => {
    const { pic } = makeSingle()
    pic.setIrq(3, true)
    pic.setIrq(1, true)
    expect(pic.acknowledge()).toBe(0x41)
    expect(pic.hasInterrupt()).toBe(false) // IR3 is lower than in-service IR1
    pic.setIrq(0, true)
    expect(pic.hasInterrupt()).toBe(true)
    expect(pic.acknowledge()).toBe(0x40)
    pic.write(CMD, 1, 0x20) // EOI IR0
    expect(pic.hasInterrupt()).toBe(false)
    pic.write(CMD, 1, 0x20) // EOI IR1
    expect(pic.acknowledge()).toBe(0x43)
  })

  it("a masked input still sets IRR but is not requested until unmasked", () => {
    const { pic } = makeSingle()
    pic.write(DATA, 1, 0x20)
    pic.setIrq(5, true)
    expect(readIrr(pic)).toBe(0x20)
    expect(pic.hasInterrupt()).toBe(false)
    pic.write(DATA, 1, 0x00)
    expect(pic.acknowledge()).toBe(0x45)
  })

  it("the slave's requests are blocked at the master while master IR2 is in service", () => {
    const { pair } = makePair()
    pulse(pair, 12)
    expect(pair.acknowledge()).toBe(0x2c)
    pulse(pair, 8) // higher on the slave, but master ISR2 blocks IR2
    expect(pair.hasInterrupt()).toBe(false)
    pair.master.write(CMD, 1, 0x20)
    expect(pair.acknowledge()).toBe(0x28)
  })
})

describe("8259A 'End of Interrupt' (OCW2)", () => {
  it("a non-specific EOI clears the highest-priority ISR bit", () => {
    const { pic } = makeSingle()
    pic.setIrq(4, true)
    pic.acknowledge()
    pic.setIrq(2, true)
    pic.acknowledge()
    expect(readIsr(pic)).toBe(0x14)
    pic.write(CMD, 1, 0x20)
    expect(readIsr(pic)).toBe(0x10)
  })

  it("a specific EOI clears the named ISR bit", () => {
    const { pic } = makeSingle()
    pic.setIrq(4, true)
    pic.acknowledge()
    pic.setIrq(2, true)
    pic.acknowledge()
    pic.write(CMD, 1, 0x64)
    expect(readIsr(pic)).toBe(0x04)
  })

  it("ICW4 auto-EOI: INTA leaves ISR clear", () => {
    const { pic } = makeSingle(0x13, 0x03)
    pic.setIrq(6, true)
    expect(pic.acknowledge()).toBe(0x46)
    expect(readIsr(pic)).toBe(0)
  })
})

describe("8259A 'Automatic Rotation' and 'Specific Rotation' (OCW2 R bit)", () => {
  it("rotate on non-specific EOI makes the serviced level the lowest", () => {
    const { pic } = makeSingle()
    pic.setIrq(0, true)
    pic.setIrq(3, true)
    expect(pic.acknowledge()).toBe(0x40)
    pic.write(CMD, 1, 0xa0)
    expect(pic.snapshot().lowestPriority).toBe(0)
    pic.setIrq(0, false)
    pic.setIrq(0, true) // IR0 again: now below IR3
    expect(pic.acknowledge()).toBe(0x43)
  })

  it("set priority (0xC0|L) and rotate on specific EOI (0xE0|L)", () => {
    const { pic } = makeSingle()
    pic.write(CMD, 1, 0xc4) // IR4 lowest: order 5,6,7,0,1,2,3,4
    pic.setIrq(1, true)
    pic.setIrq(6, true)
    expect(pic.acknowledge()).toBe(0x46)
    pic.write(CMD, 1, 0xe6) // EOI IR6, IR6 lowest: order 7,0,1,...
    expect(readIsr(pic)).toBe(0)
    expect(pic.snapshot().lowestPriority).toBe(6)
    expect(pic.acknowledge()).toBe(0x41)
  })

  it("rotate in auto-EOI mode rotates at INTA", () => {
    const { pic } = makeSingle(0x13, 0x03)
    pic.write(CMD, 1, 0x80)
    pic.setIrq(2, true)
    pic.acknowledge()
    expect(pic.snapshot().lowestPriority).toBe(2)
    pic.write(CMD, 1, 0x00)
    pic.setIrq(5, true)
    pic.acknowledge()
    expect(pic.snapshot().lowestPriority).toBe(2)
  })
})

describe("8259A 'Reading the 8259A Status', 'Poll Command' and 'Special Mask Mode' (OCW3)", () => {
  it("OCW3 RR/RIS select IRR or ISR at A0=0; A0=1 always reads IMR", () => {
    const { pic } = makeSingle()
    pic.write(DATA, 1, 0x81)
    pic.setIrq(1, true)
    pic.setIrq(2, true)
    pic.acknowledge()
    expect(readIrr(pic)).toBe(0x04)
    expect(readIsr(pic)).toBe(0x02)
    expect(pic.read(CMD, 1)).toBe(0x02) // the selection sticks
    expect(pic.read(DATA, 1)).toBe(0x81)
  })

  it("a poll command makes the next read the poll word and an acknowledge", () => {
    const { pic } = makeSingle()
    pic.setIrq(5, true)
    pic.write(CMD, 1, 0x0c)
    expect(pic.read(DATA, 1)).toBe(0x85) // either offset
    expect(readIsr(pic)).toBe(0x20)
    pic.write(CMD, 1, 0x0c)
    expect(pic.read(CMD, 1)).toBe(0x00) // nothing pending
  })

  it("special mask mode lets lower levels in while a masked level is in service", () => {
    const { pic } = makeSingle()
    pic.setIrq(1, true)
    pic.acknowledge()
    pic.setIrq(4, true)
    expect(pic.hasInterrupt()).toBe(false)
    pic.write(DATA, 1, 0x02)
    pic.write(CMD, 1, 0x68) // ESMM | SMM
    expect(pic.hasInterrupt()).toBe(true)
    expect(pic.acknowledge()).toBe(0x44)
    pic.write(CMD, 1, 0x48) // ESMM, SMM off
    pic.write(CMD, 1, 0x64) // specific EOI IR4
    pic.setIrq(4, false)
    pic.setIrq(4, true)
    expect(pic.hasInterrupt()).toBe(false)
  })
})

describe("8259A 'Edge and Level Triggered Modes' (ICW1.LTIM) and the PIIX ELCR", () => {
  it("edge mode: a line held high requests once; a new 0 -> 1 edge is needed after EOI", () => {
    const { pic } = makeSingle()
    pic.setIrq(2, true)
    pic.acknowledge()
    pic.write(CMD, 1, 0x20)
    expect(pic.hasInterrupt()).toBe(false)
    pic.setIrq(2, false)
    expect(pic.hasInterrupt()).toBe(false)
    pic.setIrq(2, true)
    expect(pic.hasInterrupt()).toBe(true)
  })

  it("edge mode: the latch holds a short pulse until INTA (a documented divergence from the discrete part)", () => {
    const { pic } = makeSingle()
    pic.setIrq(6, true)
    pic.setIrq(6, false)
    expect(pic.acknowledge()).toBe(0x46)
  })

  it("level mode: IRR follows the line; a line still high after EOI requests again", () => {
    const { pic } = makeSingle(0x1b)
    pic.setIrq(2, true)
    pic.acknowledge()
    pic.write(CMD, 1, 0x20)
    expect(pic.hasInterrupt()).toBe(true)
    pic.setIrq(2, false)
    expect(pic.hasInterrupt()).toBe(false)
    expect(readIrr(pic)).toBe(0)
  })

  it("ELCR1/ELCR2 set level mode per IRQ; IRQ0-2, 8 and 13 are edge-only", () => {
    const { pair } = makePair()
    pair.elcr.write(0, 2, 0xffff)
    expect(pair.elcr.read(0, 2)).toBe(0xdef8)
    expect(pair.elcr.read(2, 1)).toBe(0xff)
    pair.elcr.write(0, 2, 0x0800) // IRQ11 level
    pair.setIrq(11, true)
    expect(pair.acknowledge()).toBe(0x2b)
    pair.slave.write(CMD, 1, 0x20)
    pair.master.write(CMD, 1, 0x20)
    expect(pair.acknowledge()).toBe(0x2b) // still high: requested again
  })

  it("setIrq(2) is ignored (the cascade); out-of-range lines are ignored", () => {
    const { pair } = makePair()
    pair.setIrq(2, true)
    pair.setIrq(16, true)
    pair.setIrq(-1, true)
    pair.setIrq(1.5, true)
    expect(pair.hasInterrupt()).toBe(false)
  })
})

describe("bus contract (hw/machine/device.ts)", () => {
  it("a 16-bit write at offset 0 is OCW at A0=0 then OCW1 at A0=1; bad offsets float", () => {
    const { pic } = makeSingle()
    pic.write(CMD, 2, 0x550a) // OCW3 read IRR, then IMR = 0x55
    expect(pic.read(DATA, 1)).toBe(0x55)
    expect(pic.read(CMD, 2)).toBe(0x5500)
    expect(pic.read(2, 1)).toBe(0xff)
    expect(pic.read(1, 4)).toBe(0xffffff55)
  })
})

describe("snapshot / restore", () => {
  it("a restored pair continues exactly where the original was", () => {
    const a = makePair()
    a.pair.master.write(DATA, 1, 0x10)
    a.pair.elcr.write(1, 1, 0x08)
    pulse(a.pair, 12)
    a.pair.acknowledge()
    pulse(a.pair, 3)
    a.pair.setIrq(11, true)
    const state = a.pair.snapshot()
    const b = { pair: new PicPair({ intr: recordingIrq() }) }
    b.pair.restore(JSON.parse(JSON.stringify(state)))
    expect(b.pair.snapshot()).toEqual(state)
    expect(b.pair.hasInterrupt()).toBe(a.pair.hasInterrupt())
    for (let i = 0; i < 4; i++) {
      expect(b.pair.acknowledge()).toBe(a.pair.acknowledge())
      b.pair.master.write(CMD, 1, 0x20)
      a.pair.master.write(CMD, 1, 0x20)
      b.pair.slave.write(CMD, 1, 0x20)
      a.pair.slave.write(CMD, 1, 0x20)
    }
  })
})

describe("properties", () => {
  const port = fc.record({
    chip: fc.constantFrom("master" as const, "slave" as const, "elcr" as const),
    write: fc.boolean(),
    offset: fc.integer({ min: -1, max: 3 }),
    size: fc.constantFrom(1 as const, 2 as const, 4 as const),
    value: fc.oneof(fc.integer({ min: 0, max: 0xff }), fc.integer({ min: -(2 ** 31), max: 2 ** 32 }), fc.double())
  })
  const line = fc.record({ irq: fc.integer({ min: -2, max: 17 }), level: fc.boolean() })
  const event = fc.oneof(
    { weight: 6, arbitrary: port },
    { weight: 3, arbitrary: line },
    { weight: 1, arbitrary: fc.constant("inta" as const) }
  )

  it("random port traffic never throws, and after reset + re-init the pair delivers correctly", () => {
    fc.assert(
      fc.property(fc.array(event, { maxLength: 80 }), (events) => {
        const intr = recordingIrq()
        const pair = new PicPair({ intr })
        for (const e of events) {
          if (e === "inta") {
            const v = pair.acknowledge()
            expect(v).toBeGreaterThanOrEqual(0)
            expect(v).toBeLessThanOrEqual(0xff)
          } else if ("irq" in e) pair.setIrq(e.irq, e.level)
          else {
            const dev = e.chip === "elcr" ? pair.elcr : pair[e.chip]
            if (e.write) dev.write(e.offset, e.size, e.value)
            else {
              const v = dev.read(e.offset, e.size)
              expect(v).toBeGreaterThanOrEqual(0)
              expect(v).toBeLessThan(2 ** (8 * e.size))
            }
          }
          expect(intr.level).toBe(pair.hasInterrupt())
        }
        for (let irq = 0; irq < 16; irq++) pair.setIrq(irq, false)
        pair.reset()
        initPair(pair)
        pulse(pair, 14)
        pulse(pair, 3)
        expect(pair.acknowledge()).toBe(0x2e) // IRQ14 via IR2 outranks IR3
        pair.slave.write(CMD, 1, 0x20)
        pair.master.write(CMD, 1, 0x20)
        expect(pair.acknowledge()).toBe(0x23)
        pair.master.write(CMD, 1, 0x20)
        expect(pair.hasInterrupt()).toBe(false)
      }),
      { seed: 0x8259, numRuns: 400 }
    )
  })

  it("delivered vectors follow fixed priority and the masks (edge pulses, EOI after each)", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 0xffff }),
        fc.array(fc.integer({ min: 0, max: 15 }), { maxLength: 30 }),
        (mask, raised) => {
          const { pair } = makePair()
          pair.master.write(DATA, 1, mask & 0xfb) // keep the cascade open
          pair.slave.write(DATA, 1, mask >> 8)
          for (const irq of raised) pulse(pair, irq)
          const expected = [...new Set(raised)]
            .filter((irq) => irq !== 2 && !(mask & 0xfb & (1 << irq)) && !(irq >= 8 && (mask >> 8) & (1 << (irq - 8))))
            .sort((x, y) => (x >= 8 ? 2 + (x - 8) / 10 : x) - (y >= 8 ? 2 + (y - 8) / 10 : y))
          const got: number[] = []
          while (pair.hasInterrupt()) {
            const v = pair.acknowledge()
            got.push(v >= 0x28 ? v - 0x28 + 8 : v - 0x20)
            if (v >= 0x28) pair.slave.write(CMD, 1, 0x20)
            pair.master.write(CMD, 1, 0x20)
          }
          expect(got).toEqual(expected)
        }
      ),
      { seed: 0x8258, numRuns: 300 }
    )
  })
})
