/**
 * The `bt` execution engine: full virtualization of an unmodified guest on
 * a pCPU *without* the VT-x extension, as VMware's monitor did before
 * hardware assist (Adams & Agesen, "A Comparison of Software and Hardware
 * Techniques for x86 Virtualization", ASPLOS 2006, section 3).
 *
 * The guest's architectural state is *virtual*: it lives in the vCPU's
 * VMCS guest-state area (vmm/engines/engine.ts) and is what the guest sees
 * (CPL 0, its own IF, CR0/CR3/CR4, GDT/IDT/TR). The pCPU runs with the
 * monitor's state (Intel SDM Vol. 3A ch. 5 "Protection", 6.12 exception
 * and interrupt handling):
 *
 *   guest kernel (virtual CPL 0)  its *translated* code (translator.ts),
 *                                 at ring 1, CS = the translation cache's
 *                                 code segment, EIP in the TC
 *   guest user (virtual CPL 3)    its own code, directly, at ring 3
 *   always                        the monitor's GDT, IDT and TSS
 *                                 (monitor-region.ts), CR3 = the shadow
 *                                 page directory (vmm/shadow), CR0.WP = 1,
 *                                 data segments truncated below the monitor
 *                                 region, IOPL = 0, IF = 0 at ring 1
 *
 * Every event the pCPU raises returns here (`hostTraps`: the monitor's IDT
 * leads to the monitor). The monitor then
 *   - runs a callout of translated code: a sensitive instruction is carried
 *     out on the virtual CPU by the VM's instruction emulator (exact x86
 *     semantics against the guest's own tables); a direct-branch exit is
 *     looked up / translated and chained;
 *   - fills a hidden page fault in the shadow, or reflects a true one into
 *     the guest with CR2 and the error code;
 *   - otherwise (a #GP from a truncated segment or a segment load, an
 *     MMIO access, a write to a traced page, a guest fault) executes the
 *     faulting guest instruction in the emulator: what the emulator does is
 *     what the guest would have seen on real hardware, including its
 *     exception, which is then delivered through the *guest's* IDT
 *     (hw/cpu/interrupts.ts on the virtual state).
 *
 * Code the deprivileged scheme cannot run (real mode, virtual-8086 mode,
 * 16-bit code segments, CPL 1 or 2, a kernel code segment that is not flat)
 * is interpreted instruction by instruction by the emulator (VMware
 * translated it too; not modelled).
 * Guest single-stepping (EFLAGS.TF) and debug registers are not modelled.
 *
 * `trap` mode (BtOptions.translate = false) is the same monitor without the
 * translator: guest kernel code runs directly at ring 1 and the monitor
 * relies on traps alone -- which x86 does not give for POPF, PUSHF, SGDT,
 * SMSW, CPUID, MOV from CS and the other sensitive-but-unprivileged
 * instructions (Robin & Irvine 2000; Popek & Goldberg 1974). It exists to
 * show why `bt` translates (test/vmm/bt/trap-demo.test.ts).
 */
import type { Cpu } from "../../../hw/cpu/cpu.ts"
import { FAULT } from "../../../hw/cpu/fault.ts"
import { EventKind, eventKindOf } from "../../../hw/cpu/interrupts.ts"
import { CR0_PE, CR0_PG, ESP, SS } from "../../../hw/cpu/regs.ts"
import { type CpuState, Flag, RunExit } from "../../../hw/cpu/state.ts"
import { INTR_INFO_ERROR_CODE, INTR_INFO_VALID } from "../../../hw/cpu/vmx/exit-reasons.ts"
import { ActivityState, cloneGuestRegisters, Interruptibility, type Vmcs } from "../../../hw/cpu/vmx/vmcs.ts"
import { End, type ExitAction, type ExitContext, Halt, Resume, Yield } from "../../exits/types.ts"
import type { FaultOutcome } from "../../shadow/shadow-mmu.ts"
import type { ExecutionEngine } from "../engine.ts"
import { runUntilTrap } from "../host-traps.ts"
import type { HwEngineHost } from "../hw.ts"
import type { BtMonitor } from "./monitor.ts"
import { enterPcpu, savePcpu } from "./pcpu-state.ts"
import { type Block, CALLOUT_VECTOR } from "./translation-cache.ts"
import type { CodeReader } from "./translator.ts"
import { deliverToGuest } from "./virtual-events.ts"

