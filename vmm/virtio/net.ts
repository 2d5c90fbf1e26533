/**
 * virtio-net, the paravirtual NIC (OASIS "Virtual I/O Device (VIRTIO)
 * Version 1.1", section 5.1 "Network Device": 5.1.3 feature bits, 5.1.4
 * device configuration layout, 5.1.6 device operation: 5.1.6.2 packet
 * transmission, 5.1.6.3 setting up receive buffers, 5.1.6.4 processing of
 * incoming packets), behind the virtio-mmio transport (mmio.ts) and plugged
 * into a vSwitch port (kernel/vswitch/vswitch.ts NetPort).
 *
 * Queues: 0 receiveq1, 1 transmitq1 (no MQ, no control queue).
 * Every packet, both ways, is preceded by the 12-byte virtio_net_hdr (with
 * VERSION_1 the num_buffers field is always there):
 *
 *   u8 flags; u8 gso_type; le16 hdr_len; le16 gso_size; le16 csum_start;
 *   le16 csum_offset; le16 num_buffers
 *
 * No checksum or segmentation offload is offered, so transmitted headers
 * are ignored and received ones are all zero except num_buffers = 1
 * (5.1.6.4: "MUST set num_buffers to 1" without MRG_RXBUF).
 *
 * Transmit (QueueNotify on 1): each chain's device-readable bytes are the
 * header then the frame; the frame goes to the port and the chain returns
 * with used.len 0. A chain shorter than the header is malformed (the queue
 * stops, DEVICE_NEEDS_RESET); a frame outside 14..1518 bytes is dropped and
 * counted (txDropped), its chain returned.
 *
 * Receive (a frame from the port): taken only while the device is live, the
 * link up and receiveq1 usable; the next receive chain gets header + frame
 * in its device-writable buffers (used.len = 12 + frame length). No chain
 * posted, a chain too small (the driver should post >= 1526 bytes, 5.1.6.3.1;
 * the chain is returned with used.len 0), or a frame outside 14..1518 bytes:
 * the frame is dropped and counted (rxDropped), as a full ESX vNIC ring
 * drops. Frames are not buffered for later.
 *
 * Features offered: MAC (config mac = the VMM's address for this vNIC),
 * STATUS (config status bit 0 LINK_UP, changed by setLink with a
 * configuration-change interrupt; the port's carrier changes call it); plus the transport's VERSION_1 and
 * INDIRECT_DESC. The config space is read-only to the driver.
 *
 * Everything is synchronous: a transmit reaches the receiving VM's RAM
 * before the QueueNotify write returns. A frame that arrives while this
 * device is transmitting (another port answering at once) is processed
 * then and there; the transmit loop is not re-entered.
 */
import type { AccessSize } from "../../hw/machine/device.ts"
import type { NetPort } from "../../kernel/vswitch/vswitch.ts"
import { readConfigBytes, type VirtioDevice, type VirtioTransport } from "./mmio.ts"

export type { NetPort }

export const VIRTIO_NET_DEVICE_ID = 1
export const VIRTIO_NET_HDR_SIZE = 12
export const VIRTIO_NET_RX_QUEUE = 0
export const VIRTIO_NET_TX_QUEUE = 1
/** Smallest and largest frame, without FCS (1514 + an 802.1Q tag). */
export const NET_MIN_FRAME = 14
export const NET_MAX_FRAME = 1518

export const VirtioNetFeature = {
  MAC: 1n << 5n,
  STATUS: 1n << 16n
} as const

export const VIRTIO_NET_S_LINK_UP = 1

/** Config-space offsets (5.1.4). */
export const VirtioNetConfig = {
  MAC: 0,
  STATUS: 6,
  MAX_VIRTQUEUE_PAIRS: 8,
  MTU: 10
} as const

export interface VirtioNetOptions {
  /** The vSwitch port (or any NetPort) the NIC is plugged into. */
  readonly port: NetPort
  /** The vNIC's MAC address, 6 bytes. */
  readonly mac: ArrayLike<number>
  /** Size of both queues, a power of two (default 256). */
  readonly queueSize?: number
  /** Link state at power-on (default up). */
  readonly linkUp?: boolean
}

export interface VirtioNetStats {
  readonly txFrames: number
  readonly txBytes: number
  readonly txDropped: number
  readonly rxFrames: number
  readonly rxBytes: number
  readonly rxDropped: number
}

export class VirtioNet implements VirtioDevice {
  readonly deviceId = VIRTIO_NET_DEVICE_ID
  readonly features = VirtioNetFeature.MAC | VirtioNetFeature.STATUS
  readonly queueMaxSizes: ReadonlyArray<number>
  readonly mac: Uint8Array
  private readonly port: NetPort
  private linkUp: boolean
  private transport: VirtioTransport | undefined
  private transmitting = false
  private counters = { txFrames: 0, txBytes: 0, txDropped: 0, rxFrames: 0, rxBytes: 0, rxDropped: 0 }

