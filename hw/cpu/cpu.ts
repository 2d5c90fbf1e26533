/**
 * An IA-32 pCPU: the interpreter core.
 *
 * Models Intel SDM Vol. 3A: real mode and 32-bit protected mode (ch. 3
 * segmentation with descriptor caches, ch. 4 32-bit paging through a
 * software TLB, ch. 5 protection, ch. 6 interrupts and exceptions), and the
 * Vol. 2 integer instruction set (handlers in ops/).
 *
 * Speed is designed in:
 * - registers live in one Int32Array with 16/8-bit views over the same bytes;
 * - arithmetic flags are lazy (the last ALU op's operands and result are
 *   kept; a flag is computed only when read, see flags.ts);
 * - every memory access goes through a software TLB mapping a linear page
 *   straight to an index into machine RAM, with permission bits checked in
 *   one mask compare (paging.ts fills it);
 * - instruction fetch uses a "fetch window": the range of EIP values whose
 *   bytes sit in the current RAM page and inside the CS limit;
 * - `run(budget)` is a plain loop over a 256-entry handler table (exec.ts,
 *   which also writes out the hottest 32-bit forms so they run without a
 *   call): it allocates nothing and never calls Effect. Faults are thrown as
 *   one preallocated sentinel and caught once per fault, not per instruction.
 *
 * Invariants: 32-bit values are kept as int32 (`| 0`), 16/8-bit values as
 * unsigned; `eip` is an int32; all guest-reachable paths end in an
 * architectural fault, never a host exception.
 */
import type { AccessSize, IoPorts, PhysicalMemory } from "./bus.ts"
import { execute } from "./exec.ts"
import { FAULT } from "./fault.ts"
import { lazyFlags, setLazy } from "./flags.ts"
import { dispatchFault, handleEvents, STEP_ONE } from "./interrupts.ts"
import { costClassTable } from "./opcodes.ts"
import { oneByteOps } from "./ops/table.ts"
import {
  Access,
  TLB_LIST_SIZE,
  TLB_MMIO,
  TLB_NO_EXEC,
  TLB_NO_READ,
  TLB_NO_USER,
  TLB_NO_WRITE_S,
  TLB_NO_WRITE_U,
  TLB_ROM,
  TLB_VALID,
  tlbFill
} from "./paging.ts"
import {
  AR_DB,
  AR_P,
  AR_S,
  AR_UNUSABLE,
  CR0_ET,
  CR0_PE,
  CR0_PG,
  CS,
  DS,
  EBP,
  ES,
  ESP,
  F_ARITH,
  F_IF,
  FS,
  GP,
  GS,
  SS,
  SSF,
  TYPE_CODE,
  TYPE_EXPAND_DOWN,
  TYPE_RW
} from "./regs.ts"
import { type CpuState, RunExit, type SegmentState } from "./state.ts"
import type { Vmcs } from "./vmx/vmcs.ts"

export { FAULT }

/** `excVector` value meaning "a VM exit, not an exception" (exit details are in the VMCS). */
export const VMEXIT = 256

/**
 * One tagged TLB: translations of one address space. Root mode uses the
 * set with tag 0; a VM uses the set tagged (VPID, EPTP), so switching VMs
 * does not flush (SDM 3C 29.4 "Caching translation information").
 */
export interface TlbSet {
  readonly tag: number
  readonly entries: Int32Array
  readonly list: Int32Array
  count: number
}

export const newTlbSet = (tag: number): TlbSet => ({
  tag,
  entries: new Int32Array(1 << 20),
  list: new Int32Array(TLB_LIST_SIZE),
  count: 0
})

const copySegment = (from: SegmentState, to: SegmentState): void => {
  to.selector = from.selector
  to.base = from.base
  to.limit = from.limit
  to.access = from.access
}

/** Tagged sets kept per pCPU before the least recently used one is dropped. */
const MAX_TLB_SETS = 8

/** Cost class of every opcode (index: opcode, or 256 + opcode for 0F xx). */
const COST_CLASS = costClassTable()

export class Cpu {
  readonly mem: PhysicalMemory
  readonly io: IoPorts
  readonly ram: Uint8Array
  readonly dv: DataView

  // ---- general registers (one buffer, three views) ----
  readonly r32 = new Int32Array(8)
  readonly r16 = new Uint16Array(this.r32.buffer)
  readonly r8 = new Uint8Array(this.r32.buffer)
  eip = 0

  // ---- EFLAGS: `flags` holds every bit; the arithmetic ones are stale while ccOp != 0 ----
  flags = 2
  ccOp = 0
  ccDst = 0
  ccSrc1 = 0
  ccSrc2 = 0
  ccCarry = 0

  // ---- segment registers: selector + hidden descriptor cache ----
  readonly segSel = new Uint16Array(6)
  readonly segBase = new Int32Array(6)
  readonly segLimit = new Float64Array(6)
  readonly segAccess = new Int32Array(6)
  /** Largest offset+size-1 that passes the fast read / write check, or -1 to force the slow check. */
  readonly segLimR = new Float64Array(6)
  readonly segLimW = new Float64Array(6)
  ldtr: SegmentState = { selector: 0, base: 0, limit: 0xffff, access: 0x82 }
  tr: SegmentState = { selector: 0, base: 0, limit: 0xffff, access: 0x8b }
  gdtrBase = 0
  gdtrLimit = 0xffff
  idtrBase = 0
  idtrLimit = 0x3ff

  // ---- control, debug and model-specific registers ----
  cr0 = CR0_ET
  cr2 = 0
  cr3 = 0
  cr4 = 0
  readonly dr = new Int32Array(8)
  apicBase = 0xfee00900
  sysenterCs = 0
  sysenterEsp = 0
  sysenterEip = 0
  tscOffset = 0

  // ---- cached mode ----
  cpl = 0
  /** CR0.PE */
  pe = false
  /** CR0.PG */
  pg = false
  /** CS.D: default operand and address size is 32 */
  csD = false
  /** SS.B: the stack pointer is ESP (else SP) */
  ssB = false
  a20Mask = -1

  // ---- the instruction being decoded ----
  startEip = 0
  o32 = false
  a32 = false
  segOvr = -1
  /** 0, 0xF2 (REPNE) or 0xF3 (REP/REPE) */
  rep = 0
  ea = 0
  eaSeg = DS
  /** Read-modify-write target: a register index (>= 0) or -1 for memory at rmwLin. */
  rmwReg = 0
  rmwLin = 0

