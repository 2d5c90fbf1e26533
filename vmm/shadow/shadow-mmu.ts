/**
 * Shadow page tables for 32-bit guest paging: guest-virtual -> MACHINE
 * translations composed from the guest's own page tables (guest-virtual ->
 * guest-physical) and the VM's guest-physical -> machine map, for running a
 * guest without EPT (issue 10: `bt` mode, and `hw` mode with `--ept off`).
 *
 * References:
 *   - Intel SDM Vol. 3A 4.3 "32-bit paging" (CR3, PDE and PTE formats,
 *     tables 4-4..4-6; 4 MiB pages when CR4.PSE = 1 and PDE.PS = 1),
 *     4.6 "Access rights" (U/S and R/W ANDed over the walk; CR0.WP),
 *     4.7 "Page-fault exceptions" (error code: P bit 0, W/R bit 1, U/S
 *     bit 2; I/D bit 4 exists only with PAE/IA-32e + NX, so never here),
 *     4.8 "Accessed and dirty flags", 4.10.4 INVLPG.
 *   - Adams & Agesen, "A Comparison of Software and Hardware Techniques for
 *     x86 Virtualization" (ASPLOS 2006) 3.2/4: "hidden" page faults (the
 *     shadow is merely not filled yet: the monitor fills it and retries)
 *     versus "true" faults (the guest's own tables fault: reflected into the
 *     guest with CR2 and its error code); "tracing" of guest page-table
 *     pages by write-protecting them in every shadow.
 *   - Linux Documentation/virt/kvm/mmu.rst: one shadow page per guest page
 *     table (and per access "role"), "direct" shadow pages for guest large
 *     pages split into 4 KiB pieces, write-protection of guest page tables,
 *     a reverse map from guest frames to the shadow leaves that map them.
 *     Unsync shadow pages are not modelled: every guest page-table page is
 *     always write-protected.
 *
 * Shadow format: exactly what hw/cpu/paging.ts walks, so a pCPU can run with
 * CR3 = `switchCr3(...)`'s machine root:
 *   shadow PD  (one per guest CR3, machine frame)
 *     PDE = shadow PT frame | P | R/W | U/S | A      (rights live in the leaf)
 *   shadow PT  (machine frame; keyed by role, see below)
 *     PTE = machine frame | P | A | D? | R/W? | U/S?
 * Shadows never use 4 MiB pages: a guest 4 MiB page is machine-discontiguous,
 * so it is split into a direct shadow PT of 1024 4 KiB leaves. Global (G)
 * bits are not propagated (the shadow is flushed per guest CR3 instead).
 *
 * A leaf carries the guest's *effective* rights (guest PDE & PTE, SDM 4.6),
 * so a shadow PT is shared only between guest PDEs with the same R/W and U/S
 * (KVM's "role"): key = guest PT gfn + those two bits (or, for a split 4 MiB
 * page, the guest PDE's address + the bits). A leaf is writable only when
 *   - the guest allows the write (effective R/W, or supervisor with WP = 0),
 *   - the guest entry is already dirty (D = 1): the first write to a clean
 *     page takes a hidden fault that sets D in guest memory (4.8),
 *   - the target guest frame is not a traced guest page table.
 * Supervisor writes to a guest-read-only page under guest CR0.WP = 0 get
 * KVM's treatment: the leaf becomes R/W = 1, U/S = 0 (a later user access
 * hidden-faults and flips it back). The pCPU must therefore run shadows with
 * CR0.WP = 1.
 *
 * Machine placement: shadow tables are real machine frames from a
 * ShadowFrameSource (like EptBuilder's EptFrameSource; kernel/memory's
 * `MemoryManager.shadowFrames(vm)` charges them to the VM's pool as table
 * frames and frees them with it). Frames freed by zapping are kept on an
 * internal free list and reused; `tableFrames()` lists every frame ever
 * taken, for the pool to release with the VM (the EPT builder's "never
 * free, the pool releases" approach).
 *
 * Guest paging off (CR0.PG = 0): `switchDirect()` gives a root whose
 * leaves map linear = guest-physical (the identity the guest sees), built
 * the same way on hidden faults.
 *
 * The monitor's own region (bt mode: GDT, IDT, TSS, translation cache) is a
 * reserved PDE written into every root (`monitorPde`); a fault inside it is
 * reported as `monitor`, never filled from the guest's tables.
 *
 * Code frames: the binary translator write-protects guest frames it has
 * translated code from (`protectCode`); a write to one is reported as
 * `traced` like a page-table write, and the monitor drops the translations.
 *
 * Pure and synchronous.
 */

