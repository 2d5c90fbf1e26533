/**
 * Builds and edits one VM's extended page tables (Intel SDM Vol. 3C 29.3,
 * "The extended page-table mechanism"), in exactly the format the pCPU
 * walks (hw/cpu/vmx/ept.ts): Intel's 4-level layout, 64-bit entries, 4 KiB
 * pages only.
 *
 *   EPTP   = PML4 address | WB (6, bits 2:0) | walk length 4 - 1 (bits 5:3) | A/D enable (bit 6)
 *   PML4E  (index 0: guest-physical space is 32-bit)      -> PDPT   R W X = 1 1 1
 *   PDPTE  (gpa 31:30 = gfn 19:18)                         -> PD     R W X = 1 1 1
 *   PDE    (gpa 29:21 = gfn 17:9)                          -> PT     R W X = 1 1 1
 *   PTE    (gpa 20:12 = gfn 8:0)   frame | WB (6) in bits 5:3 | perms R(0) W(1) X(2)
 *   A (bit 8) and D (bit 9, leaf) are set by the walk when the EPTP enables them.
 *
 * Non-leaf entries grant everything: the walk ANDs permissions over the
 * levels, so the leaf alone decides. The high dword is always 0 (machine
 * addresses are below 4 GiB).
 *
 * Page-table frames come from the VM's own pool (EptFrameSource: they count
 * against its limit and reservation) and are allocated on demand: the PML4
 * when the builder is made, a PDPT/PD/PT the first time a gfn under it is
 * mapped. Unmapping never frees a table; every table frame goes back with
 * the pool when the VM is released (pools.ts).
 *
 * Invariants (asserted: breaking one is a hypervisor bug, MemoryInvariantError):
 *   - a leaf only ever points at a frame the VM owns as a guest frame,
 *     never at another VM's frame, a free frame, the kernel's, or one of
 *     this EPT's own tables (a guest that could write its EPT would escape);
 *   - a frame is mapped by at most one leaf (no aliasing), so freeing a
 *     frame needs exactly one unmap (gfnOf finds it);
 *   - permissions are never write-without-read (an EPT misconfiguration);
 *   - the builder is dead once its VM's pool is released.
 *
 * After `unmap` or a permission downgrade, cached translations must be
 * flushed on every pCPU that ran the VM (INVEPT; here cpu.flushTlbSets)
 * before the frame is reused: the VMM's job, after stopping the vCPUs.
 *
 * Page sharing (future) will map a SHARED frame read-only into several EPTs:
 * the ownership check widens to "owns it, or shares it and perms lack W".
 */
import { EPT_EXEC, EPT_READ, EPT_WRITE } from "../../hw/cpu/vmx/ept.ts"
import { type AllocationError, hex, MemoryInvariantError } from "./errors.ts"
import { FRAME_SIZE } from "./frames.ts"

export { EPT_EXEC, EPT_READ, EPT_WRITE }
export const EPT_RWX = EPT_READ | EPT_WRITE | EPT_EXEC

/** Guest-physical frame numbers: a 32-bit guest-physical space. */
export const GFN_LIMIT = 1 << 20

const MEMTYPE_WB = 6
const LEAF_MEMTYPE = MEMTYPE_WB << 3
const ACCESSED = 1 << 8
const DIRTY = 1 << 9
const ADDRESS = 0xfffff000

/** Where the builder gets page-table frames, and how it checks ownership (the VM's pool). */
export interface EptFrameSource {
  readonly ram: Uint8Array
  /** A zeroed frame for a page table, owned by and counted against the VM. */
  allocateTable(): number | AllocationError
  /** Does the VM own `frame`? */
  owns(frame: number): boolean
  /** Who the tables belong to (for messages). */
  readonly vm: string
}

export interface EptMapping {
  readonly frame: number
  /** EPT_READ | EPT_WRITE | EPT_EXEC */
  readonly perms: number
  /** Set by the pCPU's walk when A/D flags are enabled (SDM 29.3.5). */
  readonly accessed: boolean
  readonly dirty: boolean
}

export interface EptpOptions {
  /** Enable accessed and dirty flags (EPTP bit 6). */
  readonly accessedDirty?: boolean
}

export class EptBuilder {
  /** The PML4's machine frame. */
  readonly root: number
  private readonly source: EptFrameSource
  private readonly dv: DataView
  private readonly tables: Set<number>
  /** frame -> the gfn whose leaf maps it: a frame is mapped at most once (no aliasing). */
  private readonly leaves = new Map<number, number>()
  private dead = false

  private constructor(source: EptFrameSource, root: number) {
    this.source = source
    this.root = root
    this.tables = new Set([root])
    this.dv = new DataView(source.ram.buffer, source.ram.byteOffset, source.ram.byteLength)
  }

  /** A new, empty EPT: allocates its PML4 from `source`. */
  static create(source: EptFrameSource): EptBuilder | AllocationError {
    const root = source.allocateTable()
    return typeof root === "number" ? new EptBuilder(source, root) : root
  }

  /** The EPT pointer for the VMCS: WB paging-structure memory type, 4-level walk. */
  eptp(options: EptpOptions = {}): number {
    this.alive()
    return (this.root * FRAME_SIZE + MEMTYPE_WB + (3 << 3) + (options.accessedDirty === true ? 0x40 : 0)) >>> 0
  }

