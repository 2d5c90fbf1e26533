/**
 * The local APIC of one pCPU, xAPIC mode, as far as a hypervisor's timer and
 * IPIs need it (Intel SDM Vol. 3A ch. 11 "Advanced Programmable Interrupt
 * Controller"; ch. 10 in older editions). x2APIC is not modelled.
 *
 * Modelled (section numbers of the 2023+ SDM):
 * - registers of Table 11-1 (see registers.ts); reserved offsets read 0 and
 *   log "illegal register address" in the ESR (11.5.3);
 * - reset (11.4.7.1) and INIT reset (11.4.7.3: same, but the ID survives);
 * - software enable through SVR bit 8 (11.4.7.2): while disabled every LVT
 *   entry is forced masked and new fixed interrupts are dropped (as KVM
 *   does); vectors already in IRR/ISR are held and still delivered;
 * - interrupt acceptance (11.8.4: IRR, ISR, TMR), priorities (11.8.3: TPR,
 *   PPR), EOI (11.8.5: clears the highest ISR bit; a level-triggered vector
 *   is reported through `onEoi` for the I/O APIC), the spurious vector when
 *   an acknowledged interrupt vanished (11.9), illegal vectors 0-15 (11.5.2);
 * - the timer (11.5.4), one-shot and periodic, computed from virtual time
 *   (timer.ts); TSC-deadline mode is not advertised and reads as one-shot;
 * - IPIs through ICR (11.6.1): fixed, lowest priority, NMI, INIT (incl. the
 *   level de-assert that does nothing), SIPI; routing is ipi.ts;
 * - LINT0/LINT1 pins with fixed, NMI, INIT and ExtINT delivery (edge only:
 *   remote IRR is not modelled); thermal and perf-monitor LVTs are storage.
 *
 * Files: registers.ts (offsets, bits), vectors.ts (IRR/ISR/TMR, priorities),
 * timer.ts (countdown arithmetic), ipi.ts (messages, routing), state.ts
 * (snapshot record).
 *
 * What reaches the core is left for the machine to take: `hasInterrupt()` /
 * `acknowledge()` for maskable interrupts (INTR/INTA), `extIntPending` for a
 * PIC behind LINT0, and `takeNmi()`, `takeInit()`, `takeStartup()`; `onWake`
 * fires whenever one of them may have become true (to un-halt the pCPU).
 *
 * Access rules: 32-bit aligned writes only (others are ignored, the SDM calls
 * narrower accesses model-specific); reads of 1, 2 or 4 bytes anywhere in a
 * register's first dword. Time: `clock()` gives virtual ns for register
 * reads/writes; `tick(now)` delivers due timer expiries and returns the next
 * deadline (Infinity when the timer is stopped or masked: expiries while
 * masked are lost, as on hardware, so a masked timer never wakes the
 * machine). After any register write the machine re-reads `nextDeadline()`.
 */
import type { BusDevice, TimedDevice } from "../../machine/device.ts"
import type { IpiMessage, IpiTarget } from "./ipi.ts"
import {
  DeliveryMode,
  DFR_CLUSTER,
  DFR_FLAT,
  DIVIDE_WRITABLE,
  divisorOf,
  EsrBit,
  ICR_HIGH_WRITABLE,
  ICR_LEVEL_ASSERT,
  ICR_LOGICAL,
  ICR_LOW_WRITABLE,
  ICR_TRIGGER_LEVEL,
  LAPIC_MMIO_SIZE,
  LAPIC_VERSION,
  LapicReg,
  LVT_MASK,
  LVT_RESET,
  LVT_TIMER_PERIODIC,
  LVT_TRIGGER_LEVEL,
  LVT_WRITABLE,
  type LvtName,
  type Shorthand,
  SVR_ENABLE,
  SVR_WRITABLE
} from "./registers.ts"
import type { LapicState } from "./state.ts"
import { currentCount, expiriesBy, expiryTime, type TimerCountdown } from "./timer.ts"
import { VectorBanks } from "./vectors.ts"