// entry bits (SDM 3A tables 4-5, 4-6) and #PF error-code bits (SDM 3A 4.7): the interpreter's, one definition
import { PFEC_P, PFEC_U, PFEC_W, PTE_A, PTE_D, PTE_P, PTE_PS, PTE_RW, PTE_US } from "../../hw/cpu/paging.ts"
import type { AllocationError } from "../../kernel/memory/errors.ts"

export { PFEC_P, PFEC_U, PFEC_W, PTE_A, PTE_D, PTE_P, PTE_PS, PTE_RW, PTE_US }

const FRAME = 4096
const ADDR = 0xfffff000

/** The guest's physical memory as the shadow MMU needs it. */
export interface ShadowGuest {
  /** Guest RAM is [0, ramBytes). */
  readonly ramBytes: number
  /** Little-endian u32 at guest-physical `gpa` (all-ones outside RAM, as GuestPhysical). */
  read32(gpa: number): number
  write32(gpa: number, value: number): void
  /** The machine frame backing guest frame `gfn` (backed on demand); `gfn` is inside RAM. */
  machineFrame(gfn: number): number
}

/** Where shadow tables come from (cf. EptFrameSource in kernel/memory/ept-builder.ts). */
export interface ShadowFrameSource {
  /** Machine RAM, indexed by machine address. */
  readonly ram: Uint8Array
  /** A zeroed machine frame owned by (and charged to) the VM. */
  allocateTable(): number | AllocationError
}

/** The kind of access that faulted. */
export interface ShadowAccess {
  readonly write?: boolean
  readonly user?: boolean
  /** An instruction fetch (no I/D error-code bit without NX: reported like a read). */
  readonly fetch?: boolean
}

/** The guest paging controls the walk depends on. */
export interface GuestPagingControls {
  readonly cr0Wp: boolean
  readonly cr4Pse: boolean
}

export type FaultOutcome =
  /** The shadow was filled from a valid guest mapping: retry the access. */
  | { readonly kind: "hidden" }
  /** The guest's own tables fault: inject #PF with this CR2 and error code. */
  | { readonly kind: "true"; readonly cr2: number; readonly errorCode: number }
  /**
   * A permitted write to a traced guest page table (A/D already set): the
   * monitor emulates the write at `gpa` and then calls guestTableWrite(gpa).
   */
  | { readonly kind: "traced"; readonly gpa: number }
  /** The guest maps `gpa` outside guest RAM (MMIO): the monitor emulates the access; nothing shadowed. */
  | { readonly kind: "mmio"; readonly gpa: number }
  /** The linear address is in the monitor's reserved region (not the guest's). */
  | { readonly kind: "monitor" }
  /** No machine frame for a shadow table. */
  | { readonly kind: "no-memory"; readonly error: AllocationError }

export interface ShadowStats {
  hiddenFaults: number
  trueFaults: number
  tracedWrites: number
  /** Writes that trapped on a frame write-protected only for the monitor: translated code (bt), a pinned page table (pv). */
  codeWrites: number
  cr3Switches: number
  cacheHits: number
  cacheMisses: number
  /** Shadow PTs made (not counting roots). */
  tablesBuilt: number
  /** Shadow PTs unlinked and freed by zaps, invlpg, eviction or flushAll. */
  tablesZapped: number
}

