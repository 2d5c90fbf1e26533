/**
 * The `pv` execution engine: paravirtualization as Xen did it on x86-32
 * before hardware assist (Barham et al., "Xen and the Art of
 * Virtualization", SOSP 2003, section 2): the guest kernel is *built* to
 * run at ring 1 on a pCPU without VT-x and never runs a privileged
 * instruction; it calls the hypervisor with hypercalls (hypercalls.ts).
 * docs/pv.md is the guest's side.
 *
 * Unlike `bt`, the guest's state is the pCPU's state: its own CS, SS and
 * data segments (the flat selectors of the hypervisor's GDT, segments.ts),
 * ring 1 or 3. What the hypervisor owns while it runs (Intel SDM Vol. 3A
 * 2.5 control registers, 5.x protection, 6.12 interrupt handling):
 *
 *   GDTR, IDTR, TR   the hypervisor's (region.ts); TSS.SS1:ESP1 = the
 *                    guest's kernel stack (stack_switch)
 *   CR3              the shadow root of the guest's page directory (its
 *                    tables hold pseudo-physical frames: auto-translated)
 *   CR0              PE | PG | WP and the guest's FPU bits; CR4 = 0
 *   EFLAGS           IOPL 0 (no port, no CLI/STI for the guest), IF = 1;
 *                    the guest's "IF" is evtchn_upcall_mask in shared_info
 *   events           `hostTraps`: every exception and INT n returns here,
 *                    except INT 0x80 when the guest's trap table lets ring
 *                    3 raise it without masking events -- then the pCPU's
 *                    IDT gate goes straight to the guest's handler (Xen's
 *                    fast system call, init_int80_direct_trap)
 *
 * What comes back: INT 0x82 from ring 1 is a hypercall; a hidden page fault
 * fills the shadow; every other exception or INT n is *bounced* to the
 * handler in the guest's trap table with the frame a ring-1 handler would
 * get from the hardware (on the stack_switch stack when it came from ring
 * 3); a page fault's address goes to vcpu_info.arch.cr2. A pending event
 * with events unmasked enters the guest's event callback the same way
 * (the upcall).
 */
import type { Cpu } from "../../../hw/cpu/cpu.ts"
import { EventKind } from "../../../hw/cpu/interrupts.ts"
import { CR0_EM, CR0_ET, CR0_MP, CR0_NE, CR0_PE, CR0_PG, CR0_TS, CR0_WP } from "../../../hw/cpu/regs.ts"
import { type CpuState, Flag, RunExit } from "../../../hw/cpu/state.ts"
import { ActivityState, cloneGuestRegisters, copyRegisterFile, type Vmcs } from "../../../hw/cpu/vmx/vmcs.ts"
import { End, type ExitAction, type ExitContext, Halt, Resume, Yield } from "../../exits/types.ts"
import type { ExecutionEngine } from "../engine.ts"
import { runUntilTrap } from "../host-traps.ts"
import type { HwEngineHost } from "../hw.ts"
import { HYPERCALL_VECTOR, TI_DPL_MASK, TI_MASK_EVENTS, VcpuInfo, VIRQ_TIMER } from "./abi.ts"
import type { PvDomain } from "./domain.ts"
import { GuestVirtual } from "./guest-virtual.ts"
import { hypercall, type PvVcpu, type TrapEntry, trapAllowed } from "./hypercalls.ts"
import { PV_GDT_LIMIT, PV_GDT_LINEAR, PV_IDT_LIMIT, PV_IDT_LINEAR } from "./region.ts"
import { flatSegment } from "./segments.ts"

const PF = 14
const GP = 13
const SYSCALL_VECTOR = 0x80
/** The same hidden fault this many times in a row, with no instruction retired between, is a bug, not progress. */
const HIDDEN_RETRIES = 16
const CR0_GUEST = CR0_MP | CR0_EM | CR0_TS | CR0_NE | CR0_ET
const EXCEPTION_NAMES = [
  "#DE",
  "#DB",
  "NMI",
  "#BP",
  "#OF",
  "#BR",
  "#UD",
  "#NM",
  "#DF",
  "",
  "#TS",
  "#NP",
  "#SS",
  "#GP",
  "#PF"
]
const TSS_SELECTOR = 0xe010

/** What the engine needs of the VM and machine besides the domain. */
export interface PvCosts {
  /** The hypervisor's work per hypercall (cost profile `hypercall`). */
  readonly hypercall: number
  /** Cycles -> the VM's ns (for the guest's system time). */
  readonly nsOf: (cycles: number) => number
}

