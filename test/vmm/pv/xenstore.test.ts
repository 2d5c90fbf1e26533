/**
 * The xenstore of `pv` domains (vmm/engines/pv/xenstore.ts, io/xs_wire.h):
 * requests written into the store ring as a guest writes them, answered in
 * the response ring; writes only under the guest's home; xenstored's path
 * rules; a ring whose indices claim more than it holds is reset, not read.
 */
import { describe, expect, it } from "@effect/vitest"
import { MemoryManager } from "../../../kernel/memory/memory-manager.ts"
import { XenStore, XsType } from "../../../vmm/engines/pv/xenstore.ts"
import { GuestPhysical } from "../../../vmm/guest-memory.ts"

const MIB = 1024 * 1024
const PAGE = 0x10000

const setup = () => {
  const mm = new MemoryManager(new Uint8Array(4 * MIB), [{ base: 0, length: 4 * MIB, type: "usable" }])
  mm.createPool("xs", { reservation: 0, limit: 256, shares: 1000 })
  const guest = new GuestPhysical(mm, "xs", 2 * MIB)
  const store = new XenStore(guest, PAGE)
  let reqId = 0
  /** One request, as a front end writes it; the reply's type and payload. */
  const ask = (type: number, payload: string): [number, string] => {
    const body = new TextEncoder().encode(payload)
    const message = new Uint8Array(16 + body.length)
    const dv = new DataView(message.buffer)
    dv.setUint32(0, type, true)
    dv.setUint32(4, ++reqId, true)
    dv.setUint32(12, body.length, true)
    message.set(body, 16)
    let prod = guest.readValue(PAGE + 2052, 4)
    for (const byte of message) guest.writeValue(PAGE + ((prod++ & 1023) >>> 0), 1, byte)
    guest.writeValue(PAGE + 2052, 4, prod)
    store.service()
    let cons = guest.readValue(PAGE + 2056, 4)
    const head = Uint8Array.from({ length: 16 }, () => guest.readValue(PAGE + 1024 + (cons++ & 1023), 1))
    const hv = new DataView(head.buffer)
    const reply = Uint8Array.from({ length: hv.getUint32(12, true) }, () =>
      guest.readValue(PAGE + 1024 + (cons++ & 1023), 1)
    )
    guest.writeValue(PAGE + 2056, 4, cons)
    expect(hv.getUint32(4, true)).toBe(reqId)
    return [hv.getUint32(0, true), new TextDecoder().decode(reply)]
  }
  return { guest, store, ask }
}

describe("pv: xenstore", () => {
  it("reads, writes under the guest's home, lists, and refuses the rest", () => {
    const { store, ask } = setup()
    store.set("/local/domain/0/backend/vbd/1/768/state", "2")
    expect(ask(XsType.write, "device/vbd/768/state\u00003")).toEqual([XsType.write, "OK\u0000"])
    expect(store.get("/local/domain/1/device/vbd/768/state")).toBe("3")
    expect(ask(XsType.read, "/local/domain/0/backend/vbd/1/768/state\u0000")).toEqual([XsType.read, "2"])
    expect(ask(XsType.directory, "device/vbd\u0000")).toEqual([XsType.directory, "768\u0000"])
    expect(ask(XsType.read, "nowhere\u0000")).toEqual([XsType.error, "ENOENT\u0000"])
    // another domain's tree, and the way out of one's own
    expect(ask(XsType.write, "/local/domain/0/backend/vbd/1/768/state\u00004")).toEqual([XsType.error, "EACCES\u0000"])
    expect(ask(XsType.write, "../0/backend/vbd/1/768/state\u00004")).toEqual([XsType.error, "EINVAL\u0000"])
    expect(ask(XsType.write, "device/a b\u00001")).toEqual([XsType.error, "EINVAL\u0000"])
    expect(store.get("/local/domain/0/backend/vbd/1/768/state")).toBe("2")
    expect(ask(7, "\u0000")).toEqual([XsType.error, "ENOSYS\u0000"])
  })

  it("a request ring whose indices claim more than it holds is reset, not read", () => {
    const { guest, store } = setup()
    guest.writeValue(PAGE + 2052, 4, 0x7fffffff)
    expect(store.service()).toBe(false)
    expect(guest.readValue(PAGE + 2048, 4)).toBe(0x7fffffff)
  })
})