interface ShadowPt {
  readonly key: string
  readonly frame: number
  /** The guest PT this shadows (traced), or undefined for a split 4 MiB page. */
  readonly guestGfn: number | undefined
  /** Shadow PDEs (over all roots) that point here: freed at 0. */
  links: number
  /** index -> guest frame the leaf maps (for the reverse map). */
  readonly leaves: Map<number, number>
}

interface ShadowRoot {
  readonly guestGfn: number
  readonly frame: number
  /** PD index -> the shadow PT its PDE points at. */
  readonly children: Map<number, ShadowPt>
}

export interface ShadowMmuOptions {
  /** Shadow roots kept per VM (cached guest CR3s); the least recently used goes first. Default 8. */
  readonly rootCacheSize?: number
  /** A PDE (index, entry) present in every root: the monitor's region, never the guest's. */
  readonly monitorPde?: { readonly index: number; readonly entry: number }
}

/** The root key of guest paging off (no guest CR3). */
const DIRECT = -1

export class ShadowMmu {
  readonly stats: ShadowStats = {
    hiddenFaults: 0,
    trueFaults: 0,
    tracedWrites: 0,
    codeWrites: 0,
    cr3Switches: 0,
    cacheHits: 0,
    cacheMisses: 0,
    tablesBuilt: 0,
    tablesZapped: 0
  }
  private readonly guest: ShadowGuest
  private readonly source: ShadowFrameSource
  private readonly dv: DataView
  private readonly cacheSize: number
  private controls: GuestPagingControls = { cr0Wp: false, cr4Pse: false }
  /** Guest CR3 page -> root, in LRU order (first = least recently used). */
  private readonly roots = new Map<number, ShadowRoot>()
  private current: ShadowRoot | undefined
  private currentCr3 = 0
  private readonly pts = new Map<string, ShadowPt>()
  /** guest PT gfn -> shadow PTs derived from it. */
  private readonly ptsByGfn = new Map<number, Set<ShadowPt>>()
  /** guest gfn -> machine addresses of shadow leaves that map it. */
  private readonly rmap = new Map<number, Set<number>>()
  private readonly freeFrames: Array<number> = []
  private readonly allFrames: Array<number> = []
  private readonly monitorPde: { readonly index: number; readonly entry: number } | undefined
  /** Guest frames holding translated code (write-protected like page tables). */
  private readonly codeFrames = new Set<number>()

  constructor(guest: ShadowGuest, source: ShadowFrameSource, options: ShadowMmuOptions = {}) {
    this.guest = guest
    this.source = source
    this.cacheSize = Math.max(1, options.rootCacheSize ?? 8)
    this.monitorPde = options.monitorPde
    this.dv = new DataView(source.ram.buffer, source.ram.byteOffset, source.ram.byteLength)
  }

  /**
   * Guest CR0.WP / CR4.PSE (re)loaded. When they change, every shadow was
   * derived under the old rules: flushAll, and the returned machine CR3 (a
   * fresh root for the current guest CR3) is what the pCPU must load. Returns
   * the current machine CR3 either way (undefined before any switchCr3).
   */
  setControls(controls: GuestPagingControls): number | undefined {
    const same = controls.cr0Wp === this.controls.cr0Wp && controls.cr4Pse === this.controls.cr4Pse
    this.controls = { cr0Wp: controls.cr0Wp, cr4Pse: controls.cr4Pse }
    return same ? this.shadowCr3 : this.flushAll()
  }

  /**
   * The guest loads CR3: returns the machine CR3 the pCPU runs with (the
   * shadow root), from the cache when this guest CR3 was seen recently.
   */
  switchCr3(cr3: number): number | AllocationError {
    return this.switchRoot((cr3 & ADDR) >>> 12, cr3 >>> 0)
  }