  // ---- software TLB: linear page -> (machine page | TLB_* flags), for the active tagged set ----
  tlbSet: TlbSet
  tlb: Int32Array
  tlbList: Int32Array
  tlbCount = 0
  /** Tagged TLB sets, most recently used last. */
  readonly tlbSets: Array<TlbSet>
  rMask = TLB_VALID | TLB_MMIO | TLB_NO_READ
  wMask = TLB_VALID | TLB_MMIO | TLB_ROM | TLB_NO_READ | TLB_NO_WRITE_S
  /** Set by xlate: the translated address is MMIO (or ROM, for a write). */
  xmmio = false

  // ---- fetch window: EIPs in [fetchLo, fetchHi] are at ram[fetchDelta + eip] ----
  fetchLo = 1
  fetchHi = 0
  fetchDelta = 0
  csBase = 0
  csLimit = 0xffff

  // ---- events between instructions ----
  eventPending = false
  halted = false
  intrLine = false
  nmiPending = false
  nmiBlocked = false
  intShadow = false
  tfTrap = false
  stopRequested = false
  isShutdown = false
  /** A RunExit the next event check returns (VM exit, trap), or -1. */
  exitCode = -1
  /** Interrupt acknowledge: the interrupt controller returns the vector of the INTR being taken. */
  acknowledge: () => number = () => 0xff

  // ---- the fault being raised ----
  /** Linear address of the last #PF, copied to CR2 when the #PF is delivered. */
  faultAddress = 0
  /** The event being delivered (VMX interruption-information format), 0 when none. */
  vectoringInfo = 0
  vectoringError = 0
  /** Length of the instruction that last faulted (onFault, before the rewind): an INT n whose delivery faulted. */
  faultLength = 0
  excVector = 0
  /** Error code, or -1 when the exception has none. */
  excError = -1

  // ---- running without the extension: hypervisor-owned traps (the BT and PV modes) ----
  /**
   * When set, every exception, software interrupt and external interrupt
   * returns from `run` with RunExit.Trap instead of going through the
   * guest's IDT: the model of a hypervisor-owned IDT whose gates all lead
   * back to the monitor (DESIGN.md `bt`/`pv`). The event is in trapVector,
   * trapError (-1: none) and trapKind (interrupts.ts EventKind); for a fault,
   * EIP is the faulting instruction, for INT n the next one; CR2 is written
   * for #PF as the hardware would before entering the monitor's handler.
   */
  hostTraps = false
  /**
   * With hostTraps: the one software-interrupt vector (INT n) that still goes through this CPU's own IDT
   * instead of returning to the monitor (-1: none). The `pv` engine's direct system-call gate: INT 0x80
   * from ring 3 straight to the guest kernel's ring-1 handler, as Xen's fast trap (vmm/engines/pv).
   */
  directSoftwareVector = -1
  /**
   * Cycles each IN/OUT/INS/OUTS that reaches `io` costs on top of its instruction: the bus and device
   * latency of physical ports (cost profile `portLatency`, set on the machine's pCPUs); 0 for a CPU whose
   * ports are a VM's device models (the instruction emulator, `emu`'s software CPUs).
   */
  portLatency = 0
  /**
   * A CPU whose physical address space is not machine memory (the `emu` engine's per-vCPU CPU, vmm/engines/
   * emu.ts, whose "physical" memory is a VM's guest-physical space): the machine page backing physical page
   * `page`, indexed in `ram` as usual, or -1 when the page is not RAM (its accesses go to `mem.read` /
   * `mem.write` with the physical address). Consulted on TLB fills and page walks only. null (every pCPU):
   * physical = machine.
   */
  physicalPage: ((page: number) => number) | null = null
  /**
   * Return RunExit.Stopped at the first instruction boundary where IF = 1 outside an STI / MOV SS shadow:
   * the "interrupt-window exiting" of a VMM that runs its guest on this CPU by emulation (vmm/engines/emu.ts).
   */
  stopAtInterruptWindow = false
  trapVector = 0
  trapError = -1
  trapKind = 0

  // ---- VMX non-root operation (vmx/vmx.ts): the current VMCS and its controls, cached ----
  vmcs: Vmcs | null = null
  vmPin = 0
  vmProc = 0
  vmProc2 = 0
  /** EPT is on: guest-physical addresses go through the EPT rooted at vmEptp. */
  vmEpt = false
  vmEptp = 0
  /** Cycles charged for a VM entry / a VM exit (cost profile). */
  vmEntryCost = 0
  vmExitCost = 0
  /** Extra cycles for a TLB miss under EPT (the 2-D walk), and per exception/interrupt delivery. */
  eptWalkCost = 0
  eventCost = 0

  // ---- accounting ----
  /** Instructions retired: one that faults or exits (VM exit) is not (SDM: it did not complete); INT n is. */
  instructions = 0
  cycles = 0
  /** Simulated cycles charged per opcode (index: opcode, or 256 + opcode for 0F xx); 1 until a profile is set. */
  readonly opCycles = new Int32Array(512).fill(1)
  /** The most expensive opcode's cycles: bounds a preemption-timer chunk (vmx/vmx.ts). */
  maxOpCycles = 1
  /** Extra cycles per TLB-miss page walk (the cost profile sets it). */
  walkCost = 0
  /** Initial APIC ID, reported by CPUID.1:EBX[31:24]. */
  apicId = 0
  /** CPUID.1:ECX.VMX: set on pCPUs that have the VT-x-like extension. */
  vmxSupported = false

  /**
   * `tlb`: the root-mode TLB set (default: a new one, 4 MiB). The VMM's
   * instruction emulators share one: each empties it after every step.
   */
  constructor(memory: PhysicalMemory, io: IoPorts, tlb: TlbSet = newTlbSet(0)) {
    this.tlbSet = tlb
    this.tlb = tlb.entries
    this.tlbList = tlb.list
    this.tlbSets = [tlb]
    this.mem = memory
    this.io = io
    this.ram = memory.ram
    this.dv = new DataView(memory.ram.buffer, memory.ram.byteOffset, memory.ram.byteLength)
    this.reset()
  }