  constructor(options: VirtioNetOptions) {
    if (options.mac.length !== 6) throw new RangeError("VirtioNet: mac must be 6 bytes")
    this.mac = Uint8Array.from(options.mac, (b) => b & 0xff)
    this.port = options.port
    this.linkUp = options.linkUp ?? true
    const size = options.queueSize ?? 256
    this.queueMaxSizes = [size, size]
    this.port.onReceive((frame) => this.receive(frame))
    // the back-end's carrier is the guest's link status (5.1.4: VIRTIO_NET_S_LINK_UP)
    this.port.onLinkChange?.((up) => this.setLink(up))
  }

  attach(transport: VirtioTransport): void {
    if (this.transport !== undefined) throw new Error("VirtioNet: already attached to a transport")
    this.transport = transport
  }

  stats(): VirtioNetStats {
    return { ...this.counters }
  }

  get link(): boolean {
    return this.linkUp
  }

  /** Plug or unplug the virtual cable: config status changes, configuration-change interrupt. */
  setLink(up: boolean): void {
    if (up === this.linkUp) return
    this.linkUp = up
    this.transport?.configChanged()
  }

  readConfig(offset: number, size: AccessSize): number {
    const config = new Uint8Array(12)
    config.set(this.mac, VirtioNetConfig.MAC)
    config[VirtioNetConfig.STATUS] = this.linkUp ? VIRTIO_NET_S_LINK_UP : 0
    config[VirtioNetConfig.MAX_VIRTQUEUE_PAIRS] = 1
    config[VirtioNetConfig.MTU] = 1500 & 0xff
    config[VirtioNetConfig.MTU + 1] = 1500 >> 8
    return readConfigBytes(config, offset, size)
  }

  /** The config space is read-only in virtio 1.x (5.1.4.2): writes are ignored. */
  writeConfig(): void {}

  reset(): void {}

  queueNotify(index: number): void {
    // receive buffers are used when frames arrive; nothing to do on an RX kick
    if (index === VIRTIO_NET_TX_QUEUE && !this.transmitting) this.transmit()
  }

  private transmit(): void {
    const vq = this.transport?.queue(VIRTIO_NET_TX_QUEUE)
    if (vq === undefined) return
    this.transmitting = true
    let returned = 0
    try {
      for (let chain = vq.pop(); chain !== undefined; chain = vq.pop()) {
        if (chain.readableLength < VIRTIO_NET_HDR_SIZE) {
          vq.fail(`transmit chain at head ${chain.head}: shorter than the ${VIRTIO_NET_HDR_SIZE}-byte virtio_net_hdr`)
          break
        }
        const length = chain.readableLength - VIRTIO_NET_HDR_SIZE
        let frame: Uint8Array | undefined
        if (length < NET_MIN_FRAME || length > NET_MAX_FRAME || !this.linkUp) {
          this.counters.txDropped++
        } else {
          frame = vq.readFrom(chain, VIRTIO_NET_HDR_SIZE, length)
          if (frame === undefined) break
        }
        if (!vq.push(chain, 0)) break
        returned++
        if (frame !== undefined) {
          this.counters.txFrames++
          this.counters.txBytes += frame.length
          this.port.send(frame)
        }
      }
    } finally {
      this.transmitting = false
    }
    if (returned > 0) this.transport?.signalUsed(VIRTIO_NET_TX_QUEUE)
  }

  /** A frame from the port: into the next receive buffer, or dropped. */
  private receive(frame: Uint8Array): void {
    const vq = this.linkUp ? this.transport?.queue(VIRTIO_NET_RX_QUEUE) : undefined
    if (vq === undefined || frame.length < NET_MIN_FRAME || frame.length > NET_MAX_FRAME) {
      this.counters.rxDropped++
      return
    }
    const chain = vq.pop()
    if (chain === undefined) {
      this.counters.rxDropped++
      return
    }
    const packet = new Uint8Array(VIRTIO_NET_HDR_SIZE + frame.length)
    packet[10] = 1 // num_buffers = 1
    packet.set(frame, VIRTIO_NET_HDR_SIZE)
    if (chain.writableLength < packet.length) {
      this.counters.rxDropped++
      if (vq.push(chain, 0)) this.transport?.signalUsed(VIRTIO_NET_RX_QUEUE)
      return
    }
    if (!vq.writeTo(chain, 0, packet) || !vq.push(chain, packet.length)) return
    this.counters.rxFrames++
    this.counters.rxBytes += frame.length
    this.transport?.signalUsed(VIRTIO_NET_RX_QUEUE)
  }
}