const PF = 14
/** The same hidden fault at the same place this many times in a row: emulate the instruction instead. */
const HIDDEN_RETRIES = 4

/** Counters of one vCPU's monitor (the callouts by kind are named `callout_<mnemonic>`). */
export interface BtVcpuStats {
  monitor_entries: number
  emulated_instructions: number
  interpreted_instructions: number
  reflected_exceptions: number
  readonly callouts: Map<string, number>
}

export class BtEngine implements ExecutionEngine {
  readonly monitor: BtMonitor
  readonly vcpu: number
  readonly counters: BtVcpuStats = {
    monitor_entries: 0,
    emulated_instructions: 0,
    interpreted_instructions: 0,
    reflected_exceptions: 0,
    callouts: new Map()
  }
  private readonly vmcs: Vmcs
  private readonly context: ExitContext
  private readonly hooks: HwEngineHost
  /** The pCPU view of the virtual state (reused). */
  private readonly phys: CpuState
  private readonly code: CodeReader
  /** The guest frame the code reader last read, and its machine address (-1: not backed, reads as zeros). */
  private codeGfn = -1
  private codeBase = -1
  /** guest TSC = pCPU cycles + tscBase, for the slice being run. */
  private tscBase = 0
  private lastFault = { eip: -1, address: -1, count: 0 }
  /** The shadow's verdict on the #PF fastTrap could not handle, for slowTrap. */
  private faultOutcome: FaultOutcome | undefined = undefined
  /** Where the last slice stopped inside the TC, to resume there if nothing changed. */
  private resume = { guestEip: -1, tc: 0, generation: -1, cr3: 0 }

  constructor(monitor: BtMonitor, context: ExitContext, hooks: HwEngineHost) {
    this.monitor = monitor
    this.vcpu = context.vcpu
    this.vmcs = context.vmcs
    this.context = context
    this.hooks = hooks
    this.phys = cloneGuestRegisters(context.vmcs.guest.regs)
    this.code = {
      frameOf: (linear) => this.codeFrame(linear),
      byte: (gpa) => {
        // straight from the backing machine frame (one frame cached: a block reads one or two pages)
        const gfn = gpa >>> 12
        if (gfn !== this.codeGfn) {
          const frame = monitor.guest.frame(gfn, false)
          this.codeBase = frame === undefined ? -1 : frame * 4096
          this.codeGfn = gfn
        }
        return this.codeBase < 0 ? 0 : monitor.ram[this.codeBase + (gpa & 0xfff)]!
      }
    }
  }

  stats(): Readonly<Record<string, number>> {
    const out: Record<string, number> = {
      monitor_entries: this.counters.monitor_entries,
      emulated_instructions: this.counters.emulated_instructions,
      interpreted_instructions: this.counters.interpreted_instructions,
      reflected_exceptions: this.counters.reflected_exceptions
    }
    for (const [kind, count] of this.counters.callouts) out[`callout_${kind}`] = count
    // the shared parts are reported once, by vCPU 0
    return this.vcpu === 0 ? { ...out, ...this.monitor.stats() } : out
  }

  run(cpu: Cpu, cycles: number, guestTsc: number): ExitAction | undefined {
    const vmcs = this.vmcs
    const deadline = cpu.cycles + cycles
    this.tscBase = guestTsc - cpu.cycles
    const injected = this.injectPending(cpu)
    if (injected !== undefined) return injected
    if ((vmcs.guest.interruptibility & (Interruptibility.BlockingBySti | Interruptibility.BlockingByMovSs)) !== 0) {
      // the one instruction in an STI / MOV SS shadow runs before anything can be injected
      vmcs.guest.interruptibility = 0
      return this.emulate(cpu)
    }
    while (cpu.cycles < deadline) {
      const v = vmcs.guest.regs
      if (!this.deprivilegeable(v)) {
        this.counters.interpreted_instructions++
        const action = this.emulate(cpu)
        if (action !== undefined) return action
        continue
      }
      const action = this.runOnPcpu(cpu, deadline)
      if (action !== undefined) return action
    }
    return undefined
  }

