/**
 * The translation cache (TC) of a `bt` VM: translated basic blocks in the
 * monitor region's TC pages (monitor-region.ts), and what the monitor
 * needs to find its way back from a TC address to the guest:
 *
 *   - blocks by (guest linear EIP, guest frame): a block is valid only for
 *     the mapping it was translated under, so the lookup key includes the
 *     guest frame the EIP maps to now (QEMU's TBs are keyed by physical PC
 *     the same way);
 *   - per block, each TC instruction start -> the guest EIP whose state it
 *     stands for (so a fault, a trap or the end of a slice at any TC
 *     instruction boundary is a precise guest state);
 *   - callout sites: TC address after an `int CALLOUT_VECTOR` -> what it is.
 *
 * Coherency: blocks are indexed by the guest frames their code came from,
 * and each such frame has a bitmap of its translated bytes, so a write to
 * data sharing a page with code keeps the translations (QEMU's SMC code
 * bitmap); a write over translated bytes calls `invalidateFrame`, which turns each such block's entry into a lookup callout (so
 * chained jumps into it go back to the monitor) and drops it from the index.
 * Eviction: when the TC is full the whole cache is flushed and translation
 * starts over (the policy of QEMU's tb_flush and of early VMware monitors:
 * simple, and translations are cheap to redo).
 */
import type { MonitorRegion } from "./monitor-region.ts"
import { TC_LINEAR } from "./monitor-region.ts"

/** The software-interrupt vector translated code uses to call the monitor. */
export const CALLOUT_VECTOR = 0xf1

export interface Block {
  /** Guest linear EIP of the first instruction. */
  readonly guestEip: number
  /** Guest frames the code was read from (the first; a straddling last instruction adds the next). */
  readonly gfns: ReadonlyArray<number>
  readonly tcStart: number
  tcEnd: number
  /** TC address of every TC instruction start, ascending, and the guest EIP each stands for. */
  readonly tcAddrs: Array<number>
  readonly guestEips: Array<number>
  /** Guest code bytes translated: (gfn, first offset, end offset) triples. */
  readonly ranges: Array<number>
  /** Guest instructions in the block. */
  guestInstructions: number
  valid: boolean
}

export type Callout =
  /** A sensitive/privileged/indirect instruction at guestEip: carried out on the virtual CPU. */
  | { readonly kind: "emulate"; readonly guestEip: number; readonly mnemonic: string }
  /** An exit of `block` to guest `target` through the rel32 at `patchSite` (chained when possible). */
  | { readonly kind: "jump"; readonly target: number; readonly patchSite: number; readonly block: Block }
  /** A near RET at guestEip: pop the guest return address (and `release` bytes), look it up, go on there. */
  | { readonly kind: "ret"; readonly guestEip: number; readonly release: number }
  /** The entry of an invalidated block: look guestEip up again. */
  | { readonly kind: "lookup"; readonly guestEip: number }

export interface TcStats {
  blocks_translated: number
  guest_instructions_translated: number
  tc_lookups: number
  tc_hits: number
  chained_jumps: number
  invalidations: number
  tc_flushes: number
}

export class TranslationCache {
  readonly stats: TcStats = {
    blocks_translated: 0,
    guest_instructions_translated: 0,
    tc_lookups: 0,
    tc_hits: 0,
    chained_jumps: 0,
    invalidations: 0,
    tc_flushes: 0
  }
  private readonly region: MonitorRegion
  private next = TC_LINEAR
  private readonly end: number
  private readonly byKey = new Map<number, Block>()
  private readonly byFrame = new Map<number, Set<Block>>()
  /** Every block in the TC, in TC address order (bump allocation). */
  private blocks: Array<Block> = []
  private readonly callouts = new Map<number, Callout>()
  /** Per guest frame with translations: which of its bytes are translated code (QEMU's SMC code bitmap). */
  private readonly codeBytes = new Map<number, Uint8Array>()
  /** Bumped by every flush and invalidation: a saved TC resume address is good only within one generation. */
  generation = 0

  constructor(region: MonitorRegion) {
    this.region = region
    this.end = TC_LINEAR + region.tcBytes
  }

  static key(linear: number, gfn: number): number {
    return (linear >>> 0) * 1048576 + gfn
  }

  lookup(linear: number, gfn: number): Block | undefined {
    this.stats.tc_lookups++
    const block = this.byKey.get(TranslationCache.key(linear, gfn))
    if (block !== undefined) this.stats.tc_hits++
    return block
  }

  /** Bytes left in the TC. */
  get free(): number {
    return this.end - this.next
  }

  /** Start a block at the current TC position. */
  begin(guestEip: number, gfns: ReadonlyArray<number>): Block {
    return {
      guestEip: guestEip >>> 0,
      gfns,
      tcStart: this.next,
      tcEnd: this.next,
      tcAddrs: [],
      guestEips: [],
      ranges: [],
      guestInstructions: 0,
      valid: true
    }
  }

  emit8(block: Block, value: number): void {
    this.region.write8(block.tcEnd, value & 0xff)
    block.tcEnd++
  }

  emit32(block: Block, value: number): void {
    for (let i = 0; i < 4; i++) this.emit8(block, value >>> (8 * i))
  }

