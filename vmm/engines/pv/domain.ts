/**
 * A `pv` domain: what the vCPUs of one paravirtualized VM share -- the
 * hypervisor's region and the shadow page tables its auto-translated page
 * tables run on, its grant table (grant-table.ts), xenstore (xenstore.ts),
 * block back ends (blkback.ts) and network back ends (netback.ts), its
 * event channels (xen/include/public/event_channel.h,
 * the 2-level ABI: `evtchn_pending` / `evtchn_mask` in shared_info, the
 * per-vCPU `evtchn_pending_sel` and `evtchn_upcall_pending`), its console
 * ring's back end (io/console.h) and the checks page-table updates get.
 *
 * shared_info and the console page live in the guest's own RAM (the
 * builder placed them, vmm/loader/xen-pv.ts), so the guest can scribble on
 * them: everything read from them is treated as untrusted numbers, and a
 * broken ring is drained and dropped, never followed.
 */
import type { NetPort } from "../../../kernel/vswitch/vswitch.ts"
import type { GuestPhysical } from "../../guest-memory.ts"
import type { PvBootInfo } from "../../loader/xen-pv.ts"
import type { VmShadowPaging } from "../../shadow/vmx-shadow-paging.ts"
import type { BlockStore } from "../../virtio/blk.ts"
import { Console, Errno, NR_EVENT_CHANNELS, NR_VIRQS, SharedInfo, VcpuInfo } from "./abi.ts"
import { BlkBack, type BlkBackHost } from "./blkback.ts"
import { GrantTable } from "./grant-table.ts"
import { NetBack } from "./netback.ts"
import type { PvRegion } from "./region.ts"
import { XenStore } from "./xenstore.ts"

type Port =
  | { readonly kind: "console" }
  | { readonly kind: "store" }
  | { readonly kind: "virq"; readonly virq: number; readonly vcpu: number }
  | { readonly kind: "unbound" }
  /** An unbound port a back end in the hypervisor bound to (the guest's sends reach it). */
  | { readonly kind: "backend"; readonly onSend: () => void }

const P = 1
const RW = 2
const PS = 0x80

export class PvDomain {
  readonly guest: GuestPhysical
  readonly info: PvBootInfo
  readonly paging: VmShadowPaging
  readonly region: PvRegion
  readonly vcpus: number
  /** The exit code SCHEDOP_shutdown_code set (reported when the guest powers off). */
  exitCode = 0
  private readonly console: (byte: number) => void
  private readonly ports: Array<Port | undefined> = []
  /** [vcpu][virq] -> port (0: not bound). */
  private readonly virqs: Array<Array<number>>
  readonly grants: GrantTable
  readonly store: XenStore
  private readonly disks: Array<BlkBack> = []
  private readonly vifs: Array<NetBack> = []
  /** Counters for the boot summary. */
  private readonly counts = { pv_events_sent: 0, pv_console_bytes: 0 }

  constructor(
    guest: GuestPhysical,
    info: PvBootInfo,
    paging: VmShadowPaging,
    region: PvRegion,
    vcpus: number,
    console: (byte: number) => void
  ) {
    this.guest = guest
    this.info = info
    this.paging = paging
    this.region = region
    this.vcpus = vcpus
    this.console = console
    this.ports[info.consoleEvtchn] = { kind: "console" }
    this.ports[info.storeEvtchn] = { kind: "store" }
    this.virqs = Array.from({ length: vcpus }, () => new Array<number>(NR_VIRQS).fill(0))
    this.grants = new GrantTable(guest, info.grantFrames, info.nrPages)
    this.store = new XenStore(guest, info.storePage)
    this.store.set(`${this.store.home}/name`, "guest")
  }