  // ---- running the guest on the pCPU ----

  /**
   * Enter the pCPU with the virtual state and run until the deadline or a
   * trap the monitor must act on. Returns an action for the vCPU loop, or
   * undefined when the slice ended or the guest may simply go on.
   */
  private runOnPcpu(cpu: Cpu, deadline: number): ExitAction | undefined {
    const m = this.monitor
    const v = this.vmcs.guest.regs
    const root = this.shadowRoot()
    if (typeof root !== "number")
      return End({ _tag: "Failed", message: `bt: no memory for shadow page tables: ${root}` })
    const user = (v.ss.access >> 5) % 4 === 3
    let eip: number
    if (user || !m.translate) {
      eip = v.eip
    } else {
      const tc = this.tcAddressFor(v.eip)
      if (tc === undefined) {
        // the first instruction cannot be fetched: the emulator runs it (and raises the guest's #PF)
        return this.emulate(cpu)
      }
      eip = tc
    }
    this.loadPcpu(cpu, eip, root, user)
    for (;;) {
      const exit = runUntilTrap(cpu, deadline, this.hooks.retired)
      if (exit === RunExit.Budget) {
        this.leavePcpu(cpu)
        return undefined
      }
      if (exit !== RunExit.Trap) {
        this.leavePcpu(cpu)
        return End({ _tag: "Failed", message: `bt: the pCPU stopped unexpectedly (run exit ${exit})` })
      }
      this.counters.monitor_entries++
      cpu.cycles += 2 * cpu.eventCost // into the monitor through its IDT, and back
      const handled = this.fastTrap(cpu)
      if (handled) continue
      return this.slowTrap(cpu)
    }
  }

  /**
   * Traps handled without leaving the pCPU's state: translation-cache
   * exits (lookup, translate, chain) and hidden page faults. True if the
   * pCPU can go on.
   */
  private fastTrap(cpu: Cpu): boolean {
    const m = this.monitor
    if (cpu.trapKind === EventKind.Software && cpu.trapVector === CALLOUT_VECTOR && cpu.cpl === 1 && m.translate) {
      const callout = m.tc.callout(cpu.eip >>> 0)
      if (callout === undefined || callout.kind === "emulate") return false
      if (callout.kind === "ret") return this.returnLookup(cpu, callout.release)
      const target = callout.kind === "jump" ? callout.target : callout.guestEip
      const block = this.blockFor(target)
      if (block === undefined) return false
      // chain the jump straight to the target when both are on one guest page (one mapping): still valid,
      // and the source block survived the translation (a full cache is flushed by it)
      if (
        callout.kind === "jump" &&
        callout.block.valid &&
        (block.guestEip & ~0xfff) === (callout.block.guestEip & ~0xfff)
      ) {
        m.tc.chain(callout.patchSite, block)
      }
      const tc = block.tcStart
      cpu.eip = tc | 0
      cpu.invalidateFetch()
      return true
    }
    if (cpu.trapKind === EventKind.Exception && cpu.trapVector === PF) {
      const address = cpu.cr2 >>> 0
      const eip = cpu.eip >>> 0
      const last = this.lastFault
      const again = last.eip === eip && last.address === address
      if (again && last.count >= HIDDEN_RETRIES) {
        // filled, retried, and faulting again: the emulator does the access instead of looping
        last.count = 0
        return false
      }
      const error = cpu.trapError
      if (typeof this.shadowRoot() !== "number") return false
      const outcome = m.paging.pageFault(address, (error & 2) !== 0, (error & 4) !== 0)
      if (outcome.kind !== "hidden") {
        last.count = 0
        this.faultOutcome = outcome
        return false
      }
      last.eip = eip
      last.address = address
      last.count = again ? last.count + 1 : 1
      cpu.flushTlb(false)
      return true
    }
    return false
  }

