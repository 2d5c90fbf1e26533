/**
 * fvnic (hw/devices/nic): every section of its datasheet (registers.ts
 * header: "Registers", "Descriptor", "Timing"), the none/loopback back-ends,
 * and fast-check properties: random register traffic, random descriptors
 * and random frames never throw, never write RAM outside the rings' length/
 * flags fields and the RX buffers descriptors name, and the NIC works again
 * after RESET.
 */
import { describe, expect, it } from "@effect/vitest"
import fc from "fast-check"
import { loopbackBackend, loopbackPair, type NicBackend, noneBackend } from "../../../hw/devices/nic/backends.ts"
import { Fvnic } from "../../../hw/devices/nic/fvnic.ts"
import { FVNIC_MAGIC, NicError, NicFault, NicReg as R } from "../../../hw/devices/nic/registers.ts"
import { type DmaMemory, dmaMemory, recordingIrq } from "../../../hw/machine/device.ts"

const RAM = 64 * 1024
const TX = 0x1000
const RX = 0x2000
const BUF = 0x8000
const MAC_A = [0x02, 0x00, 0x00, 0x00, 0x00, 0x0a]
const MAC_B = [0x02, 0x00, 0x00, 0x00, 0x00, 0x0b]
const DONE = 1
const ERROR = 2

const makeNic = (backend: NicBackend, mac = MAC_A, dma?: (inner: DmaMemory) => DmaMemory) => {
  const ram = new Uint8Array(RAM)
  const irq = recordingIrq()
  const raw = dmaMemory(ram)
  const nic = new Fvnic({ backend, dma: dma ? dma(raw) : raw, irq, mac })
  const view = new DataView(ram.buffer)
  const desc = (ring: number, slot: number, buffer: number, length: number) => {
    view.setUint32(ring + slot * 8, buffer >>> 0, true)
    view.setUint16(ring + slot * 8 + 4, length, true)
    view.setUint16(ring + slot * 8 + 6, 0, true)
  }
  const flags = (ring: number, slot: number) => view.getUint16(ring + slot * 8 + 6, true)
  const length = (ring: number, slot: number) => view.getUint16(ring + slot * 8 + 4, true)
  /** Rings of 8 at TX/RX, all interrupts enabled, both directions on. */
  const up = (control = 0b011) => {
    nic.write(R.TX_BASE, 4, TX)
    nic.write(R.TX_SIZE, 4, 8)
    nic.write(R.RX_BASE, 4, RX)
    nic.write(R.RX_SIZE, 4, 8)
    nic.write(R.INT_MASK, 4, 0x1f)
    nic.write(R.CONTROL, 4, control)
  }
  /** Post a frame at TX slot `slot` (buffer BUF + slot * 0x800) and ring the doorbell. */
  const send = (slot: number, frame: Uint8Array, tail = slot + 1) => {
    ram.set(frame, BUF + slot * 0x800)
    desc(TX, slot, BUF + slot * 0x800, frame.length)
    nic.write(R.TX_TAIL, 4, tail)
  }
  /** Post `n` receive buffers of `capacity` bytes at RX slots 0..n-1 (buffers at 0x4000 + slot * 0x800). */
  const post = (n: number, capacity = 1518) => {
    for (let i = 0; i < n; i++) desc(RX, i, 0x4000 + i * 0x800, capacity)
    nic.write(R.RX_TAIL, 4, n)
  }
  return { nic, ram, irq, desc, flags, length, up, send, post }
}

const frameTo = (dest: ReadonlyArray<number>, size = 64, fill = 0x5a) => {
  const f = new Uint8Array(size).fill(fill)
  f.set(dest, 0)
  f.set(MAC_A, 6)
  return f
}