  /** Power-on / RESET state (SDM Vol. 3A 9.1.1, table 9-1): real mode at F000:FFF0. */
  reset(): void {
    this.r32.fill(0)
    this.r32[2] = 0x00000600 // EDX: family/model/stepping signature placeholder (486-class)
    this.eip = 0xfff0
    this.flags = 2
    this.ccOp = 0
    this.cr0 = CR0_ET | (1 << 30) | (1 << 29)
    this.cr2 = 0
    this.cr3 = 0
    this.cr4 = 0
    this.dr.fill(0)
    this.dr[6] = 0xffff0ff0 | 0
    this.dr[7] = 0x400
    this.gdtrBase = 0
    this.gdtrLimit = 0xffff
    this.idtrBase = 0
    this.idtrLimit = 0xffff
    this.ldtr = { selector: 0, base: 0, limit: 0xffff, access: 0x82 }
    this.tr = { selector: 0, base: 0, limit: 0xffff, access: 0x8b }
    for (let s = 0; s < 6; s++) this.loadSegCache(s, 0, 0, 0xffff, 0x93)
    this.loadSegCache(CS, 0xf000, 0xffff0000 | 0, 0xffff, 0x9b)
    this.halted = false
    this.intrLine = false
    this.nmiPending = false
    this.nmiBlocked = false
    this.intShadow = false
    this.tfTrap = false
    this.isShutdown = false
    this.exitCode = -1
    this.a20Mask = -1
    this.updateMode()
  }

  // ======================================================================
  // run loop
  // ======================================================================

  /**
   * Execute up to `budget` instructions, or until HLT with nothing to wake
   * it, shutdown, a VM exit / trap, or a stop request. Returns why. The
   * budget counts every instruction started, retired or not; `instructions`
   * counts those that retired.
   */
  run(budget: number): RunExit {
    let n = 0
    while (n < budget) {
      if (this.eventPending) {
        const exit = handleEvents(this)
        if (exit >= 0) {
          this.instructions += n
          return exit as RunExit
        }
        if (exit === STEP_ONE) {
          // an interrupt shadow (STI, MOV SS): exactly one instruction runs before events are looked at again
          n++
          this.executeOne()
          this.eventPending = true
          continue
        }
      }
      n = execute(this, n, budget)
    }
    this.instructions += n
    return RunExit.Budget
  }

  /** One instruction, outside the hot loop (the instruction in an interrupt shadow). */
  private executeOne(): void {
    try {
      this.startEip = this.eip
      const op = this.fetch8()
      this.cycles += this.opCycles[op]!
      oneByteOps[op]!(this)
    } catch (e) {
      this.instructions-- // started (run counts it) but not retired
      this.onFault(e)
    }
  }

  /**
   * The instruction raised FAULT: rewind it, then deliver the exception or
   * report the VM exit. It is not retired: the caller takes it off
   * `instructions`.
   */
  onFault(e: unknown): void {
    if (e !== FAULT) throw e
    this.resetPrefixes()
    this.faultLength = (this.eip - this.startEip) >>> 0
    this.eip = this.startEip
    if (this.excVector === VMEXIT) {
      this.exitCode = RunExit.VmExit
      this.eventPending = true
    } else {
      dispatchFault(this)
    }
  }

  /**
   * Return the per-instruction decode state to "no prefixes". Prefix
   * handlers restore what they set once their instruction completes, and a
   * fault resets everything, so the hot loop never resets these itself.
   */
  resetPrefixes(): void {
    this.o32 = this.a32 = this.csD
    this.segOvr = -1
    this.rep = 0
  }

  /** Install a cost profile: cycles per cost class (see cost-class.ts) and per page walk. */
  setCosts(perClass: ArrayLike<number>, walkCycles: number): void {
    for (let op = 0; op < 512; op++) this.opCycles[op] = perClass[COST_CLASS[op]!] ?? 1
    this.maxOpCycles = Math.max(1, ...this.opCycles)
    this.walkCost = walkCycles
  }

  /** The A20 gate (fast A20 / keyboard controller): disabled, address bit 20 is forced to 0 (8086 wrap-around). */
  setA20(enabled: boolean): void {
    const mask = enabled ? -1 : ~(1 << 20)
    if (mask === this.a20Mask) return
    this.a20Mask = mask
    this.flushTlb(false)
  }

  /** Ask `run` to return at the next instruction boundary. */
  requestStop(): void {
    this.stopRequested = true
    this.eventPending = true
  }

  /** Level of the INTR pin (an interrupt controller drives it). */
  setIntr(level: boolean): void {
    this.intrLine = level
    if (level) this.eventPending = true
  }

  /** Edge on the NMI pin. */
  raiseNmi(): void {
    this.nmiPending = true
    this.eventPending = true
  }

  /** Raise an architectural fault: the current instruction is abandoned. */
  fault(vector: number, error = -1): never {
    this.excVector = vector
    this.excError = error
    throw FAULT
  }

  // ======================================================================
  // EFLAGS
  // ======================================================================

  /** The full EFLAGS value (materializes the lazy arithmetic flags). */
  getFlags(): number {
    if (this.ccOp !== 0) {
      this.flags = (this.flags & ~F_ARITH) | lazyFlags(this)
      this.ccOp = 0
    }
    return this.flags
  }

  /** Replace EFLAGS (caller applies the privilege rules). Bit 1 always reads 1. */
  setFlags(value: number): void {
    this.flags = (value & ~0x8028) | 2
    this.ccOp = 0
    this.eventPending = true
  }

  /** Set only the arithmetic flags from `value`, leaving the rest. */
  setArith(value: number): void {
    this.flags = (this.getFlags() & ~F_ARITH) | (value & F_ARITH)
  }

  setLazy(op: number, dst: number, src1: number, src2: number, size: AccessSize): void {
    setLazy(this, op, dst, src1, src2, size)
  }

  // ======================================================================
  // mode and segment caches
  // ======================================================================

  /** Recompute cached mode bits after CR0/CR4 changes or a state load (CPL = SS.DPL, SDM 5.5). */
  updateMode(): void {
    this.pe = (this.cr0 & CR0_PE) !== 0
    this.pg = this.pe && (this.cr0 & CR0_PG) !== 0
    this.setCpl(this.pe ? (this.segAccess[SS]! >> 5) & 3 : 0)
  }

