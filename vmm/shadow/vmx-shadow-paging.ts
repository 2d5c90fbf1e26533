/**
 * `hw` mode without EPT (`fibervisor boot --ept off`): VT-x as its first
 * generation shipped it (2005), before EPT, VPID and "unrestricted guest".
 * The guest's own page tables cannot be given to the pCPU (they hold
 * guest-physical addresses), so the VMM runs the guest on *shadow* page
 * tables (vmm/shadow/shadow-mmu.ts) and virtualizes the control registers
 * that choose them.
 *
 * References: Intel SDM Vol. 3C 25.6.3 (exception bitmap, #PF error-code
 * mask/match), 25.6.6 (CR0/CR4 guest/host masks and read shadows), 25.6.7
 * (CR3-target controls: none are used, every MOV to CR3 exits), 26.1.3
 * (MOV to/from CR3, MOV to CR0/CR4, INVLPG exiting), 26.3 (what a guest
 * reads and writes in host-owned bits), 27.3.1.1 (without unrestricted
 * guest CR0.PE and CR0.PG must be 1 at entry), 28.2.1 table 28-3 (CR-access
 * qualification); Adams & Agesen, ASPLOS 2006, section 4; KVM's shadow MMU
 * (arch/x86/kvm/mmu, vmx.c: cr0/cr4 guest-owned bits, ept=0 paths).
 *
 * Where the guest's CR0, CR3 and CR4 live. The vCPU's VMCS guest-state area
 * is the vCPU's architectural state record for every engine (vmm/engines/
 * engine.ts), so between entries it holds the guest's *own* CR0/CR3/CR4:
 * what the guest last loaded, what the instruction emulator, the loader,
 * INIT/SIPI and reset read and write, with no swapping anywhere else. Only
 * for the duration of one `vmenter` (`enter` / `leave` below, called by the
 * hw engine around it) do those fields hold what the pCPU must run with:
 *
 *   CR0 = guest CR0 | PE | PG | WP   (PE, PG: fixed to 1 without unrestricted
 *                                     guest; WP: the shadow needs it, so a
 *                                     supervisor write to a read-only leaf
 *                                     faults)
 *   CR3 = the shadow root of the guest's CR3 (switchCr3), or, with guest
 *         paging off, of the identity map (switchDirect)
 *   CR4 = guest CR4 without PSE and PGE (the shadow never uses 4 MiB or
 *         global pages)
 *   A20 = on (the mask would apply to *machine* addresses after the shadow
 *         walk; the guest's A20 is honoured only in emulated real mode)
 *
 * and the read shadows hold the guest's CR0 and CR4, so the masked bits
 * (CR0 PE/PG/WP, CR4 PSE/PGE) read back as the guest wrote them (SDM 3C
 * 26.3) while the other bits are the guest's own on the pCPU. At the exit
 * the guest's values come back: host-owned bits from before the entry,
 * guest-owned bits as the pCPU left them (CLTS, a MOV to CR0 that changed
 * only TS...). That is the mirror image of a real VMCS (where GUEST_CR3 is
 * the shadow root between entries and the VMM keeps the guest's CR3
 * elsewhere); it was chosen so that nothing but the engine ever sees a
 * shadow value.
 *
 * The VM's controls (vm.ts): CR3-load and CR3-store exiting (every MOV
 * to/from CR3 comes to the VMM), INVLPG exiting, the CR0/CR4 masks above, the
 * exception bitmap with only #PF (mask = match = 0: every #PF exits), no
 * secondary controls (no EPT, no VPID: the pCPU's TLB is flushed at every
 * entry, so no stale shadow translation survives an exit).
 *
 * One ShadowMmu per VM (its vCPUs share the shadows, as KVM's per-VM MMU);
 * its "current root" is whichever vCPU entered last, so every entry first
 * makes the entering vCPU's root current (`activate`: cheap when it already
 * is). Every write the VMM itself makes to guest RAM (the instruction
 * emulator: traced page-table writes, MMIO and string I/O; virtio DMA; the
 * image reloaded on reset) reaches `written` through GuestPhysical.onWrite,
 * and zaps the shadows derived from every 4-byte entry it touched: guest
 * page tables stay write-protected in every shadow, so the shadows are
 * always coherent with them (no unsync pages), and a MOV to CR3 of the
 * same value needs no flush.
 */
