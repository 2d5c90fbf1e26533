/**
 * 32-bit paging and the software TLB (Intel SDM Vol. 3A 4.3 "32-bit
 * paging", 4.6 access rights, 4.7 page-fault exceptions, 4.8 accessed and
 * dirty flags, 4.10 TLBs).
 *
 * The TLB maps a linear page number to `machine page address | flags`. A
 * valid entry already encodes every permission question the fast path asks:
 *
 *   TLB_VALID       the translation is cached
 *   TLB_NO_USER     a CPL 3 access must fault (U/S = 0 somewhere on the walk)
 *   TLB_NO_WRITE_U  a CPL 3 write must take the slow path (read-only, or D = 0)
 *   TLB_NO_WRITE_S  a supervisor write must take the slow path (read-only with
 *                   CR0.WP = 1, or D = 0 so the walk sets it)
 *   TLB_ROM         writes go to the bus (ROM)
 *   TLB_MMIO        every access goes to the bus
 *   TLB_NO_READ     EPT grants no read: reads and writes refill (and exit)
 *   TLB_NO_EXEC     EPT grants no execute: instruction fetches refill (and exit)
 *   TLB_GLOBAL      kept across CR3 loads (CR4.PGE and G = 1)
 *
 * Machine address = entry & ~0xFFF | offset. With paging off the walk is the
 * identity (plus the A20 mask).
 *
 * In VMX non-root operation with EPT (vmx/ept.ts), every guest-physical
 * address this walk produces or reads (the page-directory and page-table
 * entries included) is translated again, guest-physical -> machine, and an
 * EPT violation or misconfiguration becomes a VM exit (SDM 3C 29.3.3).
 */
import { PageKind } from "./bus.ts"
import type { Cpu } from "./cpu.ts"
import { CR0_WP, CR4_PGE, CR4_PSE, PF } from "./regs.ts"
import { Access, EPT_EXEC, EPT_READ, EPT_WRITE, EptOutcome, ept, eptWalk } from "./vmx/ept.ts"
import { EptQual, ExitReason } from "./vmx/exit-reasons.ts"
import { vmExitNow } from "./vmx/vmx.ts"

export const TLB_VALID = 1 << 0
export const TLB_NO_USER = 1 << 1
export const TLB_NO_WRITE_U = 1 << 2
export const TLB_NO_WRITE_S = 1 << 3
export const TLB_ROM = 1 << 4
export const TLB_MMIO = 1 << 5
export const TLB_NO_READ = 1 << 6
export const TLB_NO_EXEC = 1 << 7
export const TLB_GLOBAL = 1 << 11

export { Access }

/** Entries remembered for a selective flush; past this a flush clears the whole table. */
export const TLB_LIST_SIZE = 8192

// Page-table entry bits (SDM table 4-5, 4-6).
export const PTE_P = 1 << 0
export const PTE_RW = 1 << 1
export const PTE_US = 1 << 2
export const PTE_A = 1 << 5
export const PTE_D = 1 << 6
export const PTE_PS = 1 << 7
export const PTE_G = 1 << 8

/** Page-fault error code bits (SDM 4.7). */
export const PFEC_P = 1
export const PFEC_W = 2
export const PFEC_U = 4

function install(c: Cpu, page: number, entry: number): number {
  if (c.tlb[page] === 0) {
    if (c.tlbCount < c.tlbList.length) c.tlbList[c.tlbCount] = page
    c.tlbCount++
  }
  c.tlb[page] = entry
  return entry
}

function pageFault(c: Cpu, linear: number, error: number): never {
  // CR2 is written when the #PF is delivered, not when a VM exit intercepts it (SDM 3C 27.1)
  c.faultAddress = linear | 0
  return c.fault(PF, error)
}

function kindBits(c: Cpu, machine: number): number {
  if (lastBus) return TLB_MMIO
  const kind = c.mem.pageKind(machine >>> 12)
  return kind === PageKind.Ram ? 0 : kind === PageKind.Rom ? TLB_ROM : TLB_MMIO
}

/** EPT permissions of the last guest-physical -> machine translation (all of them outside EPT). */
let lastEptPerms = EPT_READ | EPT_WRITE | EPT_EXEC

/** The last translation found no RAM behind the address (Cpu.physicalPage): it goes to the bus. */
let lastBus = false

/**
 * Guest-physical -> machine for one access: the identity outside EPT; through
 * the EPT in non-root operation, where a violation or misconfiguration is a
 * VM exit with the SDM's qualification (table 28-7).
 */
function toMachine(c: Cpu, gpa: number, access: number, linear: number, translated: boolean): number {
  gpa >>>= 0
  lastBus = false
  if (!c.vmEpt) {
    lastEptPerms = EPT_READ | EPT_WRITE | EPT_EXEC
    const map = c.physicalPage
    if (map === null) return gpa
    // a CPU over a VM's guest-physical space (vmm/engines/emu.ts): RAM pages by their machine frame, the rest the bus's
    const page = map(gpa >>> 12)
    if (page < 0) {
      lastBus = true
      return gpa
    }
    return (page * 4096 + (gpa & 0xfff)) >>> 0
  }
  const outcome = eptWalk(c.mem, c.dv, c.vmEptp, gpa, access)
  if (outcome === EptOutcome.Ok) {
    lastEptPerms = ept.perms
    return ept.machine
  }
  const exit = c.vmcs!.exit
  exit.guestPhysicalAddress = gpa
  exit.guestLinearAddress = linear >>> 0
  if (outcome === EptOutcome.Misconfig) vmExitNow(c, ExitReason.EptMisconfig)
  const kind = access === Access.Write ? EptQual.Write : access === Access.Fetch ? EptQual.Fetch : EptQual.Read
  return vmExitNow(
    c,
    ExitReason.EptViolation,
    kind | (ept.perms << 3) | EptQual.LinearValid | (translated ? EptQual.Translated : 0)
  )
}