export type { LapicState }

export interface LapicOptions {
  /** APIC ID after power-up (0..254; 255 is the broadcast destination). */
  readonly id: number
  /** Timer input clock (the bus clock) in Hz, a positive integer, e.g. 100_000_000. */
  readonly busHz: number
  /** The machine's virtual time in ns (never the wall clock). */
  readonly clock: () => number
}

const LVT_OFFSETS: ReadonlyArray<readonly [number, LvtName]> = [
  [LapicReg.LVT_TIMER, "timer"],
  [LapicReg.LVT_THERMAL, "thermal"],
  [LapicReg.LVT_PERF, "perf"],
  [LapicReg.LVT_LINT0, "lint0"],
  [LapicReg.LVT_LINT1, "lint1"],
  [LapicReg.LVT_ERROR, "error"]
]
const lvtAt = new Map(LVT_OFFSETS)
const lvtNames = LVT_OFFSETS.map(([, name]) => name)

const allOnes = (size: number) => (size === 4 ? 0xffffffff : size === 2 ? 0xffff : 0xff)
const u32 = (v: unknown): number => (typeof v === "number" && Number.isFinite(v) ? v >>> 0 : 0)

export class LocalApic implements BusDevice, TimedDevice, IpiTarget {
  readonly name: string
  private readonly powerUpId: number
  private readonly busHz: number
  private readonly clock: () => number

  private id = 0
  private tpr = 0
  private ldr = 0
  private dfr = 0xffffffff
  private svr = 0xff
  private esr = 0
  private esrPending = 0
  private icrLow = 0
  private icrHigh = 0
  private readonly banks = new VectorBanks()
  private readonly lvt: Record<LvtName, number> = {
    timer: LVT_RESET,
    thermal: LVT_RESET,
    perf: LVT_RESET,
    lint0: LVT_RESET,
    lint1: LVT_RESET,
    error: LVT_RESET
  }
  private timerInitial = 0
  private timerDivide = 0
  private countdown: TimerCountdown | undefined
  private lintLevel = { lint0: false, lint1: false }
  private nmiPending = false
  private initPending = false
  private startupVector: number | undefined

  private ipiHook: ((ipi: IpiMessage) => void) | undefined
  private wakeHook: (() => void) | undefined
  private eoiHook: ((vector: number) => void) | undefined

  constructor(options: LapicOptions) {
    if (!Number.isInteger(options.busHz) || options.busHz <= 0) throw new RangeError("LAPIC busHz must be > 0")
    if (!Number.isInteger(options.id) || options.id < 0 || options.id > 254) throw new RangeError("APIC ID 0..254")
    this.powerUpId = options.id
    this.busHz = options.busHz
    this.clock = options.clock
    this.name = `lapic${options.id}`
    this.reset()
  }

  // ---- wiring ------------------------------------------------------------

  /** Where IPIs written to ICR go (the machine wires it to `routeIpi`). */
  onIpi(callback: (ipi: IpiMessage) => void): void {
    this.ipiHook = callback
  }
  /** Called whenever an interrupt, NMI, INIT or SIPI may be pending for the core. */
  onWake(callback: () => void): void {
    this.wakeHook = callback
  }
  /** Called on EOI of a level-triggered vector (the EOI message to the I/O APIC). */
  onEoi(callback: (vector: number) => void): void {
    this.eoiHook = callback
  }

  // ---- reset -------------------------------------------------------------

  /** Power-up / RESET# state (11.4.7.1). */
  reset(): void {
    this.initReset()
    this.id = this.powerUpId
    this.nmiPending = false
    this.initPending = false
  }

  /** INIT state (11.4.7.3): like reset, but the APIC ID is kept. */
  private initReset(): void {
    this.tpr = 0
    this.ldr = 0
    this.dfr = 0xffffffff
    this.svr = 0xff
    this.esr = 0
    this.esrPending = 0
    this.icrLow = 0
    this.icrHigh = 0
    this.banks.clear()
    for (const name of lvtNames) this.lvt[name] = LVT_RESET
    this.timerInitial = 0
    this.timerDivide = 0
    this.countdown = undefined
    this.startupVector = undefined
  }