  /** Counters for the boot summary (the block and network back ends' summed). */
  get stats(): Record<string, number> {
    const out: Record<string, number> = { ...this.counts }
    if (this.disks.length > 0) {
      out.pv_blk_requests = this.disks.reduce((n, d) => n + d.stats.requests, 0)
      out.pv_blk_errors = this.disks.reduce((n, d) => n + d.stats.errors, 0)
    }
    if (this.vifs.length > 0) {
      const sum = (key: keyof NetBack["stats"]) => this.vifs.reduce((n, v) => n + v.stats[key], 0)
      out.pv_net_tx_frames = sum("txFrames")
      out.pv_net_tx_errors = sum("txErrors")
      out.pv_net_rx_frames = sum("rxFrames")
      out.pv_net_rx_dropped = sum("rxDropped")
      out.pv_net_rx_errors = sum("rxErrors")
    }
    return out
  }

  /** What a back end in the hypervisor reaches the guest through. */
  private backendHost(): BlkBackHost {
    return {
      guest: this.guest,
      grants: this.grants,
      store: this.store,
      bindPort: (port: number, onSend: () => void) => {
        if (port <= 0 || port >= NR_EVENT_CHANNELS || this.ports[port]?.kind !== "unbound") return false
        this.ports[port] = { kind: "backend", onSend }
        return true
      },
      notify: (port: number) => this.raise(port)
    }
  }

  /** Give the guest a virtual block device (vbd 768, 832, ...: xvda, xvdb) backed by `disk`. */
  attachDisk(disk: BlockStore): void {
    this.disks.push(new BlkBack(this.backendHost(), disk, 768 + 64 * this.disks.length))
  }

  /** Give the guest a virtual NIC (vif 0, 1, ...) with address `mac` (6 bytes), plugged into `port`. */
  attachNic(port: NetPort, mac: ArrayLike<number>): void {
    this.vifs.push(new NetBack(this.backendHost(), port, mac, this.vifs.length))
  }

  /** Back to the builder's state (the VM was reset and its image, shared_info included, rewritten). */
  reset(): void {
    this.exitCode = 0
    this.ports.length = 0
    this.ports[this.info.consoleEvtchn] = { kind: "console" }
    this.ports[this.info.storeEvtchn] = { kind: "store" }
    this.store.clear()
    this.store.set(`${this.store.home}/name`, "guest")
    for (const disk of this.disks) disk.publish()
    for (const vif of this.vifs) vif.publish()
    for (const virqs of this.virqs) virqs.fill(0)
    for (const frame of [...this.pinned]) this.unpin(frame)
    this.writeTimeInfo(this.clockHz)
  }

  private clockHz = 1e9

  /**
   * Publish the time base in every vcpu_info (xen.h vcpu_time_info): system
   * time in ns = ((tsc << shift) * mul) >> 32 from a TSC that counts from
   * the VM's start, at `clockHz`.
   */
  writeTimeInfo(clockHz: number): void {
    this.clockHz = clockHz
    let ratio = 1e9 / clockHz
    let shift = 0
    while (ratio >= 1) {
      ratio /= 2
      shift++
    }
    while (ratio < 0.5) {
      ratio *= 2
      shift--
    }
    const mul = Math.floor(ratio * 2 ** 32) >>> 0
    for (let i = 0; i < this.vcpus; i++) {
      const at = this.vcpuInfo(i)
      const g = this.guest
      g.writeValue(at + VcpuInfo.time_version, 4, 2)
      for (const field of [VcpuInfo.tsc_timestamp, VcpuInfo.system_time]) {
        g.writeValue(at + field, 4, 0)
        g.writeValue(at + field + 4, 4, 0)
      }
      g.writeValue(at + VcpuInfo.tsc_to_system_mul, 4, mul)
      g.writeValue(at + VcpuInfo.tsc_shift, 1, shift & 0xff)
    }
  }

  /** Guest-physical address of vCPU `index`'s vcpu_info. */
  vcpuInfo(index: number): number {
    return this.info.sharedInfo + SharedInfo.vcpu_info + index * SharedInfo.vcpu_info_size
  }

  // ---- event channels ----

  /** An upcall is due on vCPU `index`: evtchn_upcall_pending set and evtchn_upcall_mask clear. */
  upcallDeliverable(index: number): boolean {
    const at = this.vcpuInfo(index)
    return (
      this.guest.readValue(at + VcpuInfo.evtchn_upcall_pending, 1) !== 0 &&
      this.guest.readValue(at + VcpuInfo.evtchn_upcall_mask, 1) === 0
    )
  }

