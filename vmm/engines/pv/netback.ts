/**
 * The network back end of a `pv` domain: Xen's split network driver
 * (xen/include/public/io/netif.h, io/ring.h, the xenbus states of
 * io/xenbus.h), with the hypervisor playing domain 0's netback for one vif,
 * plugged into a vSwitch port (kernel/vswitch/vswitch.ts NetPort). The
 * guest's netfront finds it through xenstore (xenstore.ts):
 *
 *   front end /local/domain/1/device/vif/<n>:  backend, backend-id, state 1,
 *             mac; it writes tx-ring-ref, rx-ring-ref, event-channel,
 *             request-rx-copy "1", then state 3 (Initialised)
 *   back end  /local/domain/0/backend/vif/1/<n>: frontend, frontend-id, mac,
 *             feature-rx-copy "1", state 2 (InitWait) -> 4 (Connected), or
 *             6 (Closed) with an `error` entry
 *
 * Both rings are one granted frame with io/ring.h's 64-byte header (req_prod
 * 0, req_event 4, rsp_prod 8, rsp_event 12, padding) and entries from byte
 * 64; __RING_SIZE is the largest power of two that fits, 256 for both:
 *
 *   TX (guest -> switch), 12-byte slots: netif_tx_request {u32 gref, u16
 *      offset, u16 flags, u16 id, u16 size}; netif_tx_response {u16 id, i16
 *      status} in the same slot (the union is 12 bytes)
 *   RX (switch -> guest), 8-byte slots: netif_rx_request {u16 id, u16 pad,
 *      u32 gref}; netif_rx_response {u16 id, u16 offset, u16 flags, i16
 *      status = the length, or a negative NETIF_RSP_*}
 *
 * One event channel (`event-channel`) serves both rings. When the front end
 * sends it, every TX request is consumed: a frame is one granted page at
 * `offset`, 14..1514 bytes with offset + size <= 4096, copied to the switch
 * and answered NETIF_RSP_OKAY; a bad grant, size or offset, or a request
 * with NETTXF_more_data or NETTXF_extra_info (multi-slot frames and extra
 * info are not supported; every slot of such a chain is refused), is
 * answered NETIF_RSP_ERROR and nothing reaches the switch. A frame from the
 * switch is copied (the request-rx-copy path, GNTTABOP_copy's role) to
 * offset 0 of the next posted RX buffer, whose grant must be writable, with
 * status = its length; no buffer posted, or the vif not connected: the frame
 * is dropped and counted; a bad buffer grant: NETIF_RSP_ERROR in that
 * response and the frame dropped. Responses are announced on the event
 * channel. The rings are the guest's memory: indices that claim more than
 * a ring holds disconnect the vif (state 6). Every guest value is treated
 * as an untrusted number; guest memory is reached only through granted
 * frames of the guest's RAM (GrantTable.frameOf).
 */

import { MAX_FRAME, MIN_FRAME, type NetPort } from "../../../kernel/vswitch/vswitch.ts"
import { GuestMemoryError } from "../../guest-memory.ts"
import { type BlkBackHost, XenbusState } from "./blkback.ts"
import { GUEST_DOMID } from "./xenstore.ts"

/** netif.h NETIF_RSP_*. */
export const NETIF_RSP_DROPPED = -2
export const NETIF_RSP_ERROR = -1
export const NETIF_RSP_OKAY = 0
/** netif.h NETTXF_* (netif_tx_request.flags). */
export const NetTxFlag = { csum_blank: 1, data_validated: 2, more_data: 4, extra_info: 8 } as const
const RING_HEADER = 64
const PAGE = 4096
export const NET_TX_SLOT = 12
export const NET_RX_SLOT = 8
/** io/ring.h __RING_SIZE: the largest power of two n with 64 + n * slot <= 4096. */
const ringSize = (slot: number): number => 2 ** Math.floor(Math.log2((PAGE - RING_HEADER) / slot))
export const NET_TX_RING_SIZE = ringSize(NET_TX_SLOT)
export const NET_RX_RING_SIZE = ringSize(NET_RX_SLOT)

/** The back end's own side of a ring (io/ring.h BACK_RING: req_cons and rsp_prod_pvt are private). */
interface BackRing {
  readonly base: number
  readonly size: number
  readonly slot: number
  reqCons: number
  rspProd: number
}

export type NetBackHost = BlkBackHost

export class NetBack {
  readonly handle: number
  readonly frontend: string
  readonly backend: string
  readonly mac: string
  private readonly host: NetBackHost
  private readonly port: NetPort
  private tx: BackRing | undefined
  private rx: BackRing | undefined
  private evtchn = 0
  /** Inside a refused multi-slot TX chain (the previous slot had NETTXF_more_data). */
  private discarding = false
  readonly stats = { txFrames: 0, txErrors: 0, rxFrames: 0, rxDropped: 0, rxErrors: 0 }