  /** Change the current privilege level (far transfers, interrupts, IRET, SYSENTER/SYSEXIT). */
  setCpl(cpl: number): void {
    this.cpl = cpl
    const user = cpl === 3
    this.rMask = TLB_VALID | TLB_MMIO | TLB_NO_READ | (user ? TLB_NO_USER : 0)
    this.wMask = TLB_VALID | TLB_MMIO | TLB_ROM | TLB_NO_READ | (user ? TLB_NO_USER | TLB_NO_WRITE_U : TLB_NO_WRITE_S)
    for (let s = 0; s < 6; s++) this.computeSegFast(s)
    this.invalidateFetch()
  }

  /** Fill a segment register's hidden cache (no checks: callers check). */
  loadSegCache(seg: number, selector: number, base: number, limit: number, access: number): void {
    this.fillSegCache(seg, selector, base, limit, access)
    this.computeSegFast(seg)
  }

  /** loadSegCache but for the fast-path limits, which the caller recomputes (loadRegisters: updateMode does all six). */
  private fillSegCache(seg: number, selector: number, base: number, limit: number, access: number): void {
    this.segSel[seg] = selector
    this.segBase[seg] = base | 0
    this.segLimit[seg] = limit >>> 0
    this.segAccess[seg] = access
    if (seg === CS) {
      this.csBase = base | 0
      this.csLimit = limit >>> 0
      this.csD = (access & AR_DB) !== 0
      // the next instruction decodes with the new default sizes (a prefix handler restores after its own)
      this.o32 = this.a32 = this.csD
      this.invalidateFetch()
    } else if (seg === SS) {
      this.ssB = (access & AR_DB) !== 0
    }
  }

  /** Real-mode segment load: base = selector * 16, attributes kept (SDM 20.1.1). */
  loadSegReal(seg: number, selector: number): void {
    selector &= 0xffff
    this.loadSegCache(seg, selector, selector << 4, this.segLimit[seg]!, this.segAccess[seg]! & ~AR_UNUSABLE)
  }

  private computeSegFast(seg: number): void {
    const ar = this.segAccess[seg]!
    const limit = this.segLimit[seg]!
    let r = -1
    let w = -1
    const expandDown = (ar & TYPE_CODE) === 0 && (ar & TYPE_EXPAND_DOWN) !== 0
    if (!expandDown) {
      if (!this.pe) {
        r = limit
        w = limit
      } else if ((ar & AR_S) !== 0 && (ar & AR_P) !== 0 && (ar & AR_UNUSABLE) === 0) {
        if ((ar & TYPE_CODE) !== 0) {
          r = (ar & TYPE_RW) !== 0 ? limit : -1
        } else {
          r = limit
          w = (ar & TYPE_RW) !== 0 ? limit : -1
        }
      }
    }
    this.segLimR[seg] = r
    this.segLimW[seg] = w
  }

  /**
   * The full segment check for an access that missed the fast path
   * (SDM Vol. 3A 5.3 limit checking, 5.4 type checking): expand-down
   * segments, null selectors, read/write permission.
   */
  segCheckSlow(seg: number, offset: number, size: number, write: boolean): void {
    const ar = this.segAccess[seg]!
    const vector = seg === SS ? SSF : GP
    if (this.pe) {
      if ((ar & AR_UNUSABLE) !== 0) this.fault(GP, 0)
      const code = (ar & TYPE_CODE) !== 0
      if (write ? code || (ar & TYPE_RW) === 0 : code && (ar & TYPE_RW) === 0) this.fault(GP, 0)
    }
    const first = offset >>> 0
    const last = first + size - 1
    const limit = this.segLimit[seg]!
    if (!(ar & TYPE_CODE) && ar & TYPE_EXPAND_DOWN) {
      const upper = ar & AR_DB ? 0xffffffff : 0xffff
      if (first <= limit || last > upper) this.fault(vector, 0)
    } else if (last > limit) {
      this.fault(vector, 0)
    }
  }

  // ======================================================================
  // TLB and linear-address accesses
  // ======================================================================

  /** Drop cached translations; `keepGlobal` keeps CR4.PGE global pages (a CR3 load). */
  flushTlb(keepGlobal: boolean): void {
    const tlb = this.tlb
    if (this.tlbCount >= TLB_LIST_SIZE) {
      tlb.fill(0)
      this.tlbCount = 0
    } else {
      let kept = 0
      for (let i = 0; i < this.tlbCount; i++) {
        const page = this.tlbList[i]!
        if (keepGlobal && (tlb[page]! & 0x800) !== 0) this.tlbList[kept++] = page
        else tlb[page] = 0
      }
      this.tlbCount = kept
    }
    this.invalidateFetch()
  }

  /** Make the TLB set tagged `tag` current (creating it, or dropping the least recently used one). */
  switchTlb(tag: number): void {
    if (this.tlbSet.tag === tag) return
    this.tlbSet.count = this.tlbCount
    // most recently used last; a hit moves to the end in place (no allocation: this runs twice per VM exit)
    const sets = this.tlbSets
    let i = sets.length - 1
    while (i >= 0 && sets[i]!.tag !== tag) i--
    let set: TlbSet
    if (i >= 0) {
      set = sets[i]!
      for (; i < sets.length - 1; i++) sets[i] = sets[i + 1]!
      sets[i] = set
    } else {
      set = sets.length >= MAX_TLB_SETS ? this.recycle(sets.shift()!, tag) : newTlbSet(tag)
      sets.push(set)
    }
    this.tlbSet = set
    this.tlb = set.entries
    this.tlbList = set.list
    this.tlbCount = set.count
    this.invalidateFetch()
  }

  private recycle(old: TlbSet, tag: number): TlbSet {
    const fresh: TlbSet = { tag, entries: old.entries, list: old.list, count: 0 }
    if (old.count >= TLB_LIST_SIZE) old.entries.fill(0)
    else for (let i = 0; i < old.count; i++) old.entries[old.list[i]!] = 0
    return fresh
  }

  /** Drop every tagged set whose tag satisfies `match` (INVEPT / INVVPID). */
  flushTlbSets(match: (tag: number) => boolean): void {
    for (const set of this.tlbSets) {
      if (!match(set.tag)) continue
      if (set === this.tlbSet) {
        this.flushTlb(false)
        continue
      }
      if (set.count >= TLB_LIST_SIZE) set.entries.fill(0)
      else for (let i = 0; i < set.count; i++) set.entries[set.list[i]!] = 0
      set.count = 0
    }
  }