  // ---- register access ---------------------------------------------------

  read(offset: number, size: 1 | 2 | 4): number {
    if (!Number.isInteger(offset) || offset < 0 || offset + size > LAPIC_MMIO_SIZE) return allOnes(size)
    const byte = offset & 0xf
    if (byte >= 4) return 0
    const full = this.readRegister(offset - byte)
    return size === 4 && byte === 0 ? full >>> 0 : (full >>> (byte * 8)) & allOnes(size)
  }

  private readRegister(reg: number): number {
    const { isr, tmr, irr } = this.banks
    if (reg >= LapicReg.ISR0 && reg < LapicReg.ISR0 + 0x80) return isr[(reg - LapicReg.ISR0) >>> 4]!
    if (reg >= LapicReg.TMR0 && reg < LapicReg.TMR0 + 0x80) return tmr[(reg - LapicReg.TMR0) >>> 4]!
    if (reg >= LapicReg.IRR0 && reg < LapicReg.IRR0 + 0x80) return irr[(reg - LapicReg.IRR0) >>> 4]!
    const lvt = lvtAt.get(reg)
    if (lvt !== undefined) return this.lvt[lvt]
    switch (reg) {
      case LapicReg.ID:
        return (this.id << 24) >>> 0
      case LapicReg.VERSION:
        return LAPIC_VERSION
      case LapicReg.TPR:
        return this.tpr
      case LapicReg.APR: // arbitration priority: not used by P4-class parts; reads 0
      case LapicReg.EOI: // write-only
      case LapicReg.RRD: // remote read: not supported
        return 0
      case LapicReg.PPR:
        return this.processorPriority
      case LapicReg.LDR:
        return this.ldr
      case LapicReg.DFR:
        return this.dfr
      case LapicReg.SVR:
        return this.svr
      case LapicReg.ESR:
        return this.esr
      case LapicReg.ICR_LOW:
        return this.icrLow // delivery status (bit 12) is always 0: delivery is synchronous
      case LapicReg.ICR_HIGH:
        return this.icrHigh
      case LapicReg.TIMER_INITIAL:
        return this.timerInitial
      case LapicReg.TIMER_CURRENT:
        return this.countdown === undefined ? 0 : this.count(this.clock())
      case LapicReg.TIMER_DIVIDE:
        return this.timerDivide
      default:
        this.logError(EsrBit.IllegalRegister)
        return 0
    }
  }

  write(offset: number, size: 1 | 2 | 4, value: number): void {
    if (!Number.isInteger(offset) || offset < 0 || offset >= LAPIC_MMIO_SIZE) return
    if (size !== 4 || (offset & 0xf) !== 0) return
    const v = u32(value)
    const lvt = lvtAt.get(offset)
    if (lvt !== undefined) {
      this.writeLvt(lvt, v)
      return
    }
    switch (offset) {
      case LapicReg.ID:
        this.id = v >>> 24
        return
      case LapicReg.TPR:
        this.tpr = v & 0xff
        return
      case LapicReg.EOI:
        this.eoi()
        return
      case LapicReg.LDR:
        this.ldr = (v & 0xff000000) >>> 0
        return
      case LapicReg.DFR:
        this.dfr = ((v & 0xf0000000) | 0x0fffffff) >>> 0
        return
      case LapicReg.SVR:
        this.svr = v & SVR_WRITABLE
        if (!this.softwareEnabled) {
          this.catchUp(this.clock())
          for (const name of lvtNames) this.lvt[name] |= LVT_MASK
        }
        return
      case LapicReg.ESR: // the write latches the errors logged since the last write (11.5.3)
        this.esr = this.esrPending
        this.esrPending = 0
        return
      case LapicReg.ICR_LOW:
        this.icrLow = v & ICR_LOW_WRITABLE
        this.sendIpi()
        return
      case LapicReg.ICR_HIGH:
        this.icrHigh = (v & ICR_HIGH_WRITABLE) >>> 0
        return
      case LapicReg.TIMER_INITIAL: {
        const now = this.clock()
        this.catchUp(now)
        this.timerInitial = v
        this.countdown = v === 0 ? undefined : { start: now, base: v, fired: 0 }
        return
      }
      case LapicReg.TIMER_DIVIDE: {
        const now = this.clock()
        this.catchUp(now)
        this.rebase(now)
        this.timerDivide = v & DIVIDE_WRITABLE
        return
      }
      case LapicReg.VERSION:
      case LapicReg.APR:
      case LapicReg.PPR:
      case LapicReg.RRD:
      case LapicReg.TIMER_CURRENT:
        return // read-only
      default:
        if (offset >= LapicReg.ISR0 && offset < LapicReg.IRR0 + 0x80) return // ISR/TMR/IRR are read-only
        this.logError(EsrBit.IllegalRegister)
    }
  }