import { CR0_PE, CR0_PG, CR0_WP, CR4_PGE, CR4_PSE } from "../../hw/cpu/regs.ts"
import type { Vmcs } from "../../hw/cpu/vmx/vmcs.ts"
import type { AllocationError } from "../../kernel/memory/errors.ts"
import type { GuestPhysical } from "../guest-memory.ts"
import {
  type FaultOutcome,
  type GuestPagingControls,
  guestPhysicalShadow,
  type ShadowFrameSource,
  ShadowMmu,
  type ShadowMmuOptions
} from "./shadow-mmu.ts"

/** CR0 bits the VMM owns (guest/host mask): the guest's values are in the read shadow. */
export const CR0_HOST_OWNED = CR0_PE | CR0_PG | CR0_WP
/** CR4 bits the VMM owns: changing them changes how the guest's tables are read. */
export const CR4_HOST_OWNED = CR4_PSE | CR4_PGE

/** The identity root (guest paging off) in `VmShadowPaging.currentKey`. */
const DIRECT = -1

const snake = (name: string): string => name.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`)

/** The VM's shadow page tables: one ShadowMmu shared by its vCPUs. */
export class VmShadowPaging {
  readonly mmu: ShadowMmu
  /** Guest CR3 page (or DIRECT) of the MMU's current root as last activated; undefined: switch at the next use. */
  private currentKey: number | undefined = undefined
  private controls: GuestPagingControls | undefined = undefined
  /** The MMU itself is writing guest memory (A/D bits): not a write to zap for. */
  private quiet = false

  constructor(guest: GuestPhysical, frames: ShadowFrameSource, options: ShadowMmuOptions = {}) {
    this.mmu = new ShadowMmu(guestPhysicalShadow(guest), frames, options)
    guest.onWrite = (gpa, length) => this.written(gpa, length)
  }

  /**
   * Make the shadow for this paging state (a vCPU's CR0, CR3, CR4) the
   * MMU's current one: the identity root with paging off, else the root of
   * CR3 under the guest's CR0.WP and CR4.PSE (new controls flush every
   * shadow). Returns the machine CR3 the pCPU must load.
   */
  activate(cr0: number, cr3: number, cr4: number): number | AllocationError {
    const mmu = this.mmu
    let key = DIRECT
    if ((cr0 & CR0_PG) !== 0) {
      key = (cr3 >>> 12) & 0xfffff
      const wp = (cr0 & CR0_WP) !== 0
      const pse = (cr4 & CR4_PSE) !== 0
      if (this.controls === undefined || this.controls.cr0Wp !== wp || this.controls.cr4Pse !== pse) {
        this.controls = { cr0Wp: wp, cr4Pse: pse }
        mmu.setControls(this.controls)
      }
    }
    const current = mmu.shadowCr3
    if (current !== undefined && this.currentKey === key) return current
    const root = key === DIRECT ? mmu.switchDirect() : mmu.switchCr3(cr3)
    if (typeof root === "number") this.currentKey = key
    return root
  }

  /** A #PF on the current shadow (see ShadowMmu.handlePageFault); the MMU's own A/D writes are not zapped for. */
  pageFault(linear: number, write: boolean, user: boolean): FaultOutcome {
    this.quiet = true
    try {
      return this.mmu.handlePageFault(linear, { write, user })
    } finally {
      this.quiet = false
    }
  }

  /**
   * The VMM wrote [gpa, gpa + length) of guest RAM behind the shadows' back:
   * zap what was derived from every traced 4-byte entry in it.
   */
  written(gpa: number, length: number): void {
    if (this.quiet || length <= 0) return
    const mmu = this.mmu
    const end = gpa + length
    for (let page = gpa & ~0xfff; page < end; page += 0x1000) {
      if (!mmu.isTraced(page >>> 12)) continue
      const from = Math.max(page, gpa & ~3)
      const to = Math.min(page + 0x1000, end)
      for (let entry = from; entry < to; entry += 4) mmu.guestTableWrite(entry)
    }
  }

  /** Drop every shadow (the VM was reset): the next entry of each vCPU builds its root afresh. */
  flush(): void {
    this.mmu.flushAll()
    this.currentKey = undefined
  }

  /** The MMU's counters, named shadow_<counter> (shadow_hidden_faults, shadow_cr3_switches...). */
  stats(): Record<string, number> {
    const out: Record<string, number> = {}
    for (const [name, value] of Object.entries(this.mmu.stats)) out[`shadow_${snake(name)}`] = value
    return out
  }
}

/**
 * One vCPU's side: its CRs swapped in and out around vmenter, and the
 * shadow operations its exit handlers need.
 */
export class VcpuShadowPaging {
  readonly vm: VmShadowPaging
  private readonly vmcs: Vmcs
  /** The guest's values while the pCPU runs with the host's (between enter and leave). */
  private cr0 = 0
  private cr3 = 0
  private cr4 = 0
  private a20 = true
  /** The last hidden fault (guest EIP, linear address) and how many times in a row it came back. */
  private lastHidden = { eip: -1, linear: -1, count: 0 }

  constructor(vm: VmShadowPaging, vmcs: Vmcs) {
    this.vm = vm
    this.vmcs = vmcs
  }

  /**
   * Before vmenter: the shadow of the guest's paging state becomes current,
   * and the VMCS gets what the pCPU runs with (CR0, CR3, CR4, A20) and the
   * guest's CR0/CR4 as read shadows. Returns an error (and changes nothing)
   * when there is no machine frame for the shadow root.
   */
  enter(): AllocationError | undefined {
    const regs = this.vmcs.guest.regs
    const root = this.vm.activate(regs.cr0, regs.cr3, regs.cr4)
    if (typeof root !== "number") return root
    const controls = this.vmcs.controls
    this.cr0 = regs.cr0
    this.cr3 = regs.cr3
    this.cr4 = regs.cr4
    this.a20 = regs.a20
    controls.cr0ReadShadow = regs.cr0
    controls.cr4ReadShadow = regs.cr4
    regs.cr0 = (regs.cr0 | CR0_HOST_OWNED) >>> 0
    regs.cr3 = root
    regs.cr4 = (regs.cr4 & ~CR4_HOST_OWNED) >>> 0
    regs.a20 = true
    return undefined
  }

  /** After the VM exit: the guest's own CR0/CR3/CR4 (guest-owned bits as the pCPU left them) and A20. */
  leave(): void {
    const regs = this.vmcs.guest.regs
    regs.cr0 = ((this.cr0 & CR0_HOST_OWNED) | (regs.cr0 & ~CR0_HOST_OWNED)) >>> 0
    regs.cr3 = this.cr3
    regs.cr4 = ((this.cr4 & CR4_HOST_OWNED) | (regs.cr4 & ~CR4_HOST_OWNED)) >>> 0
    regs.a20 = this.a20
  }

  /** The guest's CR0/CR3/CR4 (in the VMCS) changed: make the shadow follow now (switch or flush). */
  follow(): AllocationError | undefined {
    const regs = this.vmcs.guest.regs
    const root = this.vm.activate(regs.cr0, regs.cr3, regs.cr4)
    return typeof root === "number" ? undefined : root
  }

  /**
   * A #PF exit at `linear` with the pCPU's error code. A hidden fault that
   * keeps coming back at the same instruction and address (it should not:
   * the fill makes the access succeed) is reported as `retry-exhausted` the
   * fourth time, so the caller emulates the instruction instead of looping.
   */
  pageFault(linear: number, errorCode: number): FaultOutcome | { readonly kind: "retry-exhausted" } {
    const outcome = this.vm.pageFault(linear, (errorCode & 2) !== 0, (errorCode & 4) !== 0)
    const last = this.lastHidden
    if (outcome.kind !== "hidden") {
      last.count = 0
      return outcome
    }
    const eip = this.vmcs.guest.regs.eip
    if (last.eip === eip && last.linear === linear >>> 0) {
      if (++last.count >= 3) {
        last.count = 0
        return { kind: "retry-exhausted" }
      }
    } else {
      last.eip = eip
      last.linear = linear >>> 0
      last.count = 0
    }
    return outcome
  }

  /** INVLPG `linear` (SDM 3A 4.10.4.1) on this vCPU's shadow. */
  invlpg(linear: number): void {
    const regs = this.vmcs.guest.regs
    if (typeof this.vm.activate(regs.cr0, regs.cr3, regs.cr4) === "number") this.vm.mmu.invlpg(linear)
  }
}