  /** The guest runs with paging off: the machine CR3 of the identity shadow (linear = guest-physical). */
  switchDirect(): number | AllocationError {
    return this.switchRoot(DIRECT, 0)
  }

  /** Is the current shadow the paging-off identity? */
  get direct(): boolean {
    return this.current?.guestGfn === DIRECT
  }

  private switchRoot(gfn: number, cr3: number): number | AllocationError {
    this.stats.cr3Switches++
    let root = this.roots.get(gfn)
    if (root !== undefined) {
      this.stats.cacheHits++
      this.roots.delete(gfn)
      this.roots.set(gfn, root)
    } else {
      this.stats.cacheMisses++
      const made = this.makeRoot(gfn)
      if (typeof made !== "object" || !("children" in made)) return made
      root = made
    }
    this.current = root
    this.currentCr3 = cr3
    return (root.frame * FRAME) >>> 0
  }

  private makeRoot(gfn: number): ShadowRoot | AllocationError {
    // evict first, so the new root reuses the evicted frames instead of growing the pool
    while (this.roots.size >= this.cacheSize) this.dropRoot(this.roots.values().next().value!)
    const frame = this.allocate()
    if (typeof frame !== "number") return frame
    const wasTraced = gfn === DIRECT || this.isTraced(gfn)
    const root: ShadowRoot = { guestGfn: gfn, frame, children: new Map() }
    this.roots.set(gfn, root)
    if (this.monitorPde !== undefined) {
      this.dv.setUint32(frame * FRAME + this.monitorPde.index * 4, this.monitorPde.entry >>> 0, true)
    }
    if (!wasTraced) this.writeProtect(gfn)
    return root
  }

  /** The machine CR3 of the current shadow (undefined before the first switchCr3). */
  get shadowCr3(): number | undefined {
    return this.current === undefined ? undefined : (this.current.frame * FRAME) >>> 0
  }

