/**
 * The block back end of a `pv` domain: Xen's split block driver
 * (xen/include/public/io/blkif.h, io/ring.h), with the hypervisor playing
 * domain 0's blkback over one of the VM's disks (a BlockStore, as virtio-blk
 * uses). The guest's blkfront finds it through xenstore (xenstore.ts):
 *
 *   front end /local/domain/1/device/vbd/768:  backend, backend-id, state;
 *             it writes ring-ref, event-channel, then state 3 (Initialised)
 *   back end  /local/domain/0/backend/vbd/1/768: sectors, sector-size, info,
 *             feature-flush-cache, state 2 (InitWait) -> 4 (Connected)
 *
 * The shared ring (one granted frame): req_prod 0, req_event 4, rsp_prod 8,
 * rsp_event 12, 64-byte header, then 32 entries of 108 bytes (the x86-32
 * blkif_request: u8 operation, u8 nr_segments, u16 handle, u64 id at 4, u64
 * sector_number at 12, 11 segments {u32 gref, u8 first_sect, u8 last_sect}
 * at 20; the blkif_response: u64 id, u8 operation at 8, i16 status at 10).
 * Each segment is a granted frame and a range of its 512-byte sectors.
 * Requests are served when the front end sends the event channel, and the
 * responses announced on it. A request that names a bad grant or segment
 * gets BLKIF_RSP_ERROR; a ring whose indices claim more than it holds is
 * disconnected.
 */
import type { GuestPhysical } from "../../guest-memory.ts"
import type { BlockStore } from "../../virtio/blk.ts"
import type { GrantTable } from "./grant-table.ts"
import { GUEST_DOMID, type XenStore } from "./xenstore.ts"

export const BlkifOp = { read: 0, write: 1, write_barrier: 2, flush_diskcache: 3 } as const
export const BLKIF_RSP_OKAY = 0
export const BLKIF_RSP_ERROR = -1
export const BLKIF_RSP_EOPNOTSUPP = -2
export const BLKIF_MAX_SEGMENTS = 11
const RING_HEADER = 64
const ENTRY = 108
export const BLKIF_RING_SIZE = 32
const SECTOR = 512
/** xenbus.h XenbusState. */
export const XenbusState = {
  initialising: 1,
  initWait: 2,
  initialised: 3,
  connected: 4,
  closing: 5,
  closed: 6
} as const

export interface BlkBackHost {
  readonly guest: GuestPhysical
  readonly grants: GrantTable
  readonly store: XenStore
  /** Route the front end's sends on `port` here (false: not a port the guest allocated for a back end). */
  readonly bindPort: (port: number, onSend: () => void) => boolean
  /** Raise `port` in the guest. */
  readonly notify: (port: number) => void
}

export class BlkBack {
  readonly vdev: number
  readonly frontend: string
  readonly backend: string
  private readonly host: BlkBackHost
  private readonly disk: BlockStore
  private ring = -1
  private port = 0
  private reqCons = 0
  readonly stats = { requests: 0, errors: 0 }

  constructor(host: BlkBackHost, disk: BlockStore, vdev = 768) {
    this.host = host
    this.disk = disk
    this.vdev = vdev
    this.frontend = `${host.store.home}/device/vbd/${vdev}`
    this.backend = `/local/domain/0/backend/vbd/${GUEST_DOMID}/${vdev}`
    host.store.onGuestWrite((path, value) => {
      if (path === `${this.frontend}/state` && Number(value) === XenbusState.initialised) this.connect()
    })
    this.publish()
  }

  /** The xenstore entries of both ends before the front end starts. */
  publish(): void {
    const s = this.host.store
    s.set(`${this.frontend}/backend`, this.backend)
    s.set(`${this.frontend}/backend-id`, "0")
    s.set(`${this.frontend}/state`, String(XenbusState.initialising))
    s.set(`${this.backend}/frontend`, this.frontend)
    s.set(`${this.backend}/frontend-id`, String(GUEST_DOMID))
    s.set(`${this.backend}/sectors`, String(this.disk.sectors))
    s.set(`${this.backend}/sector-size`, String(SECTOR))
    s.set(`${this.backend}/info`, "0")
    s.set(`${this.backend}/feature-flush-cache`, "1")
    s.set(`${this.backend}/state`, String(XenbusState.initWait))
    this.ring = -1
    this.port = 0
    this.reqCons = 0
  }