describe("datasheet: registers", () => {
  it("identify the controller; MAC registers hold the factory MAC, are writable, and RESET restores them", () => {
    const { nic } = makeNic(noneBackend())
    expect(nic.read(R.MAGIC, 4)).toBe(FVNIC_MAGIC)
    expect([0, 1, 2, 3].map((i) => String.fromCharCode(nic.read(R.MAGIC + i, 1))).join("")).toBe("FVNC")
    expect(nic.read(R.VERSION, 4)).toBe(0x00010000)
    expect(nic.read(R.MAX_FRAME, 4)).toBe(1518)
    expect(nic.read(R.MAC_LOW, 4)).toBe(0x00000002)
    expect(nic.read(R.MAC_HIGH, 4)).toBe(0x0a00)
    nic.write(R.MAC_LOW, 4, 0x44332211)
    nic.write(R.MAC_HIGH, 4, 0xffff6655)
    expect([nic.read(R.MAC_LOW, 4), nic.read(R.MAC_HIGH, 4)]).toEqual([0x44332211, 0x6655])
    nic.write(R.RESET, 4, 1)
    expect(nic.read(R.MAC_HIGH, 4)).toBe(0x0a00)
    expect(nic.read(0x800, 4)).toBe(0)
    expect(nic.read(0x1000, 1)).toBe(0xff)
  })

  it("STATUS reports the link; a link change raises LINK_CHANGE", () => {
    const { nic, irq } = makeNic(noneBackend())
    nic.write(R.INT_MASK, 4, 0x08)
    expect(nic.read(R.STATUS, 4)).toBe(1)
    nic.setLink(false)
    expect(nic.read(R.STATUS, 4)).toBe(0)
    expect(nic.read(R.INT_STATUS, 4)).toBe(0x08)
    expect(irq.level).toBe(true)
    nic.write(R.INT_STATUS, 4, 0x08)
    expect(irq.level).toBe(false)
  })

  it("ring registers are latched while their direction is enabled; TX_TAIL is ignored while TX is off", () => {
    const { nic, up } = makeNic(noneBackend())
    nic.write(R.TX_TAIL, 4, 1)
    expect(nic.read(R.TX_TAIL, 4)).toBe(0)
    up()
    nic.write(R.TX_BASE, 4, 0)
    nic.write(R.RX_SIZE, 4, 2)
    expect([nic.read(R.TX_BASE, 4), nic.read(R.RX_SIZE, 4)]).toEqual([TX, 8])
    nic.write(R.CONTROL, 4, 0)
    nic.write(R.TX_BASE, 4, 0x3000)
    expect(nic.read(R.TX_BASE, 4)).toBe(0x3000)
    expect(nic.read(R.CONTROL, 4)).toBe(0)
  })

  it.each([
    ["size 0", 0, TX, NicFault.TxRing],
    ["size not a power of two", 3, TX, NicFault.TxRing],
    ["size above 4096", 8192, TX, NicFault.TxRing],
    ["base misaligned", 8, TX + 4, NicFault.TxRing],
    ["ring past the end of RAM", 8, RAM - 32, NicFault.TxRing]
  ])("enabling TX with a bad ring (%s) halts the controller until RESET", (_n, size, base, code) => {
    const { nic, irq, up } = makeNic(noneBackend())
    nic.write(R.INT_MASK, 4, 0x10)
    nic.write(R.TX_BASE, 4, base)
    nic.write(R.TX_SIZE, 4, size)
    nic.write(R.CONTROL, 4, 1)
    expect([nic.read(R.FAULT_CODE, 4), nic.read(R.STATUS, 4), nic.read(R.CONTROL, 4)]).toEqual([code, 3, 0])
    expect(irq.level).toBe(true)
    nic.write(R.TX_BASE, 4, TX) // ignored while halted
    expect(nic.read(R.TX_BASE, 4)).toBe(base)
    nic.write(R.RESET, 4, 1)
    up()
    expect([nic.read(R.FAULT_CODE, 4), nic.read(R.CONTROL, 4)]).toEqual([0, 3])
  })

  it("a bad RX ring or a TAIL beyond HEAD + SIZE or moving backwards is a fault", () => {
    const a = makeNic(noneBackend())
    a.nic.write(R.RX_SIZE, 4, 5)
    a.nic.write(R.CONTROL, 4, 2)
    expect(a.nic.read(R.FAULT_CODE, 4)).toBe(NicFault.RxRing)
    const b = makeNic(noneBackend())
    b.up()
    b.nic.write(R.RX_TAIL, 4, 9)
    expect(b.nic.read(R.FAULT_CODE, 4)).toBe(NicFault.RxIndex)
    const c = makeNic(noneBackend())
    c.up()
    c.send(0, frameTo(MAC_B))
    c.nic.write(R.TX_TAIL, 4, 0)
    expect(c.nic.read(R.FAULT_CODE, 4)).toBe(NicFault.TxIndex)
  })
})