export class PvEngine implements ExecutionEngine, PvVcpu {
  readonly domain: PvDomain
  readonly index: number
  readonly memory: GuestVirtual
  readonly trapTable: Array<TrapEntry | undefined> = new Array<TrapEntry | undefined>(256).fill(undefined)
  kernelStack: { ss: number; esp: number } | undefined = undefined
  eventCallback: { cs: number; eip: number } | undefined = undefined
  failsafeCallback: { cs: number; eip: number } | undefined = undefined
  timerDeadline = Number.POSITIVE_INFINITY
  private readonly vmcs: Vmcs
  private readonly hooks: HwEngineHost
  private readonly costs: PvCosts
  private readonly phys: CpuState
  private tscBase = 0
  private cpu: Cpu | undefined
  /** INT 0x80 goes straight to the guest (its trap table lets ring 3 raise it). */
  private directSyscall = false
  private lastFault = { eip: -1, address: -1, instructions: -1, count: 0 }
  private readonly counters = {
    pv_hypercalls: 0,
    pv_bounced_traps: 0,
    pv_upcalls: 0
  }

  constructor(domain: PvDomain, context: ExitContext, hooks: HwEngineHost, costs: PvCosts) {
    this.domain = domain
    this.index = context.vcpu
    this.vmcs = context.vmcs
    this.hooks = hooks
    this.costs = costs
    this.memory = new GuestVirtual(domain.guest)
    this.phys = cloneGuestRegisters(context.vmcs.guest.regs)
  }

  stats(): Readonly<Record<string, number>> {
    return this.index === 0 ? { ...this.counters, ...this.domain.stats } : { ...this.counters }
  }

  /** The guest's system time (ns) now: its TSC converted at the machine's clock. */
  now(): number {
    const cpu = this.cpu
    return this.costs.nsOf(cpu === undefined ? 0 : cpu.cycles + this.tscBase)
  }

  trapTableChanged(): void {
    const entry = this.trapTable[SYSCALL_VECTOR]
    // as Xen's init_int80_direct_trap: a gate cannot mask events, so an entry asking for that is bounced instead
    this.directSyscall =
      entry !== undefined && (entry.flags & TI_DPL_MASK) === 3 && (entry.flags & TI_MASK_EVENTS) === 0
    this.domain.region.setDirectGate(
      SYSCALL_VECTOR,
      this.directSyscall && entry !== undefined ? { cs: entry.cs, eip: entry.address } : undefined
    )
  }

  /** The VM was reset: the domain starts over from the builder's state (vCPU 0 resets what the vCPUs share). */
  reset(): void {
    this.trapTable.fill(undefined)
    this.kernelStack = undefined
    this.eventCallback = undefined
    this.failsafeCallback = undefined
    this.timerDeadline = Number.POSITIVE_INFINITY
    this.trapTableChanged()
    if (this.index === 0) this.domain.reset()
  }

  /** The vCPU loop's clock tick: the one-shot timer fires VIRQ_TIMER when due. Returns the next deadline. */
  tick(now: number): number {
    if (this.timerDeadline <= now) {
      this.timerDeadline = Number.POSITIVE_INFINITY
      this.domain.raise(this.domain.virqPort(this.index, VIRQ_TIMER))
    }
    return this.timerDeadline
  }

  /** An upcall is due (wakes a blocked vCPU). */
  eventPending(): boolean {
    return this.eventCallback !== undefined && this.domain.upcallDeliverable(this.index)
  }

  run(cpu: Cpu, cycles: number, guestTsc: number): ExitAction | undefined {
    const deadline = cpu.cycles + cycles
    this.cpu = cpu
    this.tscBase = guestTsc - cpu.cycles
    while (cpu.cycles < deadline) {
      if (this.eventPending()) {
        this.counters.pv_upcalls++
        this.vmcs.guest.activityState = ActivityState.Active
        const failed = this.bounce(cpu, "the event upcall", this.eventCallback!, -1, true, this.vmcs.guest.regs.eip)
        if (failed !== undefined) return failed
      }
      if (this.vmcs.guest.activityState !== ActivityState.Active) return undefined
      const action = this.runOnPcpu(cpu, deadline)
      if (action !== undefined) return action
    }
    return undefined
  }

  // ---- on the pCPU ----

  private runOnPcpu(cpu: Cpu, deadline: number): ExitAction | undefined {
    const v = this.vmcs.guest.regs
    const root = this.domain.paging.activate(v.cr0, v.cr3, v.cr4)
    if (typeof root !== "number")
      return End({ _tag: "Failed", message: `pv: no memory for shadow page tables: ${root.message}` })
    this.enter(cpu, root)
    for (;;) {
      const exit = runUntilTrap(cpu, deadline, this.hooks.retired)
      if (exit === RunExit.Budget) {
        this.leave(cpu)
        return undefined
      }
      if (exit !== RunExit.Trap) {
        this.leave(cpu)
        return End({ _tag: "Failed", message: `pv: the pCPU stopped unexpectedly (run exit ${exit})` })
      }
      cpu.cycles += 2 * cpu.eventCost // into the hypervisor through its IDT, and back
      if (cpu.trapKind === EventKind.Exception && cpu.trapVector === PF && this.hiddenFault(cpu)) continue
      return this.trap(cpu)
    }
  }

