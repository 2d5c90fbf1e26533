/**
 * A small xenstore for `pv` domains: the key/value tree split drivers meet
 * through (Xen's xenstored; the wire format is xen/include/public/io/
 * xs_wire.h). The guest talks to it over the shared ring page of
 * start_info.store_mfn and its event channel:
 *
 *   ring page  req[1024] at 0, rsp[1024] at 1024, req_cons 2048,
 *              req_prod 2052, rsp_cons 2056, rsp_prod 2060
 *   message    xsd_sockmsg {u32 type, req_id, tx_id, len} + len bytes
 *
 * Served: XS_READ, XS_WRITE, XS_DIRECTORY, XS_MKDIR, XS_RM,
 * XS_GET_DOMAIN_PATH; anything else gets XS_ERROR "ENOSYS" (no
 * transactions, no watches: a front end polls the other end's `state`).
 * A relative path is under the guest's /local/domain/<domid>; the guest may
 * write only there; a path with other characters than xenstored allows, or
 * a "." or ".." component, gets EINVAL. The ring is the guest's memory: indices that claim more
 * than the ring holds, or a message longer than XENSTORE_PAYLOAD_MAX, reset
 * the ring instead of being followed.
 */
import type { GuestPhysical } from "../../guest-memory.ts"

export const XsType = {
  directory: 1,
  read: 2,
  get_domain_path: 10,
  write: 11,
  mkdir: 12,
  rm: 13,
  error: 16
} as const

const RING = 1024
const REQ = 0
const RSP = 1024
const REQ_CONS = 2048
const REQ_PROD = 2052
const RSP_CONS = 2056
const RSP_PROD = 2060
const HEADER = 16
const PAYLOAD_MAX = 4096

/** The domain id fibervisor's PV guests see themselves as (the first domU); back ends are domain 0. */
export const GUEST_DOMID = 1

export class XenStore {
  private readonly tree = new Map<string, string>()
  private readonly guest: GuestPhysical
  private readonly page: number
  /** Told after the guest wrote `path` (a back end follows its front end's `state`). */
  private readonly listeners: Array<(path: string, value: string) => void> = []
  readonly home = `/local/domain/${GUEST_DOMID}`

  constructor(guest: GuestPhysical, page: number) {
    this.guest = guest
    this.page = page
  }

  get(path: string): string | undefined {
    return this.tree.get(path)
  }

  /** The hypervisor's side writes anywhere (parents come into being as in xenstored). */
  set(path: string, value: string): void {
    const parts = path.split("/").filter((p) => p !== "")
    for (let i = 1; i < parts.length; i++) {
      const parent = `/${parts.slice(0, i).join("/")}`
      if (!this.tree.has(parent)) this.tree.set(parent, "")
    }
    this.tree.set(path, value)
  }

  onGuestWrite(listener: (path: string, value: string) => void): void {
    this.listeners.push(listener)
  }

  /** Forget everything the guest wrote (the VM was reset); the hypervisor's entries are set again by their owners. */
  clear(): void {
    this.tree.clear()
  }

  /** Serve every complete request in the ring; true if a response was written (the guest is notified). */
  service(): boolean {
    const g = this.guest
    const base = this.page
    let cons = g.readValue(base + REQ_CONS, 4)
    const prod = g.readValue(base + REQ_PROD, 4)
    let answered = false
    if ((prod - cons) >>> 0 > RING) {
      g.writeValue(base + REQ_CONS, 4, prod)
      return false
    }
    while ((prod - cons) >>> 0 >= HEADER) {
      const header = this.readRing(REQ, cons, HEADER)
      const dv = new DataView(header.buffer)
      const len = dv.getUint32(12, true)
      if (len > PAYLOAD_MAX) {
        cons = prod
        break
      }
      if ((prod - cons) >>> 0 < HEADER + len) break
      const payload = this.readRing(REQ, (cons + HEADER) >>> 0, len)
      cons = (cons + HEADER + len) >>> 0
      const [type, body] = this.handle(dv.getUint32(0, true), payload)
      this.respond(type, dv.getUint32(4, true), dv.getUint32(8, true), body)
      answered = true
    }
    g.writeValue(base + REQ_CONS, 4, cons)
    return answered
  }