  private writeLvt(name: LvtName, v: number): void {
    let value = v & LVT_WRITABLE[name]
    if (!this.softwareEnabled) value |= LVT_MASK
    if (name === "timer") {
      const now = this.clock()
      this.catchUp(now)
      this.rebase(now)
    }
    this.lvt[name] = value
  }

  // ---- state seen by the machine and the router --------------------------

  get apicId(): number {
    return this.id
  }

  get softwareEnabled(): boolean {
    return (this.svr & SVR_ENABLE) !== 0
  }

  /** PPR (11.8.3.1): the TPR, or the class of the highest in-service vector if that is higher. */
  get processorPriority(): number {
    return this.banks.processorPriority(this.tpr)
  }

  matches(logical: boolean, destination: number): boolean {
    const dest = destination & 0xff
    if (dest === 0xff) return true
    if (!logical) return dest === this.id
    const logicalId = this.ldr >>> 24
    const model = this.dfr >>> 28
    if (model === DFR_FLAT) return (logicalId & dest) !== 0
    if (model === DFR_CLUSTER) {
      const cluster = dest >>> 4
      return (cluster === 0xf || cluster === logicalId >>> 4) && (dest & logicalId & 0xf) !== 0
    }
    return false
  }

  // ---- interrupt acceptance and delivery to the core ----------------------

  /** A fixed interrupt arrives (from an IPI, the I/O APIC or an LVT): set its IRR bit. False if refused. */
  accept(vector: number, levelTriggered = false): boolean {
    return this.acceptVector(u32(vector) & 0xff, levelTriggered, false)
  }

  private acceptVector(vector: number, levelTriggered: boolean, fromErrorLvt: boolean): boolean {
    if (vector < 16) {
      // 11.5.2: vectors 0-15 are illegal; an error-LVT delivery does not re-enter the error path
      if (fromErrorLvt) this.esrPending |= EsrBit.ReceiveIllegalVector
      else this.logError(EsrBit.ReceiveIllegalVector)
      return false
    }
    if (!this.softwareEnabled) return false
    this.banks.request(vector, levelTriggered)
    this.wakeHook?.()
    return true
  }

  /** Is there an IRR vector whose priority class is above the PPR's (11.8.3)? */
  hasInterrupt(): boolean {
    return this.banks.deliverable(this.tpr)
  }

  /** INTA: move the highest IRR vector to ISR and return it; the spurious vector if none is deliverable (11.9). */
  acknowledge(): number {
    const v = this.banks.acknowledge(this.tpr)
    return v < 0 ? this.svr & 0xff : v
  }

  private eoi(): void {
    const { vector, level } = this.banks.endOfInterrupt()
    if (vector < 0) return
    if (level) this.eoiHook?.(vector)
    if (this.hasInterrupt()) this.wakeHook?.()
  }

