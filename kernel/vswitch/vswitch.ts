/**
 * The vSwitch: a layer-2 learning switch between VMs' virtual NICs, in the
 * role of ESX's standard vSwitch (DESIGN.md, kernel/ "vSwitch"). Frames are
 * Ethernet II as a NIC hands them over, without preamble or FCS (IEEE 802.3
 * clause 3: destination MAC, source MAC, EtherType/length, payload).
 *
 * - Ports are attached to a *port group* (ESX's port groups, here without a
 *   VLAN ID: the group itself is the broadcast domain). A frame never leaves
 *   its port group: learning, lookup and flooding are all per group.
 * - Learning (IEEE 802.1D 7.8): the source MAC of every accepted frame is
 *   learned on the port that sent it (a MAC seen on another port moves).
 *   Multicast source MACs are never learned. Each port may own at most
 *   `macsPerPort` entries; the least recently seen is forgotten first, so a
 *   VM that sprays source MACs only ever evicts its own entries.
 * - Forwarding: a unicast destination learned on another port of the group
 *   goes to that port only; learned on the sender's own port, it is filtered
 *   (nothing to do); unknown unicast, broadcast and multicast (I/G bit of the
 *   first octet) are flooded to every other port of the group, in attach
 *   order, never back to the sender.
 * - Validation: 14..1514 bytes, or up to 1518 with an 802.1Q tag (EtherType
 *   0x8100 at offset 12); other frames are dropped and counted on the
 *   sending port (txDropped).
 * - Counters per port, from the port owner's point of view (as esxtop shows
 *   a vNIC): tx = frames/bytes the port sent into the switch, rx = frames/
 *   bytes the switch delivered to it; txDropped = frames refused (bad size,
 *   detached, cascade limit), rxDropped = frames for a port with no
 *   receiver registered.
 *
 * Delivery is synchronous and deterministic: `send` returns after every
 * receiver has been called, each with its own copy of the frame. A frame
 * sent from inside a receiver is queued and delivered, in order, after the
 * current one (so delivery never recurses). One outermost send and the
 * frames sent from receivers while it is delivered (its cascade) take at
 * most MAX_CASCADE frames; more are dropped and counted, so even a
 * broadcast storm between two echoing receivers ends. No wall clock, no
 * host I/O.
 */

/** A switch port as the NIC behind it sees it (a virtio-net device, a test). */
export interface NetPort {
  /** Hand a frame to the switch (the switch copies it). */
  send(frame: Uint8Array): void
  /** Register the receiver of frames the switch delivers to this port (replaces the previous one). */
  onReceive(cb: (frame: Uint8Array) => void): void
  /**
   * Register the receiver of carrier changes (the port's uplink lost or
   * back). Optional: a vSwitch port's carrier never drops; a back-end that
   * can fail (a physical uplink, a fault injector) reports it here.
   */
  onLinkChange?(cb: (up: boolean) => void): void
}

export interface VSwitchOptions {
  readonly name?: string
  /** Learned MACs a port may own (default 64). */
  readonly macsPerPort?: number
}

export interface PortCounters {
  readonly txFrames: number
  readonly txBytes: number
  readonly txDropped: number
  readonly rxFrames: number
  readonly rxBytes: number
  readonly rxDropped: number
}

export interface VSwitchPortInfo {
  readonly id: number
  readonly name: string
  readonly portGroup: string
  /** MACs learned on this port, least recently seen first ("02:00:00:00:00:0a"). */
  readonly macs: ReadonlyArray<string>
  readonly counters: PortCounters
}

export interface VSwitchStats {
  /** Frames sent to exactly one learned port. */
  readonly unicast: number
  /** Frames flooded (unknown unicast, broadcast, multicast). */
  readonly flooded: number
  /** Frames whose destination was learned on the sender's own port. */
  readonly filtered: number
  /** Frames refused (bad size, detached sender, cascade limit). */
  readonly dropped: number
}

export interface VSwitchAttachment {
  readonly id: number
  readonly port: NetPort
  counters(): PortCounters
  /** Take the port off the switch: its MACs are forgotten, its sends dropped, nothing delivered. Idempotent. */
  detach(): void
}

export const MIN_FRAME = 14
export const MAX_FRAME = 1514
export const VLAN_TAG = 4
export const ETHERTYPE_VLAN = 0x8100
/** Frames one outermost send may cause, itself included (see the header). */
export const MAX_CASCADE = 4096

/** Whether a frame has a legal size for the switch (untagged 14..1514, 802.1Q-tagged up to 1518). */
export const validFrame = (frame: Uint8Array): boolean => {
  if (frame.length < MIN_FRAME) return false
  if (frame.length <= MAX_FRAME) return true
  return frame.length <= MAX_FRAME + VLAN_TAG && ((frame[12]! << 8) | frame[13]!) === ETHERTYPE_VLAN
}

export const formatMac = (bytes: Uint8Array, at = 0): string => {
  let s = ""
  for (let i = 0; i < 6; i++) s += `${i ? ":" : ""}${(bytes[at + i] ?? 0).toString(16).padStart(2, "0")}`
  return s
}