  /** INVLPG: drop one page's translation. */
  flushTlbPage(linear: number): void {
    this.tlb[linear >>> 12] = 0
    this.invalidateFetch()
  }

  invalidateFetch(): void {
    this.fetchLo = 1
    this.fetchHi = 0
  }

  /**
   * Translate a linear address for an access of kind `access` (Access.Read,
   * Write or Fetch), filling the TLB (and raising #PF, or an EPT VM exit) as
   * needed. Returns the machine address; `xmmio` says whether it must go
   * through the bus.
   */
  xlate(linear: number, access: number, user: boolean): number {
    let e = this.tlb[linear >>> 12]!
    const need =
      access === Access.Write
        ? TLB_NO_READ | (user ? TLB_NO_USER | TLB_NO_WRITE_U : TLB_NO_WRITE_S)
        : access === Access.Fetch
          ? TLB_NO_EXEC | (user ? TLB_NO_USER : 0)
          : TLB_NO_READ | (user ? TLB_NO_USER : 0)
    if ((e & (TLB_VALID | need)) !== TLB_VALID) e = tlbFill(this, linear, access, user)
    this.xmmio = (e & (TLB_MMIO | (access === Access.Write ? TLB_ROM : 0))) !== 0
    return ((e & ~0xfff) | (linear & 0xfff)) >>> 0
  }

  ld8(lin: number): number {
    const e = this.tlb[lin >>> 12]!
    if ((e & this.rMask) === TLB_VALID) return this.ram[(e & ~0xfff) | (lin & 0xfff)]!
    return this.ldSlow(lin, 1, this.cpl === 3)
  }

  ld16(lin: number): number {
    const e = this.tlb[lin >>> 12]!
    if ((e & this.rMask) === TLB_VALID && (lin & 0xfff) !== 0xfff)
      return this.dv.getUint16((e & ~0xfff) | (lin & 0xfff), true)
    return this.ldSlow(lin, 2, this.cpl === 3)
  }

  ld32(lin: number): number {
    const e = this.tlb[lin >>> 12]!
    if ((e & this.rMask) === TLB_VALID && (lin & 0xfff) <= 0xffc)
      return this.dv.getInt32((e & ~0xfff) | (lin & 0xfff), true)
    return this.ldSlow(lin, 4, this.cpl === 3)
  }

  st8(lin: number, v: number): void {
    const e = this.tlb[lin >>> 12]!
    if ((e & this.wMask) === TLB_VALID) this.ram[(e & ~0xfff) | (lin & 0xfff)] = v
    else this.stSlow(lin, 1, v, this.cpl === 3)
  }

  st16(lin: number, v: number): void {
    const e = this.tlb[lin >>> 12]!
    if ((e & this.wMask) === TLB_VALID && (lin & 0xfff) !== 0xfff)
      this.dv.setUint16((e & ~0xfff) | (lin & 0xfff), v, true)
    else this.stSlow(lin, 2, v, this.cpl === 3)
  }

  st32(lin: number, v: number): void {
    const e = this.tlb[lin >>> 12]!
    if ((e & this.wMask) === TLB_VALID && (lin & 0xfff) <= 0xffc)
      this.dv.setInt32((e & ~0xfff) | (lin & 0xfff), v, true)
    else this.stSlow(lin, 4, v, this.cpl === 3)
  }

  ldSize(lin: number, size: AccessSize): number {
    return size === 1 ? this.ld8(lin) : size === 2 ? this.ld16(lin) : this.ld32(lin)
  }

  stSize(lin: number, size: AccessSize, v: number): void {
    if (size === 1) this.st8(lin, v)
    else if (size === 2) this.st16(lin, v)
    else this.st32(lin, v)
  }

  /** Supervisor-mode ("implicit") accesses: descriptor tables, TSS, IDT (SDM 5.5). */
  sysLd8(lin: number): number {
    return this.ldSlow(lin, 1, false)
  }
  sysLd16(lin: number): number {
    return this.ldSlow(lin, 2, false)
  }
  sysLd32(lin: number): number {
    return this.ldSlow(lin, 4, false)
  }
  sysSt8(lin: number, v: number): void {
    this.stSlow(lin, 1, v, false)
  }
  sysSt32(lin: number, v: number): void {
    this.stSlow(lin, 4, v, false)
  }

  private physRead8(addr: number, mmio: boolean): number {
    return mmio ? this.mem.read(addr, 1) & 0xff : this.ram[addr]!
  }

  ldSlow(lin: number, size: AccessSize, user: boolean): number {
    lin |= 0
    const off = lin & 0xfff
    if (off + size > 0x1000) {
      const a = this.xlate(lin, Access.Read, user)
      const ma = this.xmmio
      const b = this.xlate((lin | 0xfff) + 1, Access.Read, user)
      const mb = this.xmmio
      let v = 0
      for (let i = 0; i < size; i++) {
        const o = off + i
        v |= (o < 0x1000 ? this.physRead8(a + i, ma) : this.physRead8(b + (o - 0x1000), mb)) << (8 * i)
      }
      return v
    }
    const addr = this.xlate(lin, Access.Read, user)
    if (this.xmmio) {
      const v = this.mem.read(addr, size)
      return size === 4 ? v | 0 : size === 2 ? v & 0xffff : v & 0xff
    }
    return size === 1 ? this.ram[addr]! : size === 2 ? this.dv.getUint16(addr, true) : this.dv.getInt32(addr, true)
  }

  stSlow(lin: number, size: AccessSize, v: number, user: boolean): void {
    lin |= 0
    const off = lin & 0xfff
    if (off + size > 0x1000) {
      // translate both pages before writing anything: a fault leaves memory untouched
      const a = this.xlate(lin, Access.Write, user)
      const ma = this.xmmio
      const b = this.xlate((lin | 0xfff) + 1, Access.Write, user)
      const mb = this.xmmio
      for (let i = 0; i < size; i++) {
        const o = off + i
        const byte = (v >>> (8 * i)) & 0xff
        const addr = o < 0x1000 ? a + i : b + (o - 0x1000)
        if (o < 0x1000 ? ma : mb) this.mem.write(addr, 1, byte)
        else this.ram[addr] = byte
      }
      return
    }
    const addr = this.xlate(lin, Access.Write, user)
    if (this.xmmio) this.mem.write(addr, size, size === 4 ? v >>> 0 : size === 2 ? v & 0xffff : v & 0xff)
    else if (size === 1) this.ram[addr] = v
    else if (size === 2) this.dv.setUint16(addr, v, true)
    else this.dv.setInt32(addr, v, true)
  }