  /**
   * A near RET in translated code: the return address is popped on the pCPU
   * (through the guest's stack segment and the shadow, exactly as the RET
   * would) and looked up in the translation cache -- the indirect-jump
   * lookup, without the emulator. False (the slow path emulates the RET)
   * when the pop faults, the stack is 16-bit, or the target cannot be
   * fetched.
   */
  private returnLookup(cpu: Cpu, release: number): boolean {
    if (!cpu.ssB) return false
    const esp = cpu.r32[ESP]! >>> 0
    let target: number
    try {
      target = cpu.rd32(SS, esp) >>> 0
    } catch (e) {
      if (e !== FAULT) throw e
      cpu.resetPrefixes()
      return false
    }
    const block = this.blockFor(target)
    if (block === undefined) return false
    cpu.r32[ESP] = (esp + 4 + release) | 0
    this.countCallout("ret")
    cpu.eip = block.tcStart | 0
    cpu.invalidateFetch()
    return true
  }

  private countCallout(kind: string): void {
    this.counters.callouts.set(kind, (this.counters.callouts.get(kind) ?? 0) + 1)
  }

  /** Every other trap: the virtual state takes the pCPU's, and the monitor acts on it. */
  private slowTrap(cpu: Cpu): ExitAction | undefined {
    const m = this.monitor
    const vector = cpu.trapVector
    const kind = cpu.trapKind
    const inTc = cpu.cpl === 1 && m.translate
    if (inTc && kind === EventKind.Software && vector === CALLOUT_VECTOR) {
      const callout = m.tc.callout(cpu.eip >>> 0)
      const guestEip = callout?.kind === "jump" ? callout.target : callout?.guestEip
      if (callout === undefined || guestEip === undefined) {
        this.leavePcpu(cpu)
        return End({ _tag: "Failed", message: `bt: unknown callout at TC 0x${(cpu.eip >>> 0).toString(16)}` })
      }
      this.leavePcpu(cpu, guestEip)
      // a jump target the translator could not fetch, or a RET whose stack or target needs the emulator
      if (callout.kind !== "emulate") {
        if (callout.kind === "ret") this.countCallout("ret")
        return this.emulate(cpu)
      }
      this.countCallout(callout.mnemonic)
      return this.emulate(cpu)
    }
    // the guest EIP of the instruction that trapped (INT n reports the next one: its start is startEip)
    const at = (kind === EventKind.Software ? cpu.startEip : cpu.eip) >>> 0
    let guestEip: number | undefined = at >>> 0
    if (inTc) guestEip = m.tc.guestEipAt(guestEip)
    if (guestEip === undefined) {
      this.leavePcpu(cpu)
      return End({
        _tag: "Failed",
        message: `bt: trap at TC 0x${(at >>> 0).toString(16)}, not an instruction boundary`
      })
    }
    this.leavePcpu(cpu, guestEip)
    if (kind === EventKind.External) return Yield // a physical interrupt: the vmkernel's
    if (vector === PF && kind === EventKind.Exception) {
      // the outcome fastTrap found (a hidden fault that kept coming back has none: emulate the access)
      const outcome = this.faultOutcome ?? { kind: "hidden" as const }
      this.faultOutcome = undefined
      switch (outcome.kind) {
        case "hidden":
          // retried HIDDEN_RETRIES times already: let the emulator do the access
          return this.emulate(cpu)
        case "true":
          this.vmcs.guest.regs.cr2 = outcome.cr2
          return this.reflect(cpu, PF, outcome.errorCode, EventKind.Exception, guestEip)
        case "no-memory":
          return End({ _tag: "Failed", message: `bt: no memory for shadow page tables: ${outcome.error.message}` })
        default:
          // traced page, MMIO, the monitor's region: the emulator does the guest's access
          return this.emulate(cpu)
      }
    }
    // a #GP/#NP/#SS from deprivileging, or the guest's own fault: the emulator decides which
    return this.emulate(cpu)
  }