describe("datasheet: descriptors (TX and RX through a loopback pair)", () => {
  const pair = () => {
    const cable = loopbackPair()
    const a = makeNic(cable.a, MAC_A)
    const b = makeNic(cable.b, MAC_B)
    a.up()
    b.up()
    return { a, b }
  }

  it("a frame sent by A lands in B's posted buffer with its length and DONE", () => {
    const { a, b } = pair()
    b.post(2)
    const frame = frameTo(MAC_B, 100)
    a.send(0, frame)
    expect([a.flags(TX, 0), a.nic.read(R.TX_HEAD, 4), a.nic.read(R.INT_STATUS, 4) & 1]).toEqual([DONE, 1, 1])
    expect([b.flags(RX, 0), b.length(RX, 0), b.nic.read(R.RX_HEAD, 4)]).toEqual([DONE, 100, 1])
    expect(b.ram.subarray(0x4000, 0x4000 + 100)).toEqual(frame)
    expect(b.ram[0x4000 + 100]).toBe(0)
    expect(b.irq.level).toBe(true)
    expect(b.nic.read(R.INT_STATUS, 4)).toBe(0x02)
  })

  it("TX rejects runts, frames over 1514+4 bytes and buffers outside RAM; 1518 bytes pass", () => {
    const { a, b } = pair()
    b.post(4)
    a.send(0, frameTo(MAC_B, 13))
    a.send(1, frameTo(MAC_B, 1519))
    a.desc(TX, 2, RAM - 10, 64)
    a.nic.write(R.TX_TAIL, 4, 3)
    a.send(3, frameTo(MAC_B, 1518))
    expect([0, 1, 2, 3].map((s) => a.flags(TX, s))).toEqual([
      DONE | ERROR | (NicError.Length << 8),
      DONE | ERROR | (NicError.Length << 8),
      DONE | ERROR | (NicError.Buffer << 8),
      DONE
    ])
    expect([b.nic.read(R.RX_HEAD, 4), b.length(RX, 0)]).toEqual([1, 1518])
  })

  it("TX with the link down completes with LINK_DOWN and sends nothing", () => {
    const { a, b } = pair()
    b.post(1)
    a.nic.setLink(false)
    a.send(0, frameTo(MAC_B))
    expect(a.flags(TX, 0)).toBe(DONE | ERROR | (NicError.LinkDown << 8))
    expect(b.nic.read(R.RX_HEAD, 4)).toBe(0)
  })

  it("RX filters by destination: own MAC and broadcast pass, others only under PROMISC (not counted as drops)", () => {
    const { a, b } = pair()
    b.post(4)
    a.send(0, frameTo(MAC_A))
    a.send(1, frameTo([0xff, 0xff, 0xff, 0xff, 0xff, 0xff]))
    expect([b.nic.read(R.RX_HEAD, 4), b.nic.read(R.RX_DROPPED, 4)]).toEqual([1, 0])
    b.nic.write(R.CONTROL, 4, 0b111)
    a.send(2, frameTo(MAC_A))
    expect(b.nic.read(R.RX_HEAD, 4)).toBe(2)
  })

  it("RX drops (and counts) frames with no posted buffer, a buffer too small or outside RAM, or a bad size", () => {
    const { a, b } = pair()
    a.send(0, frameTo(MAC_B)) // no buffer posted
    expect([b.nic.read(R.RX_DROPPED, 4), b.nic.read(R.INT_STATUS, 4)]).toEqual([1, 0x04])
    b.desc(RX, 0, 0x4000, 63)
    b.desc(RX, 1, RAM - 32, 1518)
    b.nic.write(R.RX_TAIL, 4, 2)
    a.send(1, frameTo(MAC_B))
    a.send(2, frameTo(MAC_B))
    expect([b.flags(RX, 0), b.flags(RX, 1)]).toEqual([
      DONE | ERROR | (NicError.TooSmall << 8),
      DONE | ERROR | (NicError.Buffer << 8)
    ])
    expect(b.ram[0x4000]).toBe(0)
    b.nic.receive(new Uint8Array(1519))
    b.nic.receive(new Uint8Array(3))
    expect([b.nic.read(R.RX_DROPPED, 4), b.nic.read(R.RX_HEAD, 4)]).toEqual([5, 2])
  })

  it("frames are ignored while RX is disabled or the link is down", () => {
    const { a, b } = pair()
    b.post(1)
    b.nic.setLink(false)
    a.send(0, frameTo(MAC_B))
    b.nic.setLink(true)
    b.nic.write(R.CONTROL, 4, 1)
    a.send(1, frameTo(MAC_B))
    expect([b.nic.read(R.RX_HEAD, 4), b.nic.read(R.RX_DROPPED, 4)]).toEqual([0, 0])
  })

  it("indices are free-running: slots wrap around an 8-entry ring", () => {
    const { a, b } = pair()
    for (let i = 0; i < 20; i++) {
      b.desc(RX, i % 8, 0x4000, 1518)
      b.nic.write(R.RX_TAIL, 4, i + 1)
      a.ram.set(frameTo(MAC_B, 60, i), BUF)
      a.desc(TX, i % 8, BUF, 60)
      a.nic.write(R.TX_TAIL, 4, i + 1)
      expect(b.ram[0x4000 + 20]).toBe(i)
    }
    expect([a.nic.read(R.TX_HEAD, 4), b.nic.read(R.RX_HEAD, 4)]).toEqual([20, 20])
  })
})