  upcallMask(index: number): number {
    return this.guest.readValue(this.vcpuInfo(index) + VcpuInfo.evtchn_upcall_mask, 1) & 1
  }

  setUpcallMask(index: number, masked: boolean): void {
    this.guest.writeValue(this.vcpuInfo(index) + VcpuInfo.evtchn_upcall_mask, 1, masked ? 1 : 0)
  }

  /** Set `port` pending (event_channel.h 2-level: pending bit, then selector bit, then upcall_pending). */
  raise(port: number): void {
    if (port <= 0 || port >= NR_EVENT_CHANNELS) return
    const entry = this.ports[port]
    if (entry === undefined) return
    this.counts.pv_events_sent++
    const word = port >>> 5
    const bit = (1 << (port & 31)) >>> 0
    const g = this.guest
    const pendingAt = this.info.sharedInfo + SharedInfo.evtchn_pending + word * 4
    const pending = g.readValue(pendingAt, 4)
    if ((pending & bit) !== 0) return
    g.writeValue(pendingAt, 4, (pending | bit) >>> 0)
    if ((g.readValue(this.info.sharedInfo + SharedInfo.evtchn_mask + word * 4, 4) & bit) !== 0) return
    this.markSelector(entry.kind === "virq" ? entry.vcpu : 0, word)
  }

  private markSelector(vcpu: number, word: number): void {
    const g = this.guest
    const info = this.vcpuInfo(vcpu)
    const sel = g.readValue(info + VcpuInfo.evtchn_pending_sel, 4)
    const selBit = (1 << word) >>> 0
    if ((sel & selBit) !== 0) return
    g.writeValue(info + VcpuInfo.evtchn_pending_sel, 4, (sel | selBit) >>> 0)
    g.writeValue(info + VcpuInfo.evtchn_upcall_pending, 1, 1)
    // a vCPU blocked in SCHEDOP_block sleeps in the scheduler: an event from outside its own run (another
    // VM's frame through the vSwitch) must wake it
    this.onEvent(vcpu)
  }

  /** Set by createVm: wake vCPU `index`'s world (an event became pending for it). */
  onEvent: (index: number) => void = () => {}

  /** EVTCHNOP_unmask: clear the mask bit; a port already pending is delivered now. */
  unmask(port: number): number {
    if (port <= 0 || port >= NR_EVENT_CHANNELS || this.ports[port] === undefined) return Errno.EINVAL
    const word = port >>> 5
    const bit = (1 << (port & 31)) >>> 0
    const g = this.guest
    const maskAt = this.info.sharedInfo + SharedInfo.evtchn_mask + word * 4
    g.writeValue(maskAt, 4, (g.readValue(maskAt, 4) & ~bit) >>> 0)
    if ((g.readValue(this.info.sharedInfo + SharedInfo.evtchn_pending + word * 4, 4) & bit) !== 0) {
      const entry = this.ports[port]!
      this.markSelector(entry.kind === "virq" ? entry.vcpu : 0, word)
    }
    return 0
  }

  private allocatePort(port: Port): number {
    for (let p = 1; p < NR_EVENT_CHANNELS; p++) {
      if (this.ports[p] === undefined) {
        this.ports[p] = port
        return p
      }
    }
    return Errno.ENOSYS
  }

  /** EVTCHNOP_bind_virq: a new port for `virq` on `vcpu`. */
  bindVirq(virq: number, vcpu: number): number {
    if (virq >= NR_VIRQS) return Errno.EINVAL
    if (vcpu >= this.vcpus) return Errno.ENOENT
    if (this.virqs[vcpu]![virq] !== 0) return Errno.EEXIST
    const port = this.allocatePort({ kind: "virq", virq, vcpu })
    if (port > 0) this.virqs[vcpu]![virq] = port
    return port
  }

  /** The port `virq` of `vcpu` is bound to (0: none). */
  virqPort(vcpu: number, virq: number): number {
    return this.virqs[vcpu]?.[virq] ?? 0
  }