  // ---- the virtual CPU ----

  /**
   * Execute the guest instruction at the virtual EIP in the emulator (exact
   * x86 semantics on the virtual state); a fault it raises is delivered
   * through the guest's IDT. Returns Halt for HLT, Resume otherwise (the
   * vCPU loop then looks at interrupts), or End.
   */
  private emulate(cpu: Cpu): ExitAction | undefined {
    const v = this.vmcs.guest.regs
    const emulator = this.monitor.emulator
    v.tsc = cpu.cycles + this.tscBase
    const startEip = v.eip
    const before = emulator.cpu.cycles
    this.resume.guestEip = -1
    this.counters.emulated_instructions++
    const result = this.context.emulate()
    cpu.cycles += emulator.cpu.cycles - before
    if (result._tag === "Halted" || v.halted) {
      // HLT (the emulator's one-instruction run ends before it would report the halt)
      v.halted = false
      this.hooks.afterExit()
      return Halt
    }
    if (result._tag === "Trap") {
      const kind = result.software ? EventKind.Software : EventKind.Exception
      return this.reflect(cpu, result.vector, result.error, kind, startEip)
    }
    if (emulator.cpu.intShadow) {
      // STI / MOV SS / POP SS: the next instruction runs before any interrupt
      this.vmcs.guest.interruptibility = Interruptibility.BlockingBySti
    }
    this.hooks.afterExit()
    return Resume
  }

  /**
   * Deliver an event to the guest through its own IDT, GDT and TSS (SDM 3A
   * 6.12), on the virtual state, as the hardware would: `startEip` is the
   * instruction a software interrupt's #GP reports.
   */
  private reflect(cpu: Cpu, vector: number, error: number, kind: number, startEip: number): ExitAction | undefined {
    this.counters.reflected_exceptions++
    const result = this.deliverVirtual(cpu, vector, error, kind, startEip)
    this.hooks.afterExit()
    return result
  }

  private deliverVirtual(
    cpu: Cpu,
    vector: number,
    error: number,
    kind: number,
    startEip: number
  ): ExitAction | undefined {
    this.resume.guestEip = -1
    const { cycles, shutdown } = deliverToGuest(this.monitor.emulator.cpu, this.vmcs.guest.regs, {
      vector,
      error,
      kind,
      startEip
    })
    cpu.cycles += cycles
    this.vmcs.guest.activityState = ActivityState.Active
    return shutdown ? End({ _tag: "TripleFault" }) : Resume
  }

  /** The event the vCPU loop chose (VM-entry interruption field), delivered into the virtual state. */
  private injectPending(cpu: Cpu): ExitAction | undefined {
    const entry = this.vmcs.entry
    const info = entry.interruptionInfo >>> 0
    if ((info & INTR_INFO_VALID) === 0) return undefined
    entry.interruptionInfo = 0
    const type = (info >> 8) & 7
    const kind = eventKindOf(type)
    const error = (info & INTR_INFO_ERROR_CODE) !== 0 ? entry.exceptionErrorCode : -1
    const v = this.vmcs.guest.regs
    const result = this.deliverVirtual(cpu, info & 0xff, error, kind, v.eip)
    return result?._tag === "End" ? result : undefined
  }

  /** Can the virtual state run deprivileged (32-bit protected mode at CPL 0 or 3)? */
  private deprivilegeable(v: CpuState): boolean {
    if ((v.cr0 & CR0_PE) === 0 || (v.eflags & Flag.VM) !== 0) return false
    if ((v.cs.access & 0x4000) === 0) return false
    const cpl = (v.ss.access >> 5) & 3
    // user code runs directly only with IOPL 0: with IOPL > 0 its PUSHF/POPF would see the pCPU's IOPL and IF
    // (sensitive, not trapping), and IN/OUT would reach the machine's ports: interpreted instead
    if (cpl === 3) return (v.eflags & Flag.IOPL) === 0
    // the translator works in linear addresses and runs under a flat CS (so does trap mode's deprivileged
    // kernel): a kernel CS with a base or a limit (no 32-bit OS uses one) is interpreted instead
    return cpl === 0 && v.cs.base >>> 0 === 0 && v.cs.limit >>> 0 === 0xffffffff
  }