describe("back-ends", () => {
  it("loopback: a NIC receives what it sends", () => {
    const n = makeNic(loopbackBackend())
    n.up()
    n.post(1)
    n.send(0, frameTo(MAC_A, 80, 0x11))
    expect([n.flags(RX, 0), n.length(RX, 0), n.ram[0x4000 + 79]]).toEqual([DONE, 80, 0x11])
  })

  it("none: frames are sent (DONE) and vanish; nothing arrives", () => {
    const n = makeNic(noneBackend())
    n.up()
    n.post(1)
    n.send(0, frameTo(MAC_A))
    expect([n.flags(TX, 0), n.nic.read(R.RX_HEAD, 4)]).toEqual([DONE, 0])
  })

  it("loopback copies: the receiver never aliases the sender's buffer", () => {
    const seen: Array<Uint8Array> = []
    const cable = loopbackPair()
    cable.b.onReceive((f) => seen.push(f))
    const sent = Uint8Array.of(1, 2, 3)
    cable.a.send(sent)
    sent[0] = 9
    expect(seen[0]).toEqual(Uint8Array.of(1, 2, 3))
  })

  it("a back-end that throws loses the frame, not the machine", () => {
    const n = makeNic({
      send: () => {
        throw new Error("cable on fire")
      },
      onReceive: () => {}
    })
    n.up()
    n.send(0, frameTo(MAC_B))
    expect(n.flags(TX, 0)).toBe(DONE)
  })
})

describe("snapshot / restore", () => {
  it("a restored NIC continues like the original; a damaged enabled ring restores as a fault", () => {
    const cable = loopbackPair()
    const a = makeNic(cable.a)
    a.up()
    a.post(3)
    const state = JSON.parse(JSON.stringify(a.nic.snapshot()))
    const b = makeNic(cable.b, MAC_B)
    b.ram.set(a.ram)
    b.nic.restore(state)
    expect(b.nic.snapshot()).toEqual(a.nic.snapshot())
    b.nic.restore({ ...state, rx: { ...state.rx, size: 3 } })
    expect(b.nic.read(R.FAULT_CODE, 4)).toBe(NicFault.RxRing)
  })
})