  constructor(host: NetBackHost, port: NetPort, mac: ArrayLike<number>, handle = 0) {
    if (mac.length !== 6 || Array.from(mac).some((b) => !Number.isInteger(b) || b < 0 || b > 255))
      throw new RangeError("NetBack: a MAC address is 6 bytes")
    this.host = host
    this.port = port
    this.handle = handle
    this.mac = Array.from(mac, (b) => b.toString(16).padStart(2, "0")).join(":")
    this.frontend = `${host.store.home}/device/vif/${handle}`
    this.backend = `/local/domain/0/backend/vif/${GUEST_DOMID}/${handle}`
    host.store.onGuestWrite((path, value) => {
      if (path === `${this.frontend}/state` && Number(value) === XenbusState.initialised) this.connect()
    })
    port.onReceive((frame) => this.receive(frame))
    this.publish()
  }

  get connected(): boolean {
    return this.tx !== undefined
  }

  /** The xenstore entries of both ends before the front end starts. */
  publish(): void {
    const s = this.host.store
    s.set(`${this.frontend}/backend`, this.backend)
    s.set(`${this.frontend}/backend-id`, "0")
    s.set(`${this.frontend}/state`, String(XenbusState.initialising))
    s.set(`${this.frontend}/mac`, this.mac)
    s.set(`${this.frontend}/handle`, String(this.handle))
    s.set(`${this.backend}/frontend`, this.frontend)
    s.set(`${this.backend}/frontend-id`, String(GUEST_DOMID))
    s.set(`${this.backend}/handle`, String(this.handle))
    s.set(`${this.backend}/mac`, this.mac)
    s.set(`${this.backend}/feature-rx-copy`, "1")
    s.set(`${this.backend}/state`, String(XenbusState.initWait))
    this.disconnect()
  }

  private disconnect(): void {
    this.tx = undefined
    this.rx = undefined
    this.evtchn = 0
    this.discarding = false
  }

  private fail(reason: string): void {
    const s = this.host.store
    s.set(`${this.backend}/error`, reason)
    s.set(`${this.backend}/state`, String(XenbusState.closed))
    this.disconnect()
  }

  /** The front end is Initialised: map both rings, bind the event channel, then Connected. */
  private connect(): void {
    if (this.connected) return
    const s = this.host.store
    const entry = (name: string) => s.get(`${this.frontend}/${name}`)
    const number = (name: string) => {
      const text = entry(name)
      return text !== undefined && /^[0-9]{1,10}$/.test(text) ? Number(text) : Number.NaN
    }
    if (entry("request-rx-copy") !== "1") {
      this.fail(
        `request-rx-copy is ${JSON.stringify(entry("request-rx-copy") ?? null)}: only the copying receive path (1) is supported`
      )
      return
    }
    const tx = this.host.grants.frameOf(number("tx-ring-ref"), true)
    if (typeof tx === "string") {
      this.fail(`tx-ring-ref: ${tx}`)
      return
    }
    const rx = this.host.grants.frameOf(number("rx-ring-ref"), true)
    if (typeof rx === "string") {
      this.fail(`rx-ring-ref: ${rx}`)
      return
    }
    if (tx === rx) {
      this.fail("tx-ring-ref and rx-ring-ref grant the same frame")
      return
    }
    const port = number("event-channel")
    if (!Number.isInteger(port) || !this.host.bindPort(port, () => this.transmit())) {
      this.fail(`event-channel ${entry("event-channel")} is not an unbound port of the guest`)
      return
    }
    // the front end initialised both rings (SHARED_RING_INIT, FRONT_RING_INIT) before granting them
    this.tx = { base: tx, size: NET_TX_RING_SIZE, slot: NET_TX_SLOT, reqCons: 0, rspProd: 0 }
    this.rx = { base: rx, size: NET_RX_RING_SIZE, slot: NET_RX_SLOT, reqCons: 0, rspProd: 0 }
    this.evtchn = port
    this.discarding = false
    s.set(`${this.backend}/state`, String(XenbusState.connected))
  }

  /** Requests the front end produced and the back end has not consumed; undefined: the indices are corrupt. */
  private pending(ring: BackRing): number | undefined {
    const prod = this.host.guest.readValue(ring.base, 4)
    const count = (prod - ring.reqCons) >>> 0
    return count > ring.size ? undefined : count
  }

  private slot(ring: BackRing, index: number): number {
    return ring.base + RING_HEADER + (index & (ring.size - 1)) * ring.slot
  }