  /** ExtINT through LINT0/LINT1: the core should INTA the legacy PIC. */
  get extIntPending(): boolean {
    const pin = (name: LvtName, level: boolean) =>
      level && (this.lvt[name] & LVT_MASK) === 0 && ((this.lvt[name] >>> 8) & 7) === DeliveryMode.ExtInt
    return pin("lint0", this.lintLevel.lint0) || pin("lint1", this.lintLevel.lint1)
  }

  takeNmi(): boolean {
    const taken = this.nmiPending
    this.nmiPending = false
    return taken
  }
  takeInit(): boolean {
    const taken = this.initPending
    this.initPending = false
    return taken
  }
  /** The vector (start page) of a pending SIPI; the core honours it only in wait-for-SIPI. */
  takeStartup(): number | undefined {
    const taken = this.startupVector
    this.startupVector = undefined
    return taken
  }

  /** Drive a local interrupt pin (true = asserted); delivery on the rising edge per its LVT entry. */
  setLint(pin: 0 | 1, asserted: boolean): void {
    const name = pin === 0 ? "lint0" : "lint1"
    const rising = asserted && !this.lintLevel[name]
    this.lintLevel[name] = asserted
    const entry = this.lvt[name]
    if (!rising || (entry & LVT_MASK) !== 0) return
    this.deliverLocal((entry >>> 8) & 7, entry & 0xff, (entry & LVT_TRIGGER_LEVEL) !== 0)
  }

  private deliverLocal(mode: number, vector: number, levelTriggered: boolean): void {
    switch (mode) {
      case DeliveryMode.Fixed:
        this.acceptVector(vector, levelTriggered, false)
        return
      case DeliveryMode.Nmi:
        this.nmiPending = true
        this.wakeHook?.()
        return
      case DeliveryMode.Init:
        this.initReset()
        this.initPending = true
        this.wakeHook?.()
        return
      case DeliveryMode.ExtInt:
        this.wakeHook?.()
        return
      default: // SMI (no SMM) and reserved modes
        return
    }
  }

  receiveIpi(ipi: IpiMessage): void {
    switch (ipi.deliveryMode) {
      case DeliveryMode.Fixed:
      case DeliveryMode.LowestPriority:
        this.acceptVector(ipi.vector & 0xff, ipi.levelTriggered, false)
        return
      case DeliveryMode.Init:
        if (!ipi.assert && ipi.levelTriggered) return // INIT level de-assert: arbitration ID sync only
        this.deliverLocal(DeliveryMode.Init, 0, false)
        return
      case DeliveryMode.Nmi:
        this.deliverLocal(DeliveryMode.Nmi, 0, false)
        return
      case DeliveryMode.Startup:
        this.startupVector = ipi.vector & 0xff
        this.wakeHook?.()
        return
      default:
        return
    }
  }

  private sendIpi(): void {
    const low = this.icrLow
    const mode = (low >>> 8) & 7
    const vector = low & 0xff
    if (mode === 3 || mode === DeliveryMode.ExtInt) return // reserved for IPIs
    if ((mode === DeliveryMode.Fixed || mode === DeliveryMode.LowestPriority) && vector < 16) {
      this.logError(EsrBit.SendIllegalVector)
      return
    }
    this.ipiHook?.({
      vector,
      deliveryMode: mode as DeliveryMode,
      logical: (low & ICR_LOGICAL) !== 0,
      destination: this.icrHigh >>> 24,
      shorthand: ((low >>> 18) & 3) as Shorthand,
      assert: (low & ICR_LEVEL_ASSERT) !== 0,
      levelTriggered: (low & ICR_TRIGGER_LEVEL) !== 0
    })
  }

  private logError(bits: number): void {
    this.esrPending |= bits
    const entry = this.lvt.error
    if ((entry & LVT_MASK) === 0) this.acceptVector(entry & 0xff, false, true)
  }

  // ---- timer ---------------------------------------------------------------

  private get periodic(): boolean {
    return (this.lvt.timer & LVT_TIMER_PERIODIC) !== 0
  }

  private get divisor(): number {
    return divisorOf(this.timerDivide)
  }

  private count(now: number): number {
    return this.countdown === undefined
      ? 0
      : currentCount(this.countdown, now, this.timerInitial, this.periodic, this.busHz, this.divisor)
  }