/** Read a paging-structure entry at guest-physical `gpa` (through EPT in non-root operation). */
function walkLd32(c: Cpu, gpa: number, linear: number): number {
  const addr = toMachine(c, gpa, Access.Read, linear, false)
  if (lastBus || c.mem.pageKind(addr >>> 12) === PageKind.Mmio) return c.mem.read(addr, 4) | 0
  return c.dv.getInt32(addr, true)
}

/** Set accessed/dirty bits in a paging-structure entry (a write access to it). */
function walkSt32(c: Cpu, gpa: number, linear: number, v: number): void {
  const addr = toMachine(c, gpa, Access.Write, linear, false)
  const kind = lastBus ? PageKind.Mmio : c.mem.pageKind(addr >>> 12)
  if (kind === PageKind.Ram) c.dv.setInt32(addr, v, true)
  // page tables behind the bus (an emulation CPU over guest-physical memory) get their A/D bits too
  else if (kind === PageKind.Mmio) c.mem.write(addr, 4, v >>> 0)
}

/** TLB flags for the EPT permissions of the final translation. */
function eptBits(): number {
  return (
    ((lastEptPerms & EPT_READ) === 0 ? TLB_NO_READ : 0) |
    ((lastEptPerms & EPT_WRITE) === 0 ? TLB_NO_WRITE_U | TLB_NO_WRITE_S : 0) |
    ((lastEptPerms & EPT_EXEC) === 0 ? TLB_NO_EXEC : 0)
  )
}

/**
 * Fill the TLB entry for `linear` for an access of kind `access` (Access.Read,
 * Write or Fetch), walking the page tables and raising #PF (the faulting
 * address in faultAddress) when the access is not allowed. Returns the
 * installed entry.
 */
export function tlbFill(c: Cpu, linear: number, access: number, user: boolean): number {
  const page = linear >>> 12
  const write = access === Access.Write
  if (c.vmEpt) c.cycles += c.eptWalkCost
  if (!c.pg) {
    const gpa = (linear & c.a20Mask & ~0xfff) >>> 0
    const machine = (toMachine(c, gpa | (linear & 0xfff), access, linear, true) & ~0xfff) >>> 0
    return install(c, page, machine | TLB_VALID | kindBits(c, machine) | eptBits())
  }
  c.cycles += c.walkCost
  const pdeAddr = ((c.cr3 & ~0xfff) | ((linear >>> 20) & 0xffc)) >>> 0
  const pde = walkLd32(c, pdeAddr, linear)
  const errBase = (write ? PFEC_W : 0) | (user ? PFEC_U : 0)
  if ((pde & PTE_P) === 0) pageFault(c, linear, errBase)
  let gpa: number
  let rights: number
  let dirty: boolean
  let global: boolean
  if ((pde & PTE_PS) !== 0 && (c.cr4 & CR4_PSE) !== 0) {
    // 4 MiB page (PSE): the PDE maps it directly
    rights = pde
    checkRights(c, linear, rights, write, user, errBase)
    const updated = pde | PTE_A | (write ? PTE_D : 0)
    if (updated !== pde) walkSt32(c, pdeAddr, linear, updated)
    gpa = ((pde & 0xffc00000) | (linear & 0x3ff000)) >>> 0
    dirty = (updated & PTE_D) !== 0
    global = (pde & PTE_G) !== 0
  } else {
    const pteAddr = ((pde & ~0xfff) | ((linear >>> 10) & 0xffc)) >>> 0
    const pte = walkLd32(c, pteAddr, linear)
    if ((pte & PTE_P) === 0) pageFault(c, linear, errBase)
    rights = pde & pte
    checkRights(c, linear, rights, write, user, errBase)
    if ((pde & PTE_A) === 0) walkSt32(c, pdeAddr, linear, pde | PTE_A)
    const updated = pte | PTE_A | (write ? PTE_D : 0)
    if (updated !== pte) walkSt32(c, pteAddr, linear, updated)
    gpa = (pte & ~0xfff) >>> 0
    dirty = (updated & PTE_D) !== 0
    global = (pte & PTE_G) !== 0
  }
  gpa = (gpa & c.a20Mask) >>> 0
  const machine = (toMachine(c, gpa | (linear & 0xfff), access, linear, true) & ~0xfff) >>> 0
  let entry = machine | TLB_VALID | kindBits(c, machine) | eptBits()
  if ((rights & PTE_US) === 0) entry |= TLB_NO_USER
  if ((rights & PTE_RW) === 0) {
    entry |= TLB_NO_WRITE_U
    if ((c.cr0 & CR0_WP) !== 0) entry |= TLB_NO_WRITE_S
  }
  // D = 0: the first write must come back here to set it
  if (!dirty) entry |= TLB_NO_WRITE_U | TLB_NO_WRITE_S
  if (global && (c.cr4 & CR4_PGE) !== 0) entry |= TLB_GLOBAL
  return install(c, page, entry)
}

/** SDM 4.6: user accesses need U/S = 1 on every level; writes need R/W = 1 unless supervisor with WP = 0. */
function checkRights(c: Cpu, linear: number, rights: number, write: boolean, user: boolean, errBase: number): void {
  if (user && (rights & PTE_US) === 0) pageFault(c, linear, errBase | PFEC_P)
  if (write && (rights & PTE_RW) === 0 && (user || (c.cr0 & CR0_WP) !== 0)) pageFault(c, linear, errBase | PFEC_P)
}