describe("properties", () => {
  const u32 = fc.nat({ max: 0xffffffff })
  const descArb = fc.record({
    buffer: fc.oneof(fc.nat({ max: RAM }), fc.integer({ min: RAM - 2048, max: RAM + 16 }), u32),
    length: fc.oneof(fc.nat({ max: 1600 }), fc.constantFrom(13, 14, 1518, 1519), fc.nat({ max: 0xffff }))
  })
  const frameArb = fc.oneof(
    fc.uint8Array({ minLength: 0, maxLength: 1600 }),
    fc.integer({ min: 14, max: 1518 }).map((n) => frameTo([0xff, 0xff, 0xff, 0xff, 0xff, 0xff], n))
  )

  it("random TX descriptors and RX frames never throw and only write RX buffers and descriptor length/flags", () => {
    fc.assert(
      fc.property(
        fc.array(descArb, { maxLength: 8 }),
        fc.array(descArb, { maxLength: 8 }),
        fc.array(frameArb, { maxLength: 10 }),
        fc.boolean(),
        (txs, rxs, frames, promisc) => {
          const inside = (a: number, l: number, base: number, len: number) => a >= base && a + l <= base + len
          const allowed = (a: number, l: number) =>
            [TX, RX].some((ring) => inside(a, l, ring, 64) && (a - ring) % 8 >= 4) ||
            rxs.some((d) => inside(a, l, d.buffer, d.length))
          const guard = (inner: DmaMemory): DmaMemory => ({
            ...inner,
            write: (address, data) => {
              expect(allowed(address, data.length), `DMA write at ${address} +${data.length}`).toBe(true)
              return inner.write(address, data)
            },
            write32: (address, value) => {
              expect(allowed(address, 4)).toBe(true)
              return inner.write32(address, value)
            }
          })
          const n = makeNic(loopbackBackend(), MAC_A, guard)
          n.up(promisc ? 0b111 : 0b011)
          rxs.forEach((d, i) => {
            n.desc(RX, i, d.buffer, d.length)
          })
          n.nic.write(R.RX_TAIL, 4, rxs.length)
          for (const f of frames) n.nic.receive(f)
          txs.forEach((d, i) => {
            n.desc(TX, i, d.buffer, d.length)
          })
          n.nic.write(R.TX_TAIL, 4, txs.length)
          expect(n.nic.read(R.TX_HEAD, 4)).toBe(txs.length)
          expect(n.nic.read(R.FAULT_CODE, 4)).toBe(0)
          expect(n.nic.read(R.RX_HEAD, 4)).toBeLessThanOrEqual(rxs.length)
        }
      ),
      { seed: 0x41c1, numRuns: 250 }
    )
  })

  const regOp = fc.record({
    offset: fc.oneof(fc.constantFrom(...Object.values(R)), fc.integer({ min: -4, max: 0x1004 })),
    size: fc.constantFrom(1 as const, 2 as const, 4 as const),
    value: fc.oneof(u32, fc.nat({ max: 16 }), fc.constantFrom(TX, RX, RAM - 16, Number.NaN, -1, 2 ** 40)),
    frame: fc.option(frameArb, { nil: undefined })
  })

  it("random register traffic and frames never throw, and RESET brings the NIC back", () => {
    fc.assert(
      fc.property(fc.array(regOp, { maxLength: 40 }), (ops) => {
        const n = makeNic(loopbackBackend())
        for (const o of ops) {
          n.nic.write(o.offset, o.size, o.value)
          n.nic.read(o.offset, o.size)
          if (o.frame !== undefined) n.nic.receive(o.frame)
        }
        n.nic.write(R.RESET, 4, 1)
        n.up()
        n.post(1)
        n.send(0, frameTo(MAC_A, 70, 0x66))
        expect([n.flags(TX, 0), n.flags(RX, 0), n.length(RX, 0)]).toEqual([DONE, DONE, 70])
      }),
      { seed: 0x41c2, numRuns: 300 }
    )
  })
})