  /**
   * Map guest frame `gfn` to machine `frame` with `perms` (default RWX),
   * allocating missing tables from the VM's pool (which may refuse: limit or
   * memory). Remapping a mapped gfn replaces its leaf (A/D cleared).
   */
  map(gfn: number, frame: number, perms: number = EPT_RWX): undefined | AllocationError {
    this.alive()
    checkGfn(gfn)
    if (!Number.isInteger(perms) || perms < 1 || perms > 7 || (perms & 3) === EPT_WRITE)
      throw new MemoryInvariantError(
        `EPT permissions ${perms} for gfn ${hex(gfn)}: write without read is a misconfiguration`
      )
    if (this.tables.has(frame))
      throw new MemoryInvariantError(`VM ${this.source.vm}: frame ${hex(frame)} is one of its own EPT tables`)
    if (!this.source.owns(frame))
      throw new MemoryInvariantError(`VM ${this.source.vm} does not own machine frame ${hex(frame)} (gfn ${hex(gfn)})`)
    const other = this.leaves.get(frame)
    if (other !== undefined && other !== gfn)
      throw new MemoryInvariantError(
        `VM ${this.source.vm}: frame ${hex(frame)} is already mapped at gfn ${hex(other)} (no aliasing)`
      )
    const pt = this.walk(gfn, true)
    if (typeof pt !== "number") return pt
    const addr = pt * FRAME_SIZE + (gfn & 0x1ff) * 8
    const old = this.dv.getUint32(addr, true)
    if ((old & 7) !== 0) this.leaves.delete((old & ADDRESS) >>> 12)
    this.write(addr, frame * FRAME_SIZE + LEAF_MEMTYPE + perms)
    this.leaves.set(frame, gfn)
    return undefined
  }

  /** Remove `gfn`'s mapping; returns the frame it mapped, or undefined if none. */
  unmap(gfn: number): number | undefined {
    this.alive()
    checkGfn(gfn)
    const pt = this.walk(gfn, false)
    if (typeof pt !== "number" || pt < 0) return undefined
    const addr = pt * FRAME_SIZE + (gfn & 0x1ff) * 8
    const lo = this.dv.getUint32(addr, true)
    if ((lo & 7) === 0) return undefined
    this.write(addr, 0)
    const frame = (lo & ADDRESS) >>> 12
    this.leaves.delete(frame)
    return frame
  }

  /** `gfn`'s mapping as the tables hold it (no A/D side effects), or undefined. */
  lookup(gfn: number): EptMapping | undefined {
    this.alive()
    checkGfn(gfn)
    const pt = this.walk(gfn, false)
    if (typeof pt !== "number" || pt < 0) return undefined
    const lo = this.dv.getUint32(pt * FRAME_SIZE + (gfn & 0x1ff) * 8, true)
    if ((lo & 7) === 0) return undefined
    return { frame: (lo & ADDRESS) >>> 12, perms: lo & 7, accessed: (lo & ACCESSED) !== 0, dirty: (lo & DIRTY) !== 0 }
  }

  /** Mapped guest frames. */
  get mappedCount(): number {
    return this.leaves.size
  }

  /** The gfn whose leaf maps `frame`, if any (what must be unmapped before the frame is freed). */
  gfnOf(frame: number): number | undefined {
    return this.leaves.get(frame)
  }

  /** Every mapping as [frame, gfn] pairs (invariant checks). */
  mappings(): ReadonlyArray<readonly [frame: number, gfn: number]> {
    return [...this.leaves]
  }

  /** Every page-table frame, PML4 first. */
  tableFrames(): ReadonlyArray<number> {
    return [...this.tables]
  }

  /** The pool was released: the tables are free memory now; any further use is a bug. */
  retire(): void {
    this.dead = true
  }

  /**
   * The PT frame for `gfn`, allocating missing levels when `create` (an
   * allocation error stops the walk; tables made so far stay, linked and
   * empty). Without `create`, -1 when a level is missing.
   */
  private walk(gfn: number, create: boolean): number | AllocationError {
    let table = this.root
    const indices = [0, (gfn >>> 18) & 3, (gfn >>> 9) & 0x1ff]
    for (const index of indices) {
      const addr = table * FRAME_SIZE + index * 8
      const lo = this.dv.getUint32(addr, true)
      if ((lo & 7) !== 0) {
        table = (lo & ADDRESS) >>> 12
        continue
      }
      if (!create) return -1
      const next = this.source.allocateTable()
      if (typeof next !== "number") return next
      this.tables.add(next)
      this.write(addr, next * FRAME_SIZE + EPT_RWX)
      table = next
    }
    return table
  }

  private write(addr: number, lo: number): void {
    this.dv.setUint32(addr, lo >>> 0, true)
    this.dv.setUint32(addr + 4, 0, true)
  }

  private alive(): void {
    if (this.dead) throw new MemoryInvariantError(`VM ${this.source.vm}: EPT used after its pool was released`)
  }
}

const checkGfn = (gfn: number): void => {
  if (!Number.isInteger(gfn) || gfn < 0 || gfn >= GFN_LIMIT)
    throw new MemoryInvariantError(`gfn ${gfn} is outside the 32-bit guest-physical space`)
}