  /**
   * A #PF on the shadow at `linear`: walk the guest's tables (SDM 4.3) and
   * either fill the shadow (hidden) or report the guest's own fault (true).
   */
  handlePageFault(linear: number, access: ShadowAccess): FaultOutcome {
    const root = this.current
    if (root === undefined) throw new Error("shadow MMU: page fault before any switchCr3")
    linear >>>= 0
    const write = access.write === true
    const user = access.user === true
    const errBase = (write ? PFEC_W : 0) | (user ? PFEC_U : 0)
    const g = this.guest
    const pdIndex = linear >>> 22
    if (this.monitorPde !== undefined && pdIndex === this.monitorPde.index) return { kind: "monitor" }
    const pdeAddr = ((this.currentCr3 & ADDR) | (pdIndex << 2)) >>> 0
    const pde = root.guestGfn === DIRECT ? PTE_P | PTE_RW | PTE_US : g.read32(pdeAddr)
    if ((pde & PTE_P) === 0) return this.trueFault(linear, errBase)
    let rights: number
    let dirty: boolean
    let gpa: number
    let key: string
    let guestPtGfn: number | undefined
    if (root.guestGfn === DIRECT) {
      // paging off: every linear address is the guest-physical one, with all rights (SDM 3A 4.1.1)
      rights = PTE_RW | PTE_US
      dirty = true
      gpa = (linear & ADDR) >>> 0
      key = `D${pdIndex}`
      guestPtGfn = undefined
    } else if ((pde & PTE_PS) !== 0 && this.controls.cr4Pse) {
      rights = pde
      if (this.denied(rights, write, user)) return this.trueFault(linear, errBase | PFEC_P)
      const updated = (pde | PTE_A | (write ? PTE_D : 0)) >>> 0
      if (updated !== pde >>> 0) g.write32(pdeAddr, updated)
      dirty = (updated & PTE_D) !== 0
      gpa = ((pde & 0xffc00000) | (linear & 0x3ff000)) >>> 0
      key = `L${pdeAddr}:${pde & (PTE_RW | PTE_US)}`
      guestPtGfn = undefined
    } else {
      const pteAddr = ((pde & ADDR) | ((linear >>> 10) & 0xffc)) >>> 0
      const pte = g.read32(pteAddr)
      if ((pte & PTE_P) === 0) return this.trueFault(linear, errBase)
      rights = pde & pte
      if (this.denied(rights, write, user)) return this.trueFault(linear, errBase | PFEC_P)
      if ((pde & PTE_A) === 0) g.write32(pdeAddr, (pde | PTE_A) >>> 0)
      const updated = (pte | PTE_A | (write ? PTE_D : 0)) >>> 0
      if (updated !== pte >>> 0) g.write32(pteAddr, updated)
      dirty = (updated & PTE_D) !== 0
      gpa = (pte & ADDR) >>> 0
      guestPtGfn = (pde & ADDR) >>> 12
      key = `T${guestPtGfn}:${pde & (PTE_RW | PTE_US)}`
    }
    const gfn = gpa >>> 12
    if (gpa + FRAME > g.ramBytes) return { kind: "mmio", gpa: (gpa | (linear & 0xfff)) >>> 0 }
    const pt = this.shadowPt(root, pdIndex, key, guestPtGfn)
    if ("error" in pt) return { kind: "no-memory", error: pt.error }
    const traced = this.isTraced(gfn) || this.codeFrames.has(gfn)
    // the leaf: effective rights, writable only when dirty and not a traced table
    let leaf = (g.machineFrame(gfn) * FRAME) | PTE_P | PTE_A
    const guestWritable = (rights & PTE_RW) !== 0
    let us = (rights & PTE_US) !== 0
    let rw = guestWritable && dirty && !traced
    if (!guestWritable && !this.controls.cr0Wp && write && !user && dirty && !traced) {
      // supervisor write through a read-only mapping with WP = 0 (4.6): writable, but hidden from user mode
      rw = true
      us = false
    }
    if (rw) leaf |= PTE_RW | PTE_D
    if (us) leaf |= PTE_US
    this.setLeaf(pt, (linear >>> 12) & 0x3ff, leaf >>> 0, gfn)
    if (write && traced) {
      if (this.isTraced(gfn)) this.stats.tracedWrites++
      else this.stats.codeWrites++
      return { kind: "traced", gpa: (gpa | (linear & 0xfff)) >>> 0 }
    }
    this.stats.hiddenFaults++
    return { kind: "hidden" }
  }

  /** INVLPG `linear` in the current shadow (SDM 4.10.4.1): its leaf (or a split 4 MiB page's whole PDE) goes. */
  invlpg(linear: number): void {
    const root = this.current
    if (root === undefined) return
    const pdIndex = linear >>> 22
    const pt = root.children.get(pdIndex)
    if (pt === undefined) return
    if (pt.guestGfn === undefined) this.unlink(root, pdIndex)
    else this.clearLeaf(pt, (linear >>> 12) & 0x3ff)
  }

  /**
   * The write-protection trap: the guest wrote (the monitor emulated) the
   * 4 bytes at `gpa` in a traced page. Zaps what was derived from that entry:
   * a PDE of every shadow root built from that guest PD, a leaf of every
   * shadow PT built from that guest PT. Returns whether `gpa` was traced.
   */
  guestTableWrite(gpa: number): boolean {
    const gfn = gpa >>> 12
    const index = (gpa & 0xfff) >>> 2
    let hit = false
    for (const root of [...this.roots.values()]) {
      if (root.guestGfn !== gfn) continue
      hit = true
      this.unlink(root, index)
    }
    const pts = this.ptsByGfn.get(gfn)
    if (pts !== undefined) {
      hit = true
      for (const pt of pts) this.clearLeaf(pt, index)
    }
    return hit
  }