interface Port {
  readonly id: number
  readonly name: string
  readonly group: string
  attached: boolean
  receiver: ((frame: Uint8Array) => void) | undefined
  /** Learned MACs, least recently seen first (a Set keeps insertion order). */
  readonly macs: Set<string>
  txFrames: number
  txBytes: number
  txDropped: number
  rxFrames: number
  rxBytes: number
  rxDropped: number
}

const countersOf = (p: Port): PortCounters => ({
  txFrames: p.txFrames,
  txBytes: p.txBytes,
  txDropped: p.txDropped,
  rxFrames: p.rxFrames,
  rxBytes: p.rxBytes,
  rxDropped: p.rxDropped
})

export class VSwitch {
  readonly name: string
  readonly macsPerPort: number
  /** Attached ports, in attach order (the flooding order). */
  private readonly ports = new Map<number, Port>()
  /** `${group}\n${mac}` -> the port the MAC was learned on. */
  private readonly table = new Map<string, Port>()
  private readonly backlog: Array<{ from: Port; frame: Uint8Array }> = []
  private delivering = false
  /** Frames accepted in the current cascade. */
  private cascade = 0
  private nextId = 1
  private counts = { unicast: 0, flooded: 0, filtered: 0, dropped: 0 }

  constructor(options: VSwitchOptions = {}) {
    this.name = options.name ?? "vSwitch0"
    const limit = options.macsPerPort ?? 64
    if (!Number.isInteger(limit) || limit < 1) throw new RangeError("VSwitch: macsPerPort must be an integer >= 1")
    this.macsPerPort = limit
  }

  /** Attach a new port to `portGroup` (created on first use). */
  attach(portGroup: string, name: string): VSwitchAttachment {
    const port: Port = {
      id: this.nextId++,
      name,
      group: portGroup,
      attached: true,
      receiver: undefined,
      macs: new Set(),
      txFrames: 0,
      txBytes: 0,
      txDropped: 0,
      rxFrames: 0,
      rxBytes: 0,
      rxDropped: 0
    }
    this.ports.set(port.id, port)
    return {
      id: port.id,
      port: {
        send: (frame) => this.send(port, frame),
        onReceive: (cb) => {
          if (port.attached) port.receiver = cb
        }
      },
      counters: () => countersOf(port),
      detach: () => this.detach(port)
    }
  }

  /** Every attached port, in attach order. */
  portInfo(): ReadonlyArray<VSwitchPortInfo> {
    return [...this.ports.values()].map((p) => ({
      id: p.id,
      name: p.name,
      portGroup: p.group,
      macs: [...p.macs],
      counters: countersOf(p)
    }))
  }

  /** The name of the port `mac` was learned on in `portGroup`, if any. */
  lookup(portGroup: string, mac: string): string | undefined {
    return this.table.get(`${portGroup}\n${mac.toLowerCase()}`)?.name
  }

  stats(): VSwitchStats {
    return { ...this.counts }
  }

  private detach(port: Port): void {
    if (!port.attached) return
    port.attached = false
    port.receiver = undefined
    for (const mac of port.macs) this.table.delete(`${port.group}\n${mac}`)
    port.macs.clear()
    this.ports.delete(port.id)
  }

  private send(from: Port, frame: Uint8Array): void {
    if (
      !from.attached ||
      !(frame instanceof Uint8Array) ||
      !validFrame(frame) ||
      (this.delivering && this.cascade >= MAX_CASCADE)
    ) {
      from.txDropped++
      this.counts.dropped++
      return
    }
    from.txFrames++
    from.txBytes += frame.length
    this.backlog.push({ from, frame: frame.slice() })
    if (this.delivering) {
      this.cascade++
      return
    }
    this.delivering = true
    this.cascade = 1
    try {
      for (let next = this.backlog.shift(); next !== undefined; next = this.backlog.shift()) {
        this.forward(next.from, next.frame)
      }
    } finally {
      this.delivering = false
      this.backlog.length = 0
    }
  }

  private forward(from: Port, frame: Uint8Array): void {
    if (!from.attached) {
      this.counts.dropped++
      return
    }
    if ((frame[6]! & 1) === 0) this.learn(from, formatMac(frame, 6))
    if ((frame[0]! & 1) === 0) {
      const to = this.table.get(`${from.group}\n${formatMac(frame, 0)}`)
      if (to === from) {
        this.counts.filtered++
        return
      }
      if (to !== undefined) {
        this.counts.unicast++
        this.deliver(to, frame)
        return
      }
    }
    this.counts.flooded++
    for (const port of this.ports.values()) {
      if (port !== from && port.group === from.group) this.deliver(port, frame)
    }
  }

  private learn(port: Port, mac: string): void {
    const key = `${port.group}\n${mac}`
    const owner = this.table.get(key)
    if (owner !== undefined && owner !== port) owner.macs.delete(mac)
    port.macs.delete(mac)
    port.macs.add(mac)
    this.table.set(key, port)
    if (port.macs.size > this.macsPerPort) {
      const oldest = port.macs.values().next().value!
      port.macs.delete(oldest)
      this.table.delete(`${port.group}\n${oldest}`)
    }
  }

  private deliver(to: Port, frame: Uint8Array): void {
    if (!to.attached || to.receiver === undefined) {
      to.rxDropped++
      return
    }
    to.rxFrames++
    to.rxBytes += frame.length
    to.receiver(frame.slice())
  }
}