  /** Publish rsp_prod and set req_event so the front end notifies at its next request (RING_FINAL_CHECK_FOR_REQUESTS). */
  private push(ring: BackRing): void {
    const g = this.host.guest
    g.writeValue(ring.base + 8, 4, ring.rspProd)
    g.writeValue(ring.base + 4, 4, (ring.reqCons + 1) >>> 0)
  }

  /** The front end sent the event channel: put every TX request's frame on the switch, answer each. */
  transmit(): void {
    const ring = this.tx
    if (ring === undefined) return
    const count = this.pending(ring)
    if (count === undefined) {
      this.fail("the TX ring's indices are corrupt")
      return
    }
    const g = this.host.guest
    for (let i = 0; i < count; i++) {
      const at = this.slot(ring, ring.reqCons)
      const request = g.read(at, NET_TX_SLOT)!
      const dv = new DataView(request.buffer)
      const gref = dv.getUint32(0, true)
      const offset = dv.getUint16(4, true)
      const flags = dv.getUint16(6, true)
      const id = dv.getUint16(8, true)
      const size = dv.getUint16(10, true)
      ring.reqCons = (ring.reqCons + 1) >>> 0
      let status = NETIF_RSP_ERROR
      const chained = (flags & (NetTxFlag.more_data | NetTxFlag.extra_info)) !== 0
      if (!this.discarding && !chained && size >= MIN_FRAME && size <= MAX_FRAME && offset + size <= PAGE) {
        const frame = this.host.grants.frameOf(gref, false)
        const bytes = typeof frame === "number" ? g.read(frame + offset, size) : undefined
        if (bytes !== undefined) {
          status = NETIF_RSP_OKAY
          this.stats.txFrames++
          this.port.send(bytes)
        }
      }
      this.discarding = (flags & NetTxFlag.more_data) !== 0
      if (status !== NETIF_RSP_OKAY) this.stats.txErrors++
      // the response takes the next response slot (io/ring.h; it is the request's own slot)
      const response = new Uint8Array(4)
      const out = new DataView(response.buffer)
      out.setUint16(0, id, true)
      out.setInt16(2, status, true)
      g.write(this.slot(ring, ring.rspProd), response)
      ring.rspProd = (ring.rspProd + 1) >>> 0
      // a frame sent may have come back to this vif and failed it (the switch never does; a NetPort might)
      if (this.tx !== ring) return
    }
    this.push(ring)
    if (count > 0) this.host.notify(this.evtchn)
  }

  /**
   * A frame from the switch: into the next posted RX buffer, or dropped. This runs on the sender's time
   * (another VM's transmit): the receiving guest's memory failing to back a page (its limit, or the VM
   * already released) gives the buffer an error response or drops the frame, never throws into the sender.
   */
  receive(frame: Uint8Array): void {
    try {
      this.deliver(frame)
    } catch (e) {
      if (!(e instanceof GuestMemoryError)) throw e
      this.stats.rxDropped++
    }
  }

  private deliver(frame: Uint8Array): void {
    const ring = this.rx
    if (ring === undefined) {
      this.stats.rxDropped++
      return
    }
    const count = this.pending(ring)
    if (count === undefined) {
      this.stats.rxDropped++
      this.fail("the RX ring's indices are corrupt")
      return
    }
    if (count === 0 || frame.length > PAGE) {
      this.stats.rxDropped++
      return
    }
    const g = this.host.guest
    const request = g.read(this.slot(ring, ring.reqCons), NET_RX_SLOT)!
    const dv = new DataView(request.buffer)
    const id = dv.getUint16(0, true)
    const gref = dv.getUint32(4, true)
    ring.reqCons = (ring.reqCons + 1) >>> 0
    let status = NETIF_RSP_ERROR
    const buffer = this.host.grants.frameOf(gref, true)
    if (typeof buffer === "number" && this.copyIn(buffer, frame)) {
      status = frame.length
      this.stats.rxFrames++
    } else {
      this.stats.rxErrors++
      this.stats.rxDropped++
    }
    const response = new Uint8Array(NET_RX_SLOT)
    const out = new DataView(response.buffer)
    out.setUint16(0, id, true)
    out.setUint16(2, 0, true) // offset
    out.setUint16(4, 0, true) // flags
    out.setInt16(6, status, true)
    g.write(this.slot(ring, ring.rspProd), response)
    ring.rspProd = (ring.rspProd + 1) >>> 0
    this.push(ring)
    this.host.notify(this.evtchn)
  }

  /** Copy a received frame into a granted page; false if the guest's memory cannot back the page. */
  private copyIn(address: number, frame: Uint8Array): boolean {
    try {
      return this.host.guest.write(address, frame)
    } catch (e) {
      if (e instanceof GuestMemoryError) return false
      throw e
    }
  }
}