  /** A #PF the shadow fills without the guest knowing: true if the pCPU can go on. */
  private hiddenFault(cpu: Cpu): boolean {
    const address = cpu.cr2 >>> 0
    const eip = cpu.eip >>> 0
    const last = this.lastFault
    // the same fault right after its fill, nothing retired in between: the fill did not help
    const again = last.eip === eip && last.address === address && last.instructions === cpu.instructions
    if (again && last.count >= HIDDEN_RETRIES) return false
    const error = cpu.trapError
    const outcome = this.domain.paging.pageFault(address, (error & 2) !== 0, (error & 4) !== 0)
    if (outcome.kind !== "hidden") {
      this.pageFault = outcome
      last.count = 0
      return false
    }
    last.eip = eip
    last.address = address
    last.instructions = cpu.instructions
    last.count = again ? last.count + 1 : 1
    cpu.flushTlb(false)
    return true
  }

  private pageFault: ReturnType<PvDomain["paging"]["pageFault"]> | undefined = undefined

  /** Every other trap: the state goes back to the vCPU record and the hypervisor acts on it. */
  private trap(cpu: Cpu): ExitAction | undefined {
    const kind = cpu.trapKind
    const vector = cpu.trapVector
    const error = cpu.trapError
    const cpl = cpu.cpl
    const faultEip = cpu.eip >>> 0
    const intEip = cpu.startEip >>> 0
    const cr2 = cpu.cr2 >>> 0
    this.leave(cpu)
    const v = this.vmcs.guest.regs
    if (kind === EventKind.External) return Yield
    if (kind === EventKind.Software) {
      if (vector === HYPERCALL_VECTOR && cpl === 1) return this.hypercall(cpu)
      // INT n: the trap table's DPL decides, as an IDT gate's would (SDM 3A 6.12.1.1); else #GP(vector << 3 | 2)
      const entry = this.trapTable[vector]
      if (trapAllowed(entry, cpl)) return this.reflect(cpu, vector, entry, -1, v.eip)
      return this.reflect(cpu, GP, this.trapTable[GP], (vector << 3) | 2, intEip)
    }
    if (vector === PF) {
      const outcome = this.pageFault ?? { kind: "recurring" as const }
      this.pageFault = undefined
      let code: number
      switch (outcome.kind) {
        case "true":
          code = outcome.errorCode
          break
        case "traced":
          // a write to a frame in use as a page table: read-only to a PV guest (mmu_update is the way)
          code = 1 | 2 | (cpl === 3 ? 4 : 0)
          break
        case "mmio":
        case "monitor":
          code = error & 6
          break
        case "no-memory":
          return End({ _tag: "Failed", message: `pv: no memory for shadow page tables: ${outcome.error.message}` })
        default:
          return End({
            _tag: "Failed",
            message: `pv: the page fault at 0x${cr2.toString(16)} (EIP 0x${faultEip.toString(16)}) keeps recurring`
          })
      }
      const address = outcome.kind === "true" ? outcome.cr2 : cr2
      v.cr2 = address
      this.domain.guest.writeValue(this.domain.vcpuInfo(this.index) + VcpuInfo.arch_cr2, 4, address)
      return this.reflect(cpu, PF, this.trapTable[PF], code, faultEip)
    }
    return this.reflect(cpu, vector, this.trapTable[vector], error, faultEip)
  }

  private hypercall(cpu: Cpu): ExitAction | undefined {
    this.counters.pv_hypercalls++
    cpu.cycles += this.costs.hypercall
    const v = this.vmcs.guest.regs
    this.memory.cr3 = v.cr3
    const outcome = hypercall(this, v)
    this.hooks.afterExit()
    if (outcome === "resume") return Resume
    if (outcome === "yield") return Yield
    if (outcome === "block") return Halt
    return End(outcome.end)
  }

  /** Deliver `vector` to its trap-table handler, or end the VM when the guest has none. */
  private reflect(
    cpu: Cpu,
    vector: number,
    entry: TrapEntry | undefined,
    error: number,
    returnEip: number
  ): ExitAction | undefined {
    const v = this.vmcs.guest.regs
    if (entry === undefined) {
      const name = EXCEPTION_NAMES[vector] || `vector ${vector}`
      return End({
        _tag: "Failed",
        message: `pv: ${name} at EIP 0x${returnEip.toString(16)} (ring ${v.cs.selector & 3}), and the guest's trap table has no handler for it`
      })
    }
    this.counters.pv_bounced_traps++
    const failed = this.bounce(
      cpu,
      EXCEPTION_NAMES[vector] || `vector ${vector}`,
      { cs: entry.cs, eip: entry.address },
      error,
      (entry.flags & TI_MASK_EVENTS) !== 0,
      returnEip
    )
    this.hooks.afterExit()
    return failed ?? Resume
  }

