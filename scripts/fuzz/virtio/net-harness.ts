/**
 * virtio-net rig (the virtio tests and fuzz suite `virtio`): a guest
 * (driver.ts) with a virtio-net device on a virtio-mmio transport, plugged
 * into a vSwitch port, with helpers that post receive buffers, transmit
 * (virtio_net_hdr + frame, OASIS virtio 1.1 5.1.6.2) and collect received
 * frames (5.1.6.4); and a plain recording port.
 */
import { recordingIrq } from "../../../hw/machine/device.ts"
import type { NetPort, VSwitch } from "../../../kernel/vswitch/vswitch.ts"
import { VirtioFeature, VirtioMmio } from "../../../vmm/virtio/mmio.ts"
import { VIRTIO_NET_HDR_SIZE, VirtioNet, VirtioNetFeature } from "../../../vmm/virtio/net.ts"
import { Driver, makeGuest, must } from "./driver.ts"

export const RX_BUF = 0x10000
export const TX_BUF = 0x30000
export const MAC_A = [0x02, 0, 0, 0, 0, 0x0a]
export const MAC_B = [0x02, 0, 0, 0, 0, 0x0b]
export const MAC_D = [0x02, 0, 0, 0, 0, 0x0d]
export const BROADCAST = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff]

export const frame = (dst: ArrayLike<number>, src: ArrayLike<number>, payload = 46, seed = 0) => {
  const f = new Uint8Array(14 + payload)
  f.set(Array.from(dst), 0)
  f.set(Array.from(src), 6)
  f[12] = 0x08
  for (let i = 14; i < f.length; i++) f[i] = (i + seed) & 0xff
  return f
}

/** A guest with a virtio-net on port `name` of `group`; `cable` may put something (a fault injector) in between. */
export const makeVm = (
  sw: VSwitch,
  group: string,
  name: string,
  mac: ReadonlyArray<number>,
  cable: (port: NetPort) => NetPort = (port) => port
) => {
  const guest = makeGuest()
  const irq = recordingIrq()
  const attachment = sw.attach(group, name)
  const net = new VirtioNet({ port: cable(attachment.port), mac })
  const dev = new VirtioMmio({ device: net, memory: guest.memory, irq })
  const drv = new Driver(dev, guest)
  const rxBuffers = new Map<number, number>()
  let txSlot = 0
  let rxSlot = 0
  const vm = {
    guest,
    irq,
    net,
    dev,
    drv,
    attachment,
    /** Negotiate MAC + STATUS, set up receiveq and transmitq, DRIVER_OK. */
    up: (size = 16, extra = 0n) => {
      rxBuffers.clear()
      rxSlot = 0
      return drv.init(2, size, VirtioFeature.VERSION_1 | VirtioNetFeature.MAC | VirtioNetFeature.STATUS | extra)
    },
    /** Post `n` receive buffers of `size` bytes. */
    postRx: (n: number, size = 1526) => {
      for (let i = 0; i < n; i++) {
        const addr = RX_BUF + (rxSlot++ % 32) * 0x800
        rxBuffers.set(drv.queues[0]!.submit([{ addr, len: size, write: true }]), addr)
      }
    },
    /** Transmit one frame (header and frame in two descriptors); returns the used elements of transmitq. */
    send: (f: Uint8Array) => {
      const at = TX_BUF + (txSlot++ % 8) * 0x800
      guest.ram.fill(0, at, at + VIRTIO_NET_HDR_SIZE)
      guest.ram.set(f, at + VIRTIO_NET_HDR_SIZE)
      drv.queues[1]!.submit([
        { addr: at, len: VIRTIO_NET_HDR_SIZE },
        { addr: at + VIRTIO_NET_HDR_SIZE, len: f.length }
      ])
      drv.kick(1)
      return drv.queues[1]!.collect()
    },
    /** Frames received since the last call: header checked, frame returned. */
    received: () =>
      drv.queues[0]!.collect().map(({ id, len }) => {
        const addr = rxBuffers.get(id)!
        rxBuffers.delete(id)
        if (len === 0) return undefined
        const hdr = guest.ram.slice(addr, addr + VIRTIO_NET_HDR_SIZE)
        // all zero but num_buffers = 1 (5.1.6.4)
        must(
          hdr.every((b, i) => b === (i === 10 ? 1 : 0)),
          `received virtio_net_hdr is ${[...hdr].join(",")}, not zeros with num_buffers = 1`
        )
        return guest.ram.slice(addr + VIRTIO_NET_HDR_SIZE, addr + len)
      })
  }
  return vm
}

/** A plain switch port that records what it gets (a sniffer in the same port group). */
export const recorder = (sw: VSwitch, group: string, name: string) => {
  const got: Array<Uint8Array> = []
  const attachment = sw.attach(group, name)
  attachment.port.onReceive((f) => got.push(f))
  return { got, attachment }
}