  // ---- pCPU state <-> virtual state ----

  private loadPcpu(cpu: Cpu, eip: number, root: number, user: boolean): void {
    enterPcpu(cpu, this.vmcs.guest.regs, this.phys, {
      eip,
      root,
      user,
      translated: !user && this.monitor.translate,
      tss: this.monitor.region.tss(this.vcpu).base,
      tscOffset: this.tscBase
    })
  }

  /** Leave the pCPU: its general registers and flags become the guest's, at `guestEip` (default: where it stopped). */
  private leavePcpu(cpu: Cpu, guestEip?: number): void {
    const v = this.vmcs.guest.regs
    savePcpu(cpu, v)
    const stopped = cpu.eip >>> 0
    if (guestEip !== undefined) {
      v.eip = guestEip >>> 0
    } else if (cpu.cpl === 1 && this.monitor.translate) {
      const g = this.monitor.tc.guestEipAt(stopped)
      if (g === undefined)
        throw new Error(`bt: slice ended at TC 0x${stopped.toString(16)}, not an instruction boundary`)
      v.eip = g
      this.resume = { guestEip: g, tc: stopped, generation: this.monitor.tc.generation, cr3: v.cr3 }
    } else {
      v.eip = stopped
    }
    cpu.hostTraps = false
    cpu.flushTlb(false)
  }

  /** The TC address to run guest kernel EIP `eip` from: where the last slice stopped, or a block's start. */
  private tcAddressFor(eip: number): number | undefined {
    const r = this.resume
    const v = this.vmcs.guest.regs
    if (r.guestEip === eip >>> 0 && r.generation === this.monitor.tc.generation && r.cr3 === v.cr3) {
      r.guestEip = -1
      return r.tc
    }
    return this.blockFor(eip)?.tcStart
  }

  /** The translation of the block at guest kernel EIP `eip` (translated now if needed); undefined if unfetchable. */
  private blockFor(eip: number): Block | undefined {
    const m = this.monitor
    const linear = (this.vmcs.guest.regs.cs.base + eip) >>> 0
    const gfn = this.codeFrame(linear)
    if (gfn === undefined) return undefined
    const found = m.tc.lookup(linear, gfn)
    if (found !== undefined) return found
    this.codeGfn = -1
    return m.translateAt(linear, this.code)
  }

  /** The guest frame of linear `linear` for a supervisor fetch under the guest's own paging (no A/D updates). */
  private codeFrame(linear: number): number | undefined {
    const v = this.vmcs.guest.regs
    const g = this.monitor.guest
    let gpa = linear >>> 0
    if ((v.cr0 & CR0_PG) !== 0) {
      const pde = g.readValue(((v.cr3 & 0xfffff000) | ((linear >>> 22) << 2)) >>> 0, 4)
      if ((pde & 1) === 0) return undefined
      if ((pde & 0x80) !== 0 && (v.cr4 & 0x10) !== 0) {
        gpa = ((pde & 0xffc00000) | (linear & 0x3fffff)) >>> 0
      } else {
        const pte = g.readValue(((pde & 0xfffff000) | ((linear >>> 10) & 0xffc)) >>> 0, 4)
        if ((pte & 1) === 0) return undefined
        gpa = ((pte & 0xfffff000) | (linear & 0xfff)) >>> 0
      }
    }
    return g.contains(gpa, 1) ? gpa >>> 12 : undefined
  }

  /** The shared shadow MMU's current root follows this vCPU's virtual paging state: its machine CR3. */
  private shadowRoot(): number | string {
    const v = this.vmcs.guest.regs
    const root = this.monitor.paging.activate(v.cr0, v.cr3, v.cr4)
    return typeof root === "number" ? root : root.message
  }
}