  /**
   * Enter a ring-1 handler of the guest as the hardware would through a
   * gate (SDM 3A 6.12.1): from ring 3 on the stack_switch stack with SS and
   * ESP pushed, then EFLAGS (IF = !event mask), CS (bits 16-23: the saved
   * event mask, as Xen stores it), EIP and the error code if any.
   */
  private bounce(
    cpu: Cpu,
    what: string,
    handler: { readonly cs: number; readonly eip: number },
    error: number,
    maskEvents: boolean,
    returnEip: number
  ): ExitAction | undefined {
    const v = this.vmcs.guest.regs
    const d = this.domain
    const fromUser = (v.cs.selector & 3) === 3
    let ss = v.ss.selector
    let esp = v.esp
    if (fromUser) {
      if (this.kernelStack === undefined)
        return End({
          _tag: "Failed",
          message: `pv: ${what} from ring 3, and the guest never set a kernel stack (stack_switch)`
        })
      ss = this.kernelStack.ss
      esp = this.kernelStack.esp
    }
    const mask = d.upcallMask(this.index)
    const eflags = ((v.eflags & ~Flag.IF) | (mask === 0 ? Flag.IF : 0)) >>> 0
    const words = fromUser
      ? [v.ss.selector, v.esp, eflags, v.cs.selector | (mask << 16), returnEip]
      : [eflags, v.cs.selector | (mask << 16), returnEip]
    if (error >= 0) words.push(error)
    const frame = new Uint8Array(words.length * 4)
    const dv = new DataView(frame.buffer)
    // the last word pushed is at the lowest address
    for (const [i, word] of words.entries()) dv.setUint32((words.length - 1 - i) * 4, word >>> 0, true)
    const top = (esp - frame.length) >>> 0
    this.memory.cr3 = v.cr3
    if (!this.memory.write(top, frame))
      return End({
        _tag: "Failed",
        message: `pv: cannot deliver ${what}: the guest's kernel stack at 0x${top.toString(16)} is not writable`
      })
    if (fromUser) v.ss = flatSegment(ss)!
    v.esp = top
    v.cs = flatSegment(handler.cs)!
    v.eip = handler.eip >>> 0
    v.eflags = (v.eflags & ~(Flag.TF | Flag.NT | Flag.VM | Flag.RF)) >>> 0
    if (maskEvents) d.setUpcallMask(this.index, true)
    cpu.cycles += cpu.eventCost
    return undefined
  }

  // ---- pCPU state <-> the vCPU's record ----

  private enter(cpu: Cpu, root: number): void {
    const v = this.vmcs.guest.regs
    const p = this.phys
    copyRegisterFile(v, p)
    p.eflags = ((v.eflags & ~(Flag.IOPL | Flag.VM | Flag.NT | Flag.VIF | Flag.VIP)) | Flag.IF | 2) >>> 0
    p.ldtr.selector = 0
    p.ldtr.base = 0
    p.ldtr.limit = 0
    p.ldtr.access = 0x10000
    p.tr.selector = TSS_SELECTOR
    p.tr.base = this.domain.region.tss(this.index)
    p.tr.limit = 0x67
    p.tr.access = 0x8b
    p.gdtr.base = PV_GDT_LINEAR
    p.gdtr.limit = PV_GDT_LIMIT
    p.idtr.base = PV_IDT_LINEAR
    p.idtr.limit = PV_IDT_LIMIT
    p.cr0 = ((v.cr0 & CR0_GUEST) | CR0_PE | CR0_PG | CR0_WP) >>> 0
    p.cr2 = v.cr2
    p.cr3 = root >>> 0
    p.cr4 = 0
    p.msr.apicBase = v.msr.apicBase
    p.msr.sysenterCs = 0
    p.msr.sysenterEsp = 0
    p.msr.sysenterEip = 0
    p.halted = false
    p.a20 = true
    cpu.loadRegisters(p)
    cpu.hostTraps = true
    cpu.directSoftwareVector = this.directSyscall ? SYSCALL_VECTOR : -1
    cpu.tscOffset = this.tscBase
    cpu.flushTlb(false)
  }

  /** The guest's registers and segments come back (everything else on the pCPU is the hypervisor's). */
  private leave(cpu: Cpu): void {
    cpu.storeRegisters(this.phys)
    copyRegisterFile(this.phys, this.vmcs.guest.regs)
    cpu.hostTraps = false
    cpu.directSoftwareVector = -1
    cpu.flushTlb(false)
  }
}