  /** Guest frame `gfn` holds translated code: no shadow leaf maps it writable until `unprotectCode`. */
  protectCode(gfn: number): void {
    if (this.codeFrames.has(gfn)) return
    this.codeFrames.add(gfn)
    if (!this.isTraced(gfn)) this.writeProtect(gfn)
  }

  /** Its translations are gone: writes to `gfn` need not trap any more (leaves refill writable on the next fault). */
  unprotectCode(gfn: number): void {
    if (!this.codeFrames.delete(gfn)) return
    if (this.isTraced(gfn)) return
    // the read-only leaves stay; the next write takes a hidden fault that refills them writable
  }

  isCode(gfn: number): boolean {
    return this.codeFrames.has(gfn)
  }

  /** Is guest frame `gfn` a page table some shadow is derived from (write-protected in every shadow)? */
  isTraced(gfn: number): boolean {
    if (gfn !== DIRECT && this.roots.has(gfn)) return true
    const pts = this.ptsByGfn.get(gfn)
    return pts !== undefined && pts.size > 0
  }

  /** Is guest frame `gfn` a page directory some shadow root is built from? */
  isRootTable(gfn: number): boolean {
    return gfn !== DIRECT && this.roots.has(gfn)
  }

  /** Every traced guest frame. */
  tracedFrames(): Array<number> {
    const out = new Set<number>([...this.roots.keys()].filter((gfn) => gfn !== DIRECT))
    for (const [gfn, pts] of this.ptsByGfn) if (pts.size > 0) out.add(gfn)
    return [...out].sort((a, b) => a - b)
  }

  /**
   * Drop every shadow (guest CR0/CR4 paging changes, a full invalidation).
   * The current guest CR3 gets a fresh, empty root (reusing a freed frame,
   * so this cannot fail); returns its machine CR3, which the pCPU must load.
   */
  flushAll(): number | undefined {
    const currentGfn = this.current?.guestGfn
    for (const root of [...this.roots.values()]) this.dropRoot(root)
    if (currentGfn === undefined) return undefined
    const made = this.makeRoot(currentGfn)
    if (!("children" in made)) throw new Error("shadow MMU: no frame for a root after a flush")
    this.current = made
    return (made.frame * FRAME) >>> 0
  }

  /** Every machine frame the shadows ever took (for the VM's pool to release). */
  tableFrames(): ReadonlyArray<number> {
    return [...this.allFrames]
  }

  /** Cached guest CR3 pages, least recently used first. */
  cachedRoots(): Array<number> {
    return [...this.roots.keys()]
  }

  // ---- internals ----

  private denied(rights: number, write: boolean, user: boolean): boolean {
    if (user && (rights & PTE_US) === 0) return true
    return write && (rights & PTE_RW) === 0 && (user || this.controls.cr0Wp)
  }

  private trueFault(linear: number, errorCode: number): FaultOutcome {
    this.stats.trueFaults++
    return { kind: "true", cr2: linear >>> 0, errorCode }
  }

  private allocate(): number | AllocationError {
    const reused = this.freeFrames.pop()
    if (reused !== undefined) {
      this.source.ram.fill(0, reused * FRAME, (reused + 1) * FRAME)
      return reused
    }
    const frame = this.source.allocateTable()
    if (typeof frame === "number") this.allFrames.push(frame)
    return frame
  }