  private handle(type: number, payload: Uint8Array): [number, Uint8Array] {
    const text = new TextDecoder().decode(payload)
    const nul = text.indexOf("\0")
    const raw = nul < 0 ? text : text.slice(0, nul)
    const path = this.absolute(raw)
    const ok = (value: string): [number, Uint8Array] => [type, new TextEncoder().encode(value)]
    const error = (name: string): [number, Uint8Array] => [XsType.error, new TextEncoder().encode(`${name}\0`)]
    const own = path === this.home || path.startsWith(`${this.home}/`)
    // xenstored's path rules: letters, digits and -/_@ (and dots inside names), no "." or ".." components
    const takesPath =
      type === XsType.read ||
      type === XsType.directory ||
      type === XsType.write ||
      type === XsType.mkdir ||
      type === XsType.rm
    if (takesPath && (!/^[A-Za-z0-9\-/_@.]{1,3072}$/.test(raw) || raw.split("/").some((c) => c === "." || c === "..")))
      return error("EINVAL")
    switch (type) {
      case XsType.read: {
        const value = this.tree.get(path)
        return value === undefined ? error("ENOENT") : ok(value)
      }
      case XsType.directory: {
        if (!this.tree.has(path)) return error("ENOENT")
        const prefix = path === "/" ? "/" : `${path}/`
        const children = [...this.tree.keys()]
          .filter((k) => k.startsWith(prefix) && !k.slice(prefix.length).includes("/"))
          .map((k) => `${k.slice(prefix.length)}\0`)
        return ok(children.sort().join(""))
      }
      case XsType.write:
      case XsType.mkdir: {
        if (!own) return error("EACCES")
        const value = type === XsType.write && nul >= 0 ? text.slice(nul + 1) : ""
        if (type === XsType.mkdir && this.tree.has(path)) return ok("OK\0")
        this.set(path, value)
        for (const listener of this.listeners) listener(path, value)
        return ok("OK\0")
      }
      case XsType.rm: {
        if (!own || path === this.home) return error("EACCES")
        for (const key of [...this.tree.keys()]) if (key === path || key.startsWith(`${path}/`)) this.tree.delete(key)
        return ok("OK\0")
      }
      case XsType.get_domain_path:
        return ok(`${this.home}\0`)
      default:
        return error("ENOSYS")
    }
  }

  private absolute(path: string): string {
    const full = path.startsWith("/") ? path : `${this.home}/${path}`
    const normal = full.replace(/\/+/g, "/").replace(/(.)\/$/, "$1")
    return normal
  }

  private respond(type: number, reqId: number, txId: number, body: Uint8Array): void {
    const g = this.guest
    const base = this.page
    const cons = g.readValue(base + RSP_CONS, 4)
    let prod = g.readValue(base + RSP_PROD, 4)
    // a guest that does not read its responses loses the ones that no longer fit
    if ((prod - cons) >>> 0 > RING || RING - ((prod - cons) >>> 0) < HEADER + body.length) return
    const message = new Uint8Array(HEADER + body.length)
    const dv = new DataView(message.buffer)
    dv.setUint32(0, type, true)
    dv.setUint32(4, reqId, true)
    dv.setUint32(8, txId, true)
    dv.setUint32(12, body.length, true)
    message.set(body, HEADER)
    for (const byte of message) {
      g.writeValue(base + RSP + (prod & (RING - 1)), 1, byte)
      prod = (prod + 1) >>> 0
    }
    g.writeValue(base + RSP_PROD, 4, prod)
  }

  private readRing(half: number, from: number, length: number): Uint8Array {
    const out = new Uint8Array(length)
    for (let i = 0; i < length; i++) out[i] = this.guest.readValue(this.page + half + ((from + i) & (RING - 1)), 1)
    return out
  }
}