  // ======================================================================
  // segment-relative accesses
  // ======================================================================

  /** Linear address of seg:offset for a read of `size` bytes, after the segment checks. */
  linR(seg: number, offset: number, size: number): number {
    if ((offset >>> 0) + size - 1 > this.segLimR[seg]!) this.segCheckSlow(seg, offset, size, false)
    return (this.segBase[seg]! + offset) & this.a20Mask
  }

  /** Linear address of seg:offset for a write of `size` bytes, after the segment checks. */
  linW(seg: number, offset: number, size: number): number {
    if ((offset >>> 0) + size - 1 > this.segLimW[seg]!) this.segCheckSlow(seg, offset, size, true)
    return (this.segBase[seg]! + offset) & this.a20Mask
  }

  rd8(seg: number, off: number): number {
    return this.ld8(this.linR(seg, off, 1))
  }
  rd16(seg: number, off: number): number {
    return this.ld16(this.linR(seg, off, 2))
  }
  rd32(seg: number, off: number): number {
    return this.ld32(this.linR(seg, off, 4))
  }
  wr8(seg: number, off: number, v: number): void {
    this.st8(this.linW(seg, off, 1), v)
  }
  wr16(seg: number, off: number, v: number): void {
    this.st16(this.linW(seg, off, 2), v)
  }
  wr32(seg: number, off: number, v: number): void {
    this.st32(this.linW(seg, off, 4), v)
  }

  // ======================================================================
  // instruction fetch
  // ======================================================================

  fetch8(): number {
    const e = this.eip
    if (e >= this.fetchLo && e <= this.fetchHi) {
      this.eip = e + 1
      return this.ram[this.fetchDelta + e]!
    }
    return this.fetchSlow(1)
  }

  fetch16(): number {
    const e = this.eip
    if (e >= this.fetchLo && e < this.fetchHi) {
      this.eip = e + 2
      return this.dv.getUint16(this.fetchDelta + e, true)
    }
    return this.fetchSlow(2)
  }

  fetch32(): number {
    const e = this.eip
    if (e >= this.fetchLo && e + 3 <= this.fetchHi) {
      this.eip = e + 4
      return this.dv.getInt32(this.fetchDelta + e, true)
    }
    return this.fetchSlow(4)
  }

  /** Sign-extended 8-bit immediate / displacement. */
  fetch8s(): number {
    return (this.fetch8() << 24) >> 24
  }

  /** Byte-at-a-time fetch with CS limit and paging checks; re-establishes the fetch window. */
  fetchSlow(size: number): number {
    let v = 0
    for (let i = 0; i < size; i++) {
      const eip = this.eip
      if (eip >>> 0 > this.csLimit) this.fault(GP, 0)
      if ((eip - this.startEip) >>> 0 >= 15) this.fault(GP, 0) // SDM 2.3.11: at most 15 bytes
      const lin = (this.csBase + eip) & this.a20Mask
      const addr = this.xlate(lin, Access.Fetch, this.cpl === 3)
      let byte: number
      if (this.xmmio) {
        byte = this.mem.read(addr, 1) & 0xff
      } else {
        byte = this.ram[addr]!
        const lo = (eip >>> 0) - (lin & 0xfff)
        let winLo = Math.max(lo, 0)
        let winHi = Math.min(lo + 0xfff, this.csLimit)
        // keep the window on one side of the int32 sign boundary
        if (winLo <= 0x7fffffff && winHi > 0x7fffffff) {
          if (eip >>> 0 <= 0x7fffffff) winHi = 0x7fffffff
          else winLo = 0x80000000
        }
        this.fetchLo = winLo | 0
        this.fetchHi = winHi | 0
        // eip is kept as an int32, and the window never straddles the sign boundary
        this.fetchDelta = addr - (eip | 0)
      }
      v |= byte << (8 * i)
      this.eip = (eip + 1) | 0
    }
    return v
  }

  // ======================================================================
  // ModRM effective addresses (SDM Vol. 2A 2.1.5, tables 2-1 and 2-2)
  // ======================================================================

  /** Decode the memory operand of ModRM byte `m` (mod != 3) into `ea` / `eaSeg`. */
  decodeEA(m: number): void {
    if (this.a32) this.decodeEA32(m)
    else this.decodeEA16(m)
  }

  private decodeEA16(m: number): void {
    const mod = m >> 6
    const r16 = this.r16
    let seg = DS
    let off: number
    switch (m & 7) {
      case 0:
        off = r16[6]! + r16[12]!
        break
      case 1:
        off = r16[6]! + r16[14]!
        break
      case 2:
        off = r16[10]! + r16[12]!
        seg = SS
        break
      case 3:
        off = r16[10]! + r16[14]!
        seg = SS
        break
      case 4:
        off = r16[12]!
        break
      case 5:
        off = r16[14]!
        break
      case 6:
        if (mod === 0) off = this.fetch16()
        else {
          off = r16[10]!
          seg = SS
        }
        break
      default:
        off = r16[6]!
    }
    if (mod === 1) off += this.fetch8s()
    else if (mod === 2) off += this.fetch16()
    this.ea = off & 0xffff
    this.eaSeg = this.segOvr >= 0 ? this.segOvr : seg
  }

  private decodeEA32(m: number): void {
    const mod = m >> 6
    const rm = m & 7
    const r32 = this.r32
    let seg = DS
    let off: number
    if (rm === 4) {
      const sib = this.fetch8()
      const base = sib & 7
      const index = (sib >> 3) & 7
      if (base === 5 && mod === 0) off = this.fetch32()
      else {
        off = r32[base]!
        if (base === ESP || base === EBP) seg = SS
      }
      if (index !== 4) off += r32[index]! << (sib >> 6)
    } else if (rm === 5 && mod === 0) {
      off = this.fetch32()
    } else {
      off = r32[rm]!
      if (rm === EBP) seg = SS
    }
    if (mod === 1) off += this.fetch8s()
    else if (mod === 2) off += this.fetch32()
    this.ea = off | 0
    this.eaSeg = this.segOvr >= 0 ? this.segOvr : seg
  }

