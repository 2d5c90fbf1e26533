/**
 * virtio-net over virtio-mmio (vmm/virtio/net.ts) on the vSwitch
 * (kernel/vswitch/vswitch.ts): OASIS virtio 1.1 5.1.4 (config: mac,
 * status), 5.1.6 (virtio_net_hdr, transmitq, receiveq), 2.1.2 (config
 * change notification). Two guests, each with a test driver (driver.ts),
 * exchange frames both ways through one switch; MAC learning turns the
 * flood of the first unknown unicast into plain unicast; port groups isolate.
 */
import { describe, expect, it } from "@effect/vitest"
import { VSwitch } from "../../../kernel/vswitch/vswitch.ts"
import {
  BROADCAST,
  frame,
  MAC_A,
  MAC_B,
  MAC_D,
  makeVm,
  recorder,
  TX_BUF
} from "../../../scripts/fuzz/virtio/net-harness.ts"
import {
  VirtioReg as R,
  VIRTIO_CONFIG_OFFSET,
  VirtioFeature,
  VirtioInterrupt,
  VirtioStatus
} from "../../../vmm/virtio/mmio.ts"
import { VIRTIO_NET_S_LINK_UP, VirtioNetConfig, VirtioNetFeature } from "../../../vmm/virtio/net.ts"

describe("virtio-net config and features (5.1.3, 5.1.4)", () => {
  it("offers MAC and STATUS and shows the MAC and link state in config space", () => {
    const sw = new VSwitch()
    const a = makeVm(sw, "VM Network", "a", MAC_A)
    expect(a.dev.read(R.DEVICE_ID, 4)).toBe(1)
    const features = a.drv.deviceFeatures()
    expect(features & (VirtioNetFeature.MAC | VirtioNetFeature.STATUS | VirtioFeature.VERSION_1)).toBe(
      VirtioNetFeature.MAC | VirtioNetFeature.STATUS | VirtioFeature.VERSION_1
    )
    const mac = Array.from({ length: 6 }, (_, i) => a.dev.read(VIRTIO_CONFIG_OFFSET + VirtioNetConfig.MAC + i, 1))
    expect(mac).toEqual(MAC_A)
    expect(a.dev.read(VIRTIO_CONFIG_OFFSET + VirtioNetConfig.STATUS, 2)).toBe(VIRTIO_NET_S_LINK_UP)
    a.dev.write(VIRTIO_CONFIG_OFFSET, 1, 0x77) // read-only
    expect(a.dev.read(VIRTIO_CONFIG_OFFSET, 1)).toBe(0x02)
  })

  it("setLink changes the status field with a configuration-change interrupt; a down link passes nothing", () => {
    const sw = new VSwitch()
    const a = makeVm(sw, "VM Network", "a", MAC_A)
    const sniff = recorder(sw, "VM Network", "sniffer")
    a.up()
    a.postRx(2)
    const generation = a.dev.read(R.CONFIG_GENERATION, 4)
    a.net.setLink(false)
    expect(a.dev.read(R.CONFIG_GENERATION, 4)).not.toBe(generation)
    expect(a.dev.read(VIRTIO_CONFIG_OFFSET + VirtioNetConfig.STATUS, 2)).toBe(0)
    expect(a.drv.ack()).toBe(VirtioInterrupt.CONFIG_CHANGE)
    expect(a.send(frame(BROADCAST, MAC_A))).toHaveLength(1)
    expect(sniff.got).toHaveLength(0)
    sniff.attachment.port.send(frame(MAC_A, MAC_B))
    expect(a.received()).toEqual([])
    expect(a.net.stats()).toMatchObject({ txDropped: 1, rxDropped: 1 })
    a.net.setLink(true)
    sniff.attachment.port.send(frame(MAC_A, MAC_B))
    expect(a.received()).toHaveLength(1)
  })
})

