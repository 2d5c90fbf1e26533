/**
 * drivers/nic.ts on a real Machine with the loopback plug: frames sent come
 * back through the RX ring byte for byte, in order; the ring wraps; the MAC
 * filter and promiscuous mode; typed errors for bad frames.
 */
import { describe, expect, it } from "@effect/vitest"
import { NicDriver } from "../../drivers/nic.ts"
import { NicReg } from "../../hw/devices/nic/registers.ts"
import { FVNIC_BASE } from "../../hw/machine/machine.ts"
import { makeHost, unwrap } from "./harness.ts"

const frameTo = (dst: ArrayLike<number>, src: ArrayLike<number>, payload: number, length = 64) => {
  const f = new Uint8Array(length)
  f.set(Array.from(dst), 0)
  f.set(Array.from(src), 6)
  f[12] = 0x88
  f[13] = 0xb5 // local experimental EtherType
  for (let i = 14; i < length; i++) f[i] = (payload + i) & 0xff
  return f
}

const open = (promiscuous = false) => {
  const host = makeHost({ overrides: { seed: 0x123456 } })
  const nic = unwrap(NicDriver.open(host.machine, { allocFrame: host.allocFrame, promiscuous }))
  return { ...host, nic }
}

describe("fvnic driver", () => {
  it("reads the factory MAC and brings the rings up", () => {
    const { nic, machine, frames } = open()
    expect(Array.from(nic.mac)).toEqual([0x52, 0x54, 0x00, 0x12, 0x34, 0x56])
    expect(nic.linkUp).toBe(true)
    expect(frames.length).toBe(1 + 8 + 8)
    expect(machine.mmio.read(FVNIC_BASE + NicReg.CONTROL, 4)).toBe(0b011)
    expect(machine.mmio.read(FVNIC_BASE + NicReg.RX_TAIL, 4)).toBe(16)
  })

  it("loopback: what is sent is received, byte for byte and in order", () => {
    const { nic } = open()
    const sent = [frameTo(nic.mac, nic.mac, 1), frameTo([0xff, 0xff, 0xff, 0xff, 0xff, 0xff], nic.mac, 2, 1518)]
    for (const f of sent) unwrap(nic.send(f))
    expect(nic.receive()).toEqual(sent)
    expect(nic.receive()).toEqual([])
    expect(nic.sent).toBe(2)
    expect(nic.received).toBe(2)
  })

  it("keeps going past the ring size (buffers are re-posted)", () => {
    const { nic } = open()
    for (let round = 0; round < 5; round++) {
      const sent = Array.from({ length: 10 }, (_, i) => frameTo(nic.mac, nic.mac, round * 10 + i, 14 + i * 50))
      for (const f of sent) unwrap(nic.send(f))
      expect(nic.receive()).toEqual(sent)
    }
    expect(nic.rxDropped).toBe(0)
  })

  it("drops what does not fit in the posted buffers, and counts it", () => {
    const { nic } = open()
    for (let i = 0; i < 20; i++) unwrap(nic.send(frameTo(nic.mac, nic.mac, i)))
    expect(nic.receive().length).toBe(16)
    expect(nic.rxDropped).toBe(4)
  })

  it("filters other unicast destinations unless promiscuous", () => {
    const other = [0x02, 0, 0, 0, 0, 1]
    const plain = open()
    unwrap(plain.nic.send(frameTo(other, plain.nic.mac, 0)))
    expect(plain.nic.receive()).toEqual([])
    const promisc = open(true)
    unwrap(promisc.nic.send(frameTo(other, promisc.nic.mac, 0)))
    expect(promisc.nic.receive().length).toBe(1)
  })

  it("rejects frames outside 14..1518 bytes without sending", () => {
    const { nic, machine } = open()
    const tail = machine.mmio.read(FVNIC_BASE + NicReg.TX_TAIL, 4)
    expect(nic.send(new Uint8Array(13))).toEqual({ ok: false, error: { _tag: "BadFrameLength", length: 13 } })
    expect(nic.send(new Uint8Array(1519)).ok).toBe(false)
    expect(machine.mmio.read(FVNIC_BASE + NicReg.TX_TAIL, 4)).toBe(tail)
  })

  it("reports a link that is down", () => {
    const { nic, machine } = open()
    machine.nic!.setLink(false)
    expect(nic.send(frameTo(nic.mac, nic.mac, 0))).toMatchObject({ ok: false, error: { _tag: "TxFailed", code: 4 } })
  })
})