  /** Record that the TC instruction starting now stands for guest EIP `guestEip`. */
  mark(block: Block, guestEip: number): void {
    block.tcAddrs.push(block.tcEnd)
    block.guestEips.push(guestEip >>> 0)
  }

  addCallout(afterInt: number, callout: Callout): void {
    this.callouts.set(afterInt, callout)
  }

  callout(afterInt: number): Callout | undefined {
    return this.callouts.get(afterInt)
  }

  /** The block is complete: index it. */
  commit(block: Block): void {
    this.next = block.tcEnd
    this.blocks.push(block)
    this.byKey.set(TranslationCache.key(block.guestEip, block.gfns[0]!), block)
    for (const gfn of block.gfns) {
      const set = this.byFrame.get(gfn)
      if (set === undefined) this.byFrame.set(gfn, new Set([block]))
      else set.add(block)
    }
    const r = block.ranges
    for (let i = 0; i < r.length; i += 3) {
      let bytes = this.codeBytes.get(r[i]!)
      if (bytes === undefined) {
        bytes = new Uint8Array(4096)
        this.codeBytes.set(r[i]!, bytes)
      }
      bytes.fill(1, r[i + 1]!, r[i + 2]!)
    }
    this.stats.blocks_translated++
    this.stats.guest_instructions_translated += block.guestInstructions
  }

  /** The guest EIP a TC instruction boundary stands for, or undefined if `tc` is not one. */
  guestEipAt(tc: number): number | undefined {
    const block = this.blockAt(tc)
    if (block === undefined) return undefined
    const addrs = block.tcAddrs
    let lo = 0
    let hi = addrs.length - 1
    while (lo <= hi) {
      const mid = (lo + hi) >> 1
      const a = addrs[mid]!
      if (a === tc) return block.guestEips[mid]
      if (a < tc) lo = mid + 1
      else hi = mid - 1
    }
    return undefined
  }

  /** The block whose TC bytes contain `tc`. */
  blockAt(tc: number): Block | undefined {
    const blocks = this.blocks
    let lo = 0
    let hi = blocks.length - 1
    while (lo <= hi) {
      const mid = (lo + hi) >> 1
      const b = blocks[mid]!
      if (tc < b.tcStart) hi = mid - 1
      else if (tc >= b.tcEnd) lo = mid + 1
      else return b
    }
    return undefined
  }

  /** Does guest frame `gfn` have translations? */
  hasFrame(gfn: number): boolean {
    const set = this.byFrame.get(gfn)
    return set !== undefined && set.size > 0
  }

  /** Does the guest write [gpa, gpa + length) inside frame `gfn` touch translated code bytes? */
  overlapsCode(gfn: number, gpa: number, length: number): boolean {
    const bytes = this.codeBytes.get(gfn)
    if (bytes === undefined) return false
    const from = Math.max(gpa, gfn * 4096) - gfn * 4096
    const to = Math.min(gpa + length, (gfn + 1) * 4096) - gfn * 4096
    for (let i = from; i < to; i++) if (bytes[i] !== 0) return true
    return false
  }

  /** Chain: point the rel32 at `patchSite` straight at `target`'s translation. */
  chain(patchSite: number, target: Block): void {
    const rel = (target.tcStart - (patchSite + 4)) | 0
    for (let i = 0; i < 4; i++) this.region.write8(patchSite + i, rel >>> (8 * i))
    this.stats.chained_jumps++
  }

  /**
   * Guest frame `gfn` was written: its blocks are invalid. Each one's entry
   * becomes `int CALLOUT` -> lookup, so a chained jump into it finds the
   * monitor. Returns the number of blocks dropped.
   */
  invalidateFrame(gfn: number): number {
    const set = this.byFrame.get(gfn)
    if (set === undefined) return 0
    this.byFrame.delete(gfn)
    this.codeBytes.delete(gfn)
    let dropped = 0
    for (const block of set) {
      if (!block.valid) continue
      block.valid = false
      dropped++
      this.byKey.delete(TranslationCache.key(block.guestEip, block.gfns[0]!))
      for (const other of block.gfns) if (other !== gfn) this.byFrame.get(other)?.delete(block)
      this.region.write8(block.tcStart, 0xcd)
      this.region.write8(block.tcStart + 1, CALLOUT_VECTOR)
      this.callouts.set(block.tcStart + 2, { kind: "lookup", guestEip: block.guestEip })
    }
    if (dropped > 0) {
      this.stats.invalidations += dropped
      this.generation++
    }
    return dropped
  }

  /** Empty the whole cache (it is full). Returns the guest frames that had translations. */
  flush(): Array<number> {
    const frames = [...this.byFrame.keys()]
    for (const block of this.blocks) block.valid = false
    this.byKey.clear()
    this.byFrame.clear()
    this.codeBytes.clear()
    this.blocks = []
    this.callouts.clear()
    this.next = TC_LINEAR
    this.generation++
    this.stats.tc_flushes++
    return frames
  }

  /** Is `linear` inside the TC? */
  contains(linear: number): boolean {
    return linear >= TC_LINEAR && linear < this.end
  }
}