describe("virtio-net through the vSwitch (5.1.6)", () => {
  it("two guests exchange frames both ways; learning turns flooding into unicast; port groups isolate", () => {
    const sw = new VSwitch()
    const a = makeVm(sw, "VM Network", "vm-a.eth0", MAC_A)
    const b = makeVm(sw, "VM Network", "vm-b.eth0", MAC_B)
    const d = makeVm(sw, "DMZ", "vm-d.eth0", MAC_D)
    const sniff = recorder(sw, "VM Network", "sniffer")
    for (const vm of [a, b, d]) {
      vm.up()
      vm.postRx(8)
    }

    // A -> B, B's MAC unknown: flooded to B and the sniffer, not to the DMZ
    const f1 = frame(MAC_B, MAC_A, 100, 1)
    expect(a.send(f1)).toEqual([{ id: 0, len: 0 }])
    expect(a.drv.ack()).toBe(VirtioInterrupt.USED_BUFFER)
    expect(b.irq.level).toBe(true)
    expect(b.drv.ack()).toBe(VirtioInterrupt.USED_BUFFER)
    expect(b.received()).toEqual([f1])
    expect(sniff.got).toEqual([f1])
    expect(d.received()).toEqual([])
    expect(d.irq.raises).toBe(0)

    // B -> A: A was learned from f1, so this is unicast
    const f2 = frame(MAC_A, MAC_B, 1500, 2)
    b.send(f2)
    expect(a.received()).toEqual([f2])
    expect(sniff.got).toHaveLength(1)

    // A -> B again: B learned now, unicast too
    const f3 = frame(MAC_B, MAC_A, 46, 3)
    a.send(f3)
    expect(b.received()).toEqual([f3])
    expect(sniff.got).toHaveLength(1)
    expect(sw.stats()).toMatchObject({ flooded: 1, unicast: 2 })

    // broadcasts stay in their port group, both ways
    const f4 = frame(BROADCAST, MAC_D, 46, 4)
    d.send(f4)
    expect(a.received()).toEqual([])
    expect(b.received()).toEqual([])
    expect(sniff.got).toHaveLength(1)
    const f5 = frame(BROADCAST, MAC_A, 46, 5)
    a.send(f5)
    expect(b.received()).toEqual([f5])
    expect(d.received()).toEqual([])

    expect(a.net.stats()).toMatchObject({ txFrames: 3, rxFrames: 1, rxBytes: f2.length })
    expect(b.net.stats()).toMatchObject({ txFrames: 1, rxFrames: 3 })
    expect(a.attachment.counters()).toMatchObject({ txFrames: 3, rxFrames: 1 })
    expect(sw.lookup("VM Network", "02:00:00:00:00:0b")).toBe("vm-b.eth0")
    expect(sw.lookup("DMZ", "02:00:00:00:00:0b")).toBeUndefined()
    for (const vm of [a, b, d]) {
      expect(vm.guest.refused.count).toBe(0)
      expect(vm.guest.canariesIntact()).toBe(true)
      expect(vm.drv.status & VirtioStatus.DEVICE_NEEDS_RESET).toBe(0)
    }
  })

  it("drops frames with no receive buffer, a buffer too small, or a device not yet live", () => {
    const sw = new VSwitch()
    const a = makeVm(sw, "VM Network", "a", MAC_A)
    const peer = recorder(sw, "VM Network", "peer")
    peer.attachment.port.send(frame(MAC_A, MAC_B)) // not initialized
    a.up()
    peer.attachment.port.send(frame(MAC_A, MAC_B)) // no buffers posted
    a.postRx(1, 64) // too small for header + 100-byte frame
    peer.attachment.port.send(frame(MAC_A, MAC_B, 100))
    expect(a.received()).toEqual([undefined]) // returned with used.len 0
    expect(a.net.stats()).toMatchObject({ rxDropped: 3, rxFrames: 0 })
    a.postRx(1, 64)
    peer.attachment.port.send(frame(MAC_A, MAC_B, 38)) // 12 + 52 fits exactly
    expect(a.received()).toEqual([frame(MAC_A, MAC_B, 38)])
  })

  it("drops runt and oversize transmit frames; a chain shorter than the header breaks only transmitq", () => {
    const sw = new VSwitch()
    const a = makeVm(sw, "VM Network", "a", MAC_A)
    const peer = recorder(sw, "VM Network", "peer")
    a.up()
    a.postRx(2)
    expect(a.send(new Uint8Array(13))).toEqual([{ id: 0, len: 0 }])
    expect(a.send(new Uint8Array(1519))).toHaveLength(1)
    expect(peer.got).toEqual([])
    expect(a.net.stats().txDropped).toBe(2)
    // a 1518-byte 802.1Q-tagged frame is fine
    const tagged = frame(BROADCAST, MAC_A, 1504)
    tagged[12] = 0x81
    tagged[13] = 0x00
    a.send(tagged)
    expect(peer.got).toEqual([tagged])

    // 8 readable bytes: no room for virtio_net_hdr
    a.drv.queues[1]!.submit([{ addr: TX_BUF, len: 8 }])
    expect(() => a.drv.kick(1)).not.toThrow()
    expect(a.drv.status & VirtioStatus.DEVICE_NEEDS_RESET).toBe(VirtioStatus.DEVICE_NEEDS_RESET)
    expect(a.dev.stats().error).toMatch(/virtio_net_hdr/)
    expect(a.send(frame(BROADCAST, MAC_A))).toEqual([])
    expect(peer.got).toHaveLength(1)
    // receiveq still works until the driver resets the device
    peer.attachment.port.send(frame(MAC_A, MAC_B))
    expect(a.received()).toHaveLength(1)
    a.up()
    a.postRx(1)
    a.send(frame(BROADCAST, MAC_A, 46, 9))
    expect(peer.got).toHaveLength(2)
  })

  it("stops passing frames at a status reset and after the port is detached", () => {
    const sw = new VSwitch()
    const a = makeVm(sw, "VM Network", "a", MAC_A)
    const peer = recorder(sw, "VM Network", "peer")
    a.up()
    a.postRx(4)
    a.drv.w(R.STATUS, 0)
    peer.attachment.port.send(frame(MAC_A, MAC_B))
    expect(a.net.stats().rxDropped).toBe(1)
    a.up()
    a.postRx(4)
    a.attachment.detach()
    peer.attachment.port.send(frame(MAC_A, MAC_B))
    expect(a.received()).toEqual([])
    a.send(frame(MAC_B, MAC_A))
    expect(peer.got).toEqual([])
  })
})
