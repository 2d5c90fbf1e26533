/**
 * The per-VM half of the `bt` monitor: what its vCPUs share -- the monitor
 * region (monitor-region.ts), the translation cache (translation-cache.ts),
 * the shadow page tables (vmm/shadow/shadow-mmu.ts) -- and the coherency
 * rules between them and guest memory (Adams & Agesen 2006 sections 3.1
 * "adaptive binary translation" / tracing, 3.2 shadow page tables):
 *
 *   - every guest frame with translated code is write-protected in the
 *     shadows (ShadowMmu.protectCode); a guest write to it (a traced fault,
 *     or a write the monitor itself performs while emulating) drops the
 *     frame's translations (self-modifying code works) and the protection;
 *   - a guest write to a traced page-table page zaps the shadow entries
 *     derived from each 4-byte entry it touched;
 *   - when the TC is full it is flushed and every code frame unprotected.
 *
 * Writes the monitor makes on the guest's behalf (the instruction
 * emulator, event delivery), virtio DMA and the image reloaded on reset all
 * reach `guestWrote` through GuestPhysical.onWrite; the shadow side is
 * vmm/shadow/vmx-shadow-paging.ts, shared with `hw --ept off`.
 */
import type { AllocationError } from "../../../kernel/memory/errors.ts"
import type { InstructionEmulator } from "../../emulator.ts"
import type { GuestPhysical } from "../../guest-memory.ts"
import { VmShadowPaging } from "../../shadow/vmx-shadow-paging.ts"
import { MONITOR_PDE_INDEX, type MonitorFrames, MonitorRegion } from "./monitor-region.ts"
import type { Block } from "./translation-cache.ts"
import { TranslationCache } from "./translation-cache.ts"
import { type CodeReader, translateBlock } from "./translator.ts"

export interface BtOptions {
  /** Translation-cache bytes (default 256 KiB). */
  readonly tcBytes?: number
  /**
   * false: the `trap` demonstration -- guest kernel code runs deprivileged
   * at ring 1 *without* translation (pure trap-and-emulate on x86).
   */
  readonly translate?: boolean
}

export const DEFAULT_TC_BYTES = 256 * 1024

export class BtMonitor {
  readonly region: MonitorRegion
  readonly tc: TranslationCache
  /** The VM's shadow page tables (the monitor's PDE in every root). */
  readonly paging: VmShadowPaging
  readonly guest: GuestPhysical
  /** Machine RAM (guest frames are read from it directly by the translator). */
  readonly ram: Uint8Array
  readonly emulator: InstructionEmulator
  readonly translate: boolean

  private constructor(
    region: MonitorRegion,
    paging: VmShadowPaging,
    guest: GuestPhysical,
    emulator: InstructionEmulator,
    translate: boolean,
    ram: Uint8Array
  ) {
    this.region = region
    this.ram = ram
    this.tc = new TranslationCache(region)
    this.paging = paging
    this.guest = guest
    this.emulator = emulator
    this.translate = translate
    const shadowWrote = guest.onWrite
    guest.onWrite = (gpa, size) => {
      shadowWrote?.(gpa, size)
      this.codeWritten(gpa, size)
    }
  }

  get shadow() {
    return this.paging.mmu
  }

  static create(
    guest: GuestPhysical,
    frames: MonitorFrames,
    emulator: InstructionEmulator,
    vcpus: number,
    options: BtOptions = {}
  ): BtMonitor | AllocationError {
    const region = MonitorRegion.create(frames, vcpus, options.tcBytes ?? DEFAULT_TC_BYTES)
    if (!(region instanceof MonitorRegion)) return region
    const paging = new VmShadowPaging(guest, frames, { monitorPde: { index: MONITOR_PDE_INDEX, entry: region.pde } })
    return new BtMonitor(region, paging, guest, emulator, options.translate ?? true, frames.ram)
  }

  /**
   * The guest's memory was written behind the shadows' back (`size` bytes at
   * `gpa`): translations of code bytes it overwrote are dropped, with the
   * write protection of their frames.
   */
  codeWritten(gpa: number, size: number): void {
    const first = gpa >>> 12
    const last = (gpa + size - 1) >>> 12
    for (let gfn = first; gfn <= last; gfn++) {
      if (!this.tc.overlapsCode(gfn, gpa, size)) continue
      this.tc.invalidateFrame(gfn)
      this.shadow.unprotectCode(gfn)
    }
  }

  /** Translate the block at guest linear `eip` (flushing the TC when full); undefined if its first bytes cannot be fetched. */
  translateAt(eip: number, code: CodeReader): Block | undefined {
    let result = translateBlock(this.tc, eip, code)
    if (result === "full") {
      for (const gfn of this.tc.flush()) this.shadow.unprotectCode(gfn)
      result = translateBlock(this.tc, eip, code)
    }
    if (typeof result === "string") return undefined
    for (const gfn of result.gfns) this.shadow.protectCode(gfn)
    return result
  }

  /** The translation cache's counters (the shadow's are the VM's: VirtualMachine.engineStats). */
  stats(): Record<string, number> {
    return { ...this.tc.stats }
  }
}