  // ======================================================================
  // registers by operand size
  // ======================================================================

  /** 8-bit register `i` (AL CL DL BL AH CH DH BH) as an index into r8. */
  static r8index(i: number): number {
    return i < 4 ? i << 2 : ((i - 4) << 2) + 1
  }

  getReg(size: AccessSize, i: number): number {
    return size === 4 ? this.r32[i]! : size === 2 ? this.r16[i << 1]! : this.r8[i < 4 ? i << 2 : ((i - 4) << 2) + 1]!
  }

  setReg(size: AccessSize, i: number, v: number): void {
    if (size === 4) this.r32[i] = v
    else if (size === 2) this.r16[i << 1] = v
    else this.r8[i < 4 ? i << 2 : ((i - 4) << 2) + 1] = v
  }

  /** Read the r/m operand of ModRM `m` (register or memory). */
  readRM(m: number, size: AccessSize): number {
    if (m >= 0xc0) return this.getReg(size, m & 7)
    this.decodeEA(m)
    return this.ldSize(this.linR(this.eaSeg, this.ea, size), size)
  }

  /** Read the 32-bit memory operand of ModRM `m` (mod != 3). */
  readMem32(m: number): number {
    this.decodeEA(m)
    return this.ld32(this.linR(this.eaSeg, this.ea, 4))
  }

  /** The linear address of the memory operand of ModRM `m` (mod != 3), checked for a 32-bit write (and read). */
  eaLinW32(m: number): number {
    this.decodeEA(m)
    return this.linW(this.eaSeg, this.ea, 4)
  }

  /** Write the 32-bit memory operand of ModRM `m` (mod != 3). */
  writeMem32(m: number, v: number): void {
    this.decodeEA(m)
    this.st32(this.linW(this.eaSeg, this.ea, 4), v)
  }

  /** Write the r/m operand of ModRM `m` (decodes the address: do not mix with readRM). */
  writeRM(m: number, size: AccessSize, v: number): void {
    if (m >= 0xc0) this.setReg(size, m & 7, v)
    else {
      this.decodeEA(m)
      this.stSize(this.linW(this.eaSeg, this.ea, size), size, v)
    }
  }

  /** Begin a read-modify-write of the r/m operand; finish with rmwEnd. */
  rmwBegin(m: number, size: AccessSize): number {
    if (m >= 0xc0) {
      this.rmwReg = m & 7
      return this.getReg(size, m & 7)
    }
    this.decodeEA(m)
    this.rmwReg = -1
    const lin = this.linW(this.eaSeg, this.ea, size)
    this.rmwLin = lin
    return this.ldSize(lin, size)
  }

  rmwEnd(size: AccessSize, v: number): void {
    if (this.rmwReg >= 0) this.setReg(size, this.rmwReg, v)
    else this.stSize(this.rmwLin, size, v)
  }

  // ======================================================================
  // stack (SS:ESP or SS:SP per SS.B)
  // ======================================================================

  get sp(): number {
    return this.ssB ? this.r32[ESP]! : this.r16[ESP << 1]!
  }

  /** Set the stack pointer, keeping ESP's upper half when the stack is 16-bit. */
  setSp(v: number): void {
    if (this.ssB) this.r32[ESP] = v
    else this.r16[ESP << 1] = v
  }

  /** Offset `delta` bytes from the stack pointer, wrapped to the stack's width. */
  spPlus(delta: number): number {
    return this.ssB ? (this.r32[ESP]! + delta) | 0 : (this.r16[ESP << 1]! + delta) & 0xffff
  }

  push16(v: number): void {
    const sp = this.spPlus(-2)
    this.st16(this.linW(SS, sp, 2), v)
    this.setSp(sp)
  }

  push32(v: number): void {
    const sp = this.spPlus(-4)
    this.st32(this.linW(SS, sp, 4), v)
    this.setSp(sp)
  }

  pushV(v: number): void {
    if (this.o32) this.push32(v)
    else this.push16(v)
  }

  pop16(): number {
    const sp = this.sp
    const v = this.ld16(this.linR(SS, sp, 2))
    this.setSp(this.spPlus(2))
    return v
  }

  pop32(): number {
    const sp = this.sp
    const v = this.ld32(this.linR(SS, sp, 4))
    this.setSp(this.spPlus(4))
    return v
  }

  popV(): number {
    return this.o32 ? this.pop32() : this.pop16()
  }

  /** Read the stack at `delta` bytes above the stack pointer without popping. */
  peek(delta: number, size: 2 | 4): number {
    const off = this.spPlus(delta)
    return size === 4 ? this.ld32(this.linR(SS, off, 4)) : this.ld16(this.linR(SS, off, 2))
  }

  // ======================================================================
  // state record (snapshots, tests, conformance)
  // ======================================================================

  private segState(seg: number): SegmentState {
    return {
      selector: this.segSel[seg]!,
      base: this.segBase[seg]! >>> 0,
      limit: this.segLimit[seg]!,
      access: this.segAccess[seg]!
    }
  }

  getState(): CpuState {
    const r = this.r32
    return {
      eax: r[0]! >>> 0,
      ecx: r[1]! >>> 0,
      edx: r[2]! >>> 0,
      ebx: r[3]! >>> 0,
      esp: r[4]! >>> 0,
      ebp: r[5]! >>> 0,
      esi: r[6]! >>> 0,
      edi: r[7]! >>> 0,
      eip: this.eip >>> 0,
      eflags: this.getFlags() >>> 0,
      es: this.segState(ES),
      cs: this.segState(CS),
      ss: this.segState(SS),
      ds: this.segState(DS),
      fs: this.segState(FS),
      gs: this.segState(GS),
      ldtr: { ...this.ldtr },
      tr: { ...this.tr },
      gdtr: { base: this.gdtrBase >>> 0, limit: this.gdtrLimit },
      idtr: { base: this.idtrBase >>> 0, limit: this.idtrLimit },
      cr0: this.cr0 >>> 0,
      cr2: this.cr2 >>> 0,
      cr3: this.cr3 >>> 0,
      cr4: this.cr4 >>> 0,
      dr: Array.from(this.dr, (d) => d >>> 0),
      tsc: this.cycles + this.tscOffset,
      msr: {
        apicBase: this.apicBase >>> 0,
        sysenterCs: this.sysenterCs >>> 0,
        sysenterEsp: this.sysenterEsp >>> 0,
        sysenterEip: this.sysenterEip >>> 0
      },
      halted: this.halted,
      a20: this.a20Mask === -1
    }
  }