  /** Restart the countdown at `now` from the current count (divisor or mode change). */
  private rebase(now: number): void {
    if (this.countdown === undefined) return
    const current = this.count(now)
    this.countdown = current === 0 ? undefined : { start: now, base: current, fired: 0 }
  }

  /** Signal the expiries due by `now` (at most one interrupt: IRR holds one bit per vector). */
  private catchUp(now: number): void {
    const c = this.countdown
    if (c === undefined) return
    const due = expiriesBy(c, now, this.timerInitial, this.periodic, this.busHz, this.divisor)
    if (due <= c.fired) return
    c.fired = due
    if (!this.periodic) this.countdown = undefined
    const entry = this.lvt.timer
    if ((entry & LVT_MASK) === 0) this.acceptVector(entry & 0xff, false, false)
  }

  tick(now: number): number {
    this.catchUp(now)
    return this.nextDeadline()
  }

  /** Virtual time of the next timer interrupt, or Infinity (stopped or masked). */
  nextDeadline(): number {
    const c = this.countdown
    if (c === undefined || (this.lvt.timer & LVT_MASK) !== 0) return Number.POSITIVE_INFINITY
    return expiryTime(c, c.fired, this.timerInitial, this.busHz, this.divisor)
  }

  // ---- snapshot ------------------------------------------------------------

  snapshot(): LapicState {
    return {
      id: this.id,
      tpr: this.tpr,
      ldr: this.ldr,
      dfr: this.dfr,
      svr: this.svr,
      esr: this.esr,
      esrPending: this.esrPending,
      icrLow: this.icrLow,
      icrHigh: this.icrHigh,
      irr: Array.from(this.banks.irr),
      isr: Array.from(this.banks.isr),
      tmr: Array.from(this.banks.tmr),
      lvt: { ...this.lvt },
      timerInitial: this.timerInitial,
      timerDivide: this.timerDivide,
      countdown: this.countdown === undefined ? null : { ...this.countdown },
      lint: { ...this.lintLevel },
      pending: { nmi: this.nmiPending, init: this.initPending, startupVector: this.startupVector ?? null }
    }
  }

  /** Restore a snapshot; every field is masked to its register width, so a damaged record cannot break invariants. */
  restore(s: LapicState): void {
    this.id = u32(s.id) & 0xff
    this.tpr = u32(s.tpr) & 0xff
    this.ldr = (u32(s.ldr) & 0xff000000) >>> 0
    this.dfr = ((u32(s.dfr) & 0xf0000000) | 0x0fffffff) >>> 0
    this.svr = u32(s.svr) & SVR_WRITABLE
    this.esr = u32(s.esr) & 0xff
    this.esrPending = u32(s.esrPending) & 0xff
    this.icrLow = u32(s.icrLow) & ICR_LOW_WRITABLE
    this.icrHigh = (u32(s.icrHigh) & ICR_HIGH_WRITABLE) >>> 0
    this.banks.load(s.irr, s.isr, s.tmr)
    for (const name of lvtNames) this.lvt[name] = u32(s.lvt[name]) & LVT_WRITABLE[name]
    this.timerInitial = u32(s.timerInitial)
    this.timerDivide = u32(s.timerDivide) & DIVIDE_WRITABLE
    const c = s.countdown
    this.countdown =
      c === null || this.timerInitial === 0 || !(u32(c.base) >= 1) || !Number.isFinite(c.start)
        ? undefined
        : {
            start: Math.floor(c.start),
            base: u32(c.base),
            fired: Number.isSafeInteger(c.fired) ? Math.max(0, c.fired) : 0
          }
    this.lintLevel = { lint0: s.lint.lint0 === true, lint1: s.lint.lint1 === true }
    this.nmiPending = s.pending.nmi === true
    this.initPending = s.pending.init === true
    const sv = s.pending.startupVector
    this.startupVector = sv === null ? undefined : u32(sv) & 0xff
  }
}