  /** EVTCHNOP_alloc_unbound: a port for another domain to bind (none exists yet: it stays unbound). */
  allocUnbound(): number {
    return this.allocatePort({ kind: "unbound" })
  }

  /** EVTCHNOP_close. */
  close(port: number): number {
    const entry = port > 0 && port < NR_EVENT_CHANNELS ? this.ports[port] : undefined
    if (entry === undefined) return Errno.EINVAL
    if (entry.kind === "virq") this.virqs[entry.vcpu]![entry.virq] = 0
    this.ports[port] = undefined
    return 0
  }

  /** EVTCHNOP_send from the guest: the console's back end drains its ring; an unbound port goes nowhere. */
  send(port: number): number {
    const entry = port > 0 && port < NR_EVENT_CHANNELS ? this.ports[port] : undefined
    if (entry === undefined) return Errno.EINVAL
    if (entry.kind === "virq") return Errno.EINVAL
    if (entry.kind === "console") this.drainConsole()
    else if (entry.kind === "store") {
      if (this.store.service()) this.raise(port)
    } else if (entry.kind === "backend") entry.onSend()
    return 0
  }

  // ---- the console's back end ----

  /**
   * Copy what the guest produced in the ring's `out` half to the VM's console (io/console.h), then
   * notify the console's event channel: its virtual interrupt.
   */
  drainConsole(): void {
    const g = this.guest
    const page = this.info.consolePage
    const cons = g.readValue(page + Console.out_cons, 4)
    const prod = g.readValue(page + Console.out_prod, 4)
    const count = (prod - cons) >>> 0
    // more than the ring holds: indices the guest broke; drop them rather than replay stale bytes
    if (count <= Console.out_size) {
      for (let i = 0; i < count; i++)
        this.console(g.readValue(page + Console.out + ((cons + i) & (Console.out_size - 1)), 1))
      this.counts.pv_console_bytes += count
    }
    g.writeValue(page + Console.out_cons, 4, prod)
    // as xenconsoled does: the console's event channel tells the guest the ring has room again
    if (count > 0) this.raise(this.info.consoleEvtchn)
  }

  /** console_io(CONSOLEIO_write). */
  write(bytes: Uint8Array): void {
    for (const byte of bytes) this.console(byte)
    this.counts.pv_console_bytes += bytes.length
  }

  // ---- page-table updates (mmu_update, update_va_mapping) ----

  /**
   * May the guest store `entry` at guest-physical `at`? Present entries must
   * name a frame of the guest's RAM; in a page table (anything but a page
   * directory the shadows are built from) a writable entry must not map a
   * frame in use as a page table, and a page-directory entry may not map a
   * 4 MiB page (non-PAE PV guests run with CR4.PSE = 0). 0 or -EINVAL.
   */
  checkEntry(at: number, entry: number): number {
    if ((entry & P) === 0) return 0
    const frame = entry >>> 12
    if (frame >= this.info.nrPages) return Errno.EINVAL
    const mmu = this.paging.mmu
    if (mmu.isRootTable(at >>> 12)) return (entry & PS) !== 0 ? Errno.EINVAL : 0
    if ((entry & RW) !== 0 && (mmu.isTraced(frame) || this.pinned.has(frame))) return Errno.EINVAL
    return 0
  }

  /** Frames pinned as page tables (MMUEXT_PIN_L1_TABLE / PIN_L2_TABLE). */
  private readonly pinned = new Set<number>()

  /**
   * MMUEXT_PIN_*_TABLE: `frame` is a page table from now on, read-only to the
   * guest even before any shadow is built from it (the shadow MMU
   * write-protects it in every shadow, as it does bt's translated code).
   */
  pin(frame: number): void {
    if (this.pinned.has(frame)) return
    this.pinned.add(frame)
    this.paging.mmu.protectCode(frame)
  }

  /** MMUEXT_UNPIN_TABLE: writable again once no shadow is built from it. */
  unpin(frame: number): void {
    if (!this.pinned.delete(frame)) return
    this.paging.mmu.unprotectCode(frame)
  }
}