  private fail(reason: string): void {
    const s = this.host.store
    s.set(`${this.backend}/error`, reason)
    s.set(`${this.backend}/state`, String(XenbusState.closed))
    this.ring = -1
  }

  /** The front end is Initialised: map its ring and bind its event channel, then Connected. */
  private connect(): void {
    const s = this.host.store
    const ref = Number(s.get(`${this.frontend}/ring-ref`))
    const port = Number(s.get(`${this.frontend}/event-channel`))
    const ring = this.host.grants.frameOf(ref, true)
    if (typeof ring === "string") {
      this.fail(`ring-ref: ${ring}`)
      return
    }
    if (!Number.isInteger(port) || !this.host.bindPort(port, () => this.service())) {
      this.fail(`event-channel ${s.get(`${this.frontend}/event-channel`)} is not an unbound port of the guest`)
      return
    }
    this.ring = ring
    this.port = port
    this.reqCons = 0 // the front end initialised the ring (SHARED_RING_INIT) before granting it
    s.set(`${this.backend}/state`, String(XenbusState.connected))
  }

  /** Serve every request the front end produced, then announce the responses. */
  service(): void {
    if (this.ring < 0) return
    const g = this.host.guest
    const prod = g.readValue(this.ring, 4)
    if ((prod - this.reqCons) >>> 0 > BLKIF_RING_SIZE) {
      this.fail("the request ring's indices are corrupt")
      return
    }
    let rspProd = g.readValue(this.ring + 8, 4)
    let served = 0
    while (this.reqCons !== prod) {
      const at = this.ring + RING_HEADER + (this.reqCons & (BLKIF_RING_SIZE - 1)) * ENTRY
      const request = g.read(at, ENTRY)!
      const status = this.serve(request)
      if (status !== BLKIF_RSP_OKAY) this.stats.errors++
      this.stats.requests++
      // the response takes the slot of the request it answers (io/ring.h)
      const out = this.ring + RING_HEADER + (rspProd & (BLKIF_RING_SIZE - 1)) * ENTRY
      const response = new Uint8Array(12)
      response.set(request.subarray(4, 12), 0)
      response[8] = request[0]!
      new DataView(response.buffer).setInt16(10, status, true)
      g.write(out, response)
      rspProd = (rspProd + 1) >>> 0
      this.reqCons = (this.reqCons + 1) >>> 0
      served++
    }
    g.writeValue(this.ring + 4, 4, (this.reqCons + 1) >>> 0) // req_event: notify us at the next request
    if (served === 0) return
    g.writeValue(this.ring + 8, 4, rspProd)
    this.host.notify(this.port)
  }

  private serve(request: Uint8Array): number {
    const dv = new DataView(request.buffer, request.byteOffset, request.byteLength)
    const operation = request[0]!
    const segments = request[1]!
    if (operation === BlkifOp.flush_diskcache) return this.disk.flush() ? BLKIF_RSP_OKAY : BLKIF_RSP_ERROR
    if (operation !== BlkifOp.read && operation !== BlkifOp.write) return BLKIF_RSP_EOPNOTSUPP
    if (segments < 1 || segments > BLKIF_MAX_SEGMENTS) return BLKIF_RSP_ERROR
    let sector = dv.getUint32(12, true) + dv.getUint32(16, true) * 2 ** 32
    const g = this.host.guest
    for (let i = 0; i < segments; i++) {
      const seg = 20 + i * 8
      const first = request[seg + 4]!
      const last = request[seg + 5]!
      if (first > last || last >= 4096 / SECTOR) return BLKIF_RSP_ERROR
      const frame = this.host.grants.frameOf(dv.getUint32(seg, true), operation === BlkifOp.read)
      if (typeof frame === "string") return BLKIF_RSP_ERROR
      const count = last - first + 1
      if (sector + count > this.disk.sectors) return BLKIF_RSP_ERROR
      const address = frame + first * SECTOR
      if (operation === BlkifOp.read) {
        const data = this.disk.read(sector, count)
        if (data === undefined) return BLKIF_RSP_ERROR
        g.write(address, data)
      } else {
        const data = g.read(address, count * SECTOR)
        if (data === undefined || !this.disk.write(sector, data)) return BLKIF_RSP_ERROR
      }
      sector += count
    }
    return BLKIF_RSP_OKAY
  }
}