  private storeSegment(seg: number, g: SegmentState): void {
    g.selector = this.segSel[seg]!
    g.base = this.segBase[seg]! >>> 0
    g.limit = this.segLimit[seg]!
    g.access = this.segAccess[seg]!
  }

  private loadSegment(seg: number, g: SegmentState): void {
    this.fillSegCache(seg, g.selector, g.base, g.limit, g.access)
  }

  /** Write the register state into an existing record (VM exit: no allocation). */
  storeRegisters(s: CpuState): void {
    const r = this.r32
    s.eax = r[0]! >>> 0
    s.ecx = r[1]! >>> 0
    s.edx = r[2]! >>> 0
    s.ebx = r[3]! >>> 0
    s.esp = r[4]! >>> 0
    s.ebp = r[5]! >>> 0
    s.esi = r[6]! >>> 0
    s.edi = r[7]! >>> 0
    s.eip = this.eip >>> 0
    s.eflags = this.getFlags() >>> 0
    this.storeSegment(ES, s.es)
    this.storeSegment(CS, s.cs)
    this.storeSegment(SS, s.ss)
    this.storeSegment(DS, s.ds)
    this.storeSegment(FS, s.fs)
    this.storeSegment(GS, s.gs)
    copySegment(this.ldtr, s.ldtr)
    copySegment(this.tr, s.tr)
    s.gdtr.base = this.gdtrBase >>> 0
    s.gdtr.limit = this.gdtrLimit
    s.idtr.base = this.idtrBase >>> 0
    s.idtr.limit = this.idtrLimit
    s.cr0 = this.cr0 >>> 0
    s.cr2 = this.cr2 >>> 0
    s.cr3 = this.cr3 >>> 0
    s.cr4 = this.cr4 >>> 0
    for (let i = 0; i < 8; i++) s.dr[i] = this.dr[i]! >>> 0
    s.msr.apicBase = this.apicBase >>> 0
    s.msr.sysenterCs = this.sysenterCs >>> 0
    s.msr.sysenterEsp = this.sysenterEsp >>> 0
    s.msr.sysenterEip = this.sysenterEip >>> 0
    s.halted = this.halted
    s.a20 = this.a20Mask === -1
  }

  /**
   * The segment caches, CR0 (PE, PG) and CPL already hold what `s` would load (a vCPU re-entered on the
   * pCPU it left): what is derived from them (fast-path limits, CPL masks) is current and stays.
   */
  private holdsModeOf(s: CpuState): boolean {
    const cr0 = s.cr0 | 0
    if (cr0 !== this.cr0) return false
    const pe = (cr0 & CR0_PE) !== 0
    if (pe !== this.pe || (pe && (cr0 & CR0_PG) !== 0) !== this.pg) return false
    if (this.cpl !== (pe ? (this.segAccess[SS]! >> 5) & 3 : 0)) return false
    return (
      this.holdsSegment(ES, s.es) &&
      this.holdsSegment(CS, s.cs) &&
      this.holdsSegment(SS, s.ss) &&
      this.holdsSegment(DS, s.ds) &&
      this.holdsSegment(FS, s.fs) &&
      this.holdsSegment(GS, s.gs)
    )
  }

  private holdsSegment(seg: number, g: SegmentState): boolean {
    return (
      this.segSel[seg] === g.selector &&
      this.segBase[seg] === (g.base | 0) &&
      this.segLimit[seg] === g.limit >>> 0 &&
      this.segAccess[seg] === g.access
    )
  }

  /** Load the register state of a record, leaving the TLB and the TSC alone (VM entry). */
  loadRegisters(s: CpuState): void {
    const holdsMode = this.holdsModeOf(s)
    const r = this.r32
    r[0] = s.eax
    r[1] = s.ecx
    r[2] = s.edx
    r[3] = s.ebx
    r[4] = s.esp
    r[5] = s.ebp
    r[6] = s.esi
    r[7] = s.edi
    this.eip = s.eip | 0
    this.cr0 = s.cr0 | 0
    this.cr2 = s.cr2 | 0
    this.cr3 = s.cr3 | 0
    this.cr4 = s.cr4 | 0
    for (let i = 0; i < 8; i++) this.dr[i] = s.dr[i] ?? 0
    this.gdtrBase = s.gdtr.base | 0
    this.gdtrLimit = s.gdtr.limit & 0xffff
    this.idtrBase = s.idtr.base | 0
    this.idtrLimit = s.idtr.limit & 0xffff
    copySegment(s.ldtr, this.ldtr)
    copySegment(s.tr, this.tr)
    if (holdsMode) {
      this.invalidateFetch()
    } else {
      this.pe = (this.cr0 & CR0_PE) !== 0
      this.loadSegment(ES, s.es)
      this.loadSegment(CS, s.cs)
      this.loadSegment(SS, s.ss)
      this.loadSegment(DS, s.ds)
      this.loadSegment(FS, s.fs)
      this.loadSegment(GS, s.gs)
    }
    this.flags = (s.eflags & ~0x8028) | 2
    this.ccOp = 0
    this.apicBase = s.msr.apicBase | 0
    this.sysenterCs = s.msr.sysenterCs | 0
    this.sysenterEsp = s.msr.sysenterEsp | 0
    this.sysenterEip = s.msr.sysenterEip | 0
    this.halted = s.halted
    this.a20Mask = s.a20 ? -1 : ~(1 << 20)
    this.intShadow = false
    this.tfTrap = false
    this.eventPending = true
    this.resetPrefixes()
    if (!holdsMode) this.updateMode()
  }

  setState(s: CpuState): void {
    this.loadRegisters(s)
    this.tscOffset = s.tsc - this.cycles
    this.flushTlb(false)
  }

  /** IF is set. */
  get interruptsEnabled(): boolean {
    return (this.flags & F_IF) !== 0
  }
}