  /** The shadow PT for `root`'s PDE `pdIndex`, made and linked as needed. */
  private shadowPt(
    root: ShadowRoot,
    pdIndex: number,
    key: string,
    guestGfn: number | undefined
  ): ShadowPt | { readonly error: AllocationError } {
    const linked = root.children.get(pdIndex)
    if (linked !== undefined && linked.key === key) return linked
    if (linked !== undefined) this.unlink(root, pdIndex)
    let pt = this.pts.get(key)
    if (pt === undefined) {
      const frame = this.allocate()
      if (typeof frame !== "number") return { error: frame }
      pt = { key, frame, guestGfn, links: 0, leaves: new Map() }
      this.pts.set(key, pt)
      this.stats.tablesBuilt++
      if (guestGfn !== undefined) {
        const wasTraced = this.isTraced(guestGfn)
        const set = this.ptsByGfn.get(guestGfn)
        if (set === undefined) this.ptsByGfn.set(guestGfn, new Set([pt]))
        else set.add(pt)
        if (!wasTraced) this.writeProtect(guestGfn)
      }
    }
    pt.links++
    root.children.set(pdIndex, pt)
    this.dv.setUint32(root.frame * FRAME + pdIndex * 4, (pt.frame * FRAME) | PTE_P | PTE_RW | PTE_US | PTE_A, true)
    return pt
  }

  /** A guest frame became a traced page table: no shadow leaf may map it writable. */
  private writeProtect(gfn: number): void {
    const leaves = this.rmap.get(gfn)
    if (leaves === undefined) return
    for (const addr of leaves) this.dv.setUint32(addr, this.dv.getUint32(addr, true) & ~(PTE_RW | PTE_D), true)
  }

  private setLeaf(pt: ShadowPt, index: number, leaf: number, gfn: number): void {
    this.clearLeaf(pt, index)
    const addr = pt.frame * FRAME + index * 4
    this.dv.setUint32(addr, leaf, true)
    pt.leaves.set(index, gfn)
    const set = this.rmap.get(gfn)
    if (set === undefined) this.rmap.set(gfn, new Set([addr]))
    else set.add(addr)
  }

  private clearLeaf(pt: ShadowPt, index: number): void {
    const gfn = pt.leaves.get(index)
    if (gfn === undefined) return
    const addr = pt.frame * FRAME + index * 4
    this.dv.setUint32(addr, 0, true)
    pt.leaves.delete(index)
    const set = this.rmap.get(gfn)
    set?.delete(addr)
    if (set?.size === 0) this.rmap.delete(gfn)
  }

  /** Clear `root`'s PDE `pdIndex`; a shadow PT left without parents is freed. */
  private unlink(root: ShadowRoot, pdIndex: number): void {
    const pt = root.children.get(pdIndex)
    if (pt === undefined) return
    root.children.delete(pdIndex)
    this.dv.setUint32(root.frame * FRAME + pdIndex * 4, 0, true)
    if (--pt.links === 0) this.freePt(pt)
  }

  private freePt(pt: ShadowPt): void {
    for (const index of [...pt.leaves.keys()]) this.clearLeaf(pt, index)
    this.pts.delete(pt.key)
    if (pt.guestGfn !== undefined) {
      const set = this.ptsByGfn.get(pt.guestGfn)
      set?.delete(pt)
      if (set?.size === 0) this.ptsByGfn.delete(pt.guestGfn)
    }
    this.freeFrames.push(pt.frame)
    this.stats.tablesZapped++
  }

  private dropRoot(root: ShadowRoot): void {
    for (const index of [...root.children.keys()]) this.unlink(root, index)
    this.roots.delete(root.guestGfn)
    this.freeFrames.push(root.frame)
    if (this.current === root) this.current = undefined
  }
}

/** A ShadowGuest over the VM's GuestPhysical (vmm/guest-memory.ts). */
export const guestPhysicalShadow = (g: {
  readonly ramBytes: number
  readValue(gpa: number, size: 4): number
  writeValue(gpa: number, size: 4, value: number): boolean
  frame(gfn: number, allocate: boolean): number | undefined
}): ShadowGuest => ({
  ramBytes: g.ramBytes,
  read32: (gpa) => g.readValue(gpa, 4),
  write32: (gpa, value) => {
    g.writeValue(gpa, 4, value >>> 0)
  },
  machineFrame: (gfn) => g.frame(gfn, true)!
})
