/**
 * Builders for the VMX tests: EPT tables in machine memory (Intel SDM Vol.
 * 3C 29.3.2 (28.2.2 in older editions), "EPT Translation Mechanism", 4-level
 * format with 4 KiB and 2 MiB pages) and guests ready to VM-enter (a VMCS
 * whose guest-state area, SDM 25.4, is a protected-mode or real-mode setup
 * made by harness.ts).
 *
 * Two kinds of guest:
 *
 *   identityVm   guest-physical = machine: the harness Guest's own memory
 *                and CPU are the machine and the pCPU. Without EPT the
 *                guest runs with paging on (CR0.PG is fixed to 1 without
 *                "unrestricted guest", SDM 24.8 / A.7); with `ept` an
 *                identity EPT (2 MiB pages over the 8 MiB) is built.
 *
 *   eptVm        guest-physical 0..size lives at machine `base` of a larger
 *                machine memory (a Machine); the guest's tables are written
 *                through a view of that window, and an EPT maps gpa -> base
 *                + gpa with 4 KiB pages (the test may punch holes, change
 *                permissions, or add 2 MiB mappings).
 *
 * Machine memory map of a Machine (16 MiB):
 *
 *   0x000000  free (bitmaps for I/O and MSRs, by test)
 *   0x100000  EPT table pool (one 512 KiB pool per EptTables, allocated upward)
 *   0x400000  guest windows (4 MiB each: 0x400000, 0x800000, 0xc00000)
 */
import { flatMemory, PageKind, type PhysicalMemory } from "../../../hw/cpu/bus.ts"
import { Cpu } from "../../../hw/cpu/cpu.ts"
import type { RunExit } from "../../../hw/cpu/state.ts"
import { newVmcs, Proc2Controls, ProcControls, type Vmcs } from "../../../hw/cpu/vmx/vmcs.ts"
import { vmenter } from "../../../hw/cpu/vmx/vmx.ts"
import { Guest, type ProtectedOptions, type RecordingPorts, recordingPorts } from "./harness.ts"

// ---------------------------------------------------------------------------
// EPT (SDM 3C 29.3.2, tables 29-1..29-6)

/** EPT entry permission bits (SDM table 29-1 bits 2:0). */
export const EptPerm = { R: 1, W: 2, X: 4, RW: 3, RX: 5, RWX: 7 } as const
/** EPT memory types (SDM 29.3.7 / 12.11): UC 0, WB 6. */
export const MemType = { UC: 0, WC: 1, WT: 4, WP: 5, WB: 6 } as const
/** Accessed (bit 8) and dirty (bit 9) flags of EPT entries (SDM 29.3.5). */
export const EPT_ACCESSED = 1 << 8
export const EPT_DIRTY = 1 << 9
const EPT_PS = 1 << 7

export interface EptpOptions {
  /** EPTP bit 6: accessed and dirty flags. */
  readonly ad?: boolean
  /** EPTP bits 2:0: paging-structure memory type (default WB). */
  readonly type?: number
  /** EPTP bits 5:3: walk length - 1 (default 3). */
  readonly walkLength?: number
}

/** One EPT hierarchy in machine memory: tables are allocated from [pool, poolEnd). */
export class EptTables {
  readonly pml4: number
  private readonly dv: DataView
  private readonly ram: Uint8Array
  private next: number
  private readonly end: number

  constructor(ram: Uint8Array, pool: number, poolEnd: number) {
    this.ram = ram
    this.dv = new DataView(ram.buffer, ram.byteOffset, ram.byteLength)
    this.next = pool
    this.end = poolEnd
    this.pml4 = this.allocTable()
  }

  private allocTable(): number {
    const t = this.next
    if (t + 0x1000 > this.end) throw new Error("EPT table pool exhausted")
    this.next += 0x1000
    this.ram.fill(0, t, t + 0x1000)
    return t
  }

  /** The EPT pointer (SDM table 25-9): PML4 address | memory type | (walk length - 1) << 3 | A/D << 6. */
  eptp(options: EptpOptions = {}): number {
    return (this.pml4 | (options.type ?? MemType.WB) | ((options.walkLength ?? 3) << 3) | (options.ad ? 0x40 : 0)) >>> 0
  }

  /** Low dword of the 64-bit entry at `addr` (the high dword is always 0 here: machine addresses < 4 GiB). */
  entry(addr: number): number {
    return this.dv.getUint32(addr, true)
  }

  setEntry(addr: number, lo: number): void {
    this.dv.setUint32(addr, lo >>> 0, true)
    this.dv.setUint32(addr + 4, 0, true)
  }

  /** Index of `gpa` in the table of `level` (4 = PML4 .. 1 = PT); gpa is 32-bit. */
  static index(gpa: number, level: number): number {
    return level === 4 ? 0 : level === 3 ? (gpa >>> 30) & 3 : level === 2 ? (gpa >>> 21) & 0x1ff : (gpa >>> 12) & 0x1ff
  }

  /** Address of the entry for `gpa` at `level`, creating the tables above it (non-leaf entries: RWX). */
  private slot(gpa: number, level: number): number {
    let table = this.pml4
    for (let l = 4; l > level; l--) {
      const at = table + EptTables.index(gpa, l) * 8
      let e = this.entry(at)
      if ((e & 7) === 0 || (e & EPT_PS) !== 0) {
        e = this.allocTable() | EptPerm.RWX
        this.setEntry(at, e)
      }
      table = e & ~0xfff
    }
    return table + EptTables.index(gpa, level) * 8
  }

  /** Map the 4 KiB guest-physical page of `gpa` to machine page `machine`. */
  map4k(gpa: number, machine: number, perms: number = EptPerm.RWX, memType: number = MemType.WB): void {
    this.setEntry(this.slot(gpa, 1), (machine & ~0xfff) | (memType << 3) | perms)
  }

  /** Map the 2 MiB guest-physical page of `gpa` with a PS=1 PD entry (SDM table 29-4). */
  map2m(gpa: number, machine: number, perms: number = EptPerm.RWX, memType: number = MemType.WB): void {
    this.setEntry(this.slot(gpa, 2), (machine & 0xffe00000) | EPT_PS | (memType << 3) | perms)
  }

  /** Map [gpa, gpa+size) to [machine, machine+size) with 4 KiB pages. */
  mapRange(gpa: number, machine: number, size: number, perms: number = EptPerm.RWX): void {
    for (let off = 0; off < size; off += 0x1000) this.map4k(gpa + off, machine + off, perms)
  }

  /** The entries a walk of `gpa` reads, PML4E first (stops at a leaf or a non-present entry). */
  walkEntries(gpa: number): Array<number> {
    const out: Array<number> = []
    let table = this.pml4
    for (let level = 4; level >= 1; level--) {
      const at = table + EptTables.index(gpa, level) * 8
      out.push(at)
      const e = this.entry(at)
      if ((e & 7) === 0 || level === 1 || (level === 2 && (e & EPT_PS) !== 0)) break
      table = e & ~0xfff
    }
    return out
  }

  /** Address of the leaf entry mapping `gpa` (the last of walkEntries). */
  leaf(gpa: number): number {
    return this.walkEntries(gpa).at(-1)!
  }

  /** Remove the 4 KiB mapping of `gpa` (the PT entry becomes not present). */
  unmap4k(gpa: number): void {
    this.setEntry(this.slot(gpa, 1), 0)
  }
}

/**
 * The TLB tag vmx.ts gives a (VPID, EPTP) address space: VPID * 2^32 + EPTP + 1
 * (root operation is 0). Tests use it to pick tagged sets for INVVPID/INVEPT.
 */
export const tlbTag = (vpid: number, eptp: number): number => (vpid & 0xffff) * 2 ** 32 + (eptp >>> 0) + 1
export const tagVpid = (tag: number): number => Math.floor(tag / 2 ** 32)
export const tagEptp = (tag: number): number => (tag % 2 ** 32) - 1

// ---------------------------------------------------------------------------
// machines and guests

export const MACHINE_SIZE = 16 << 20
export const EPT_POOL = 0x100000
export const EPT_POOL_SIZE = 0x80000
export const GUEST_WINDOW = 0x400000
/** Guest-physical size of an eptVm (holds the harness layout: page directory at 1 MiB). */
export const GUEST_SIZE = 4 << 20

/** A bare machine: flat RAM and one pCPU with the VT-x-like extension. */
export class Machine {
  readonly mem: PhysicalMemory
  readonly ports: RecordingPorts = recordingPorts()
  readonly cpu: Cpu
  readonly dv: DataView
  private pools = 0

  constructor(size = MACHINE_SIZE) {
    this.mem = flatMemory(size)
    this.cpu = new Cpu(this.mem, this.ports)
    this.cpu.vmxSupported = true
    this.dv = new DataView(this.mem.ram.buffer)
  }

  read32(addr: number): number {
    return this.dv.getUint32(addr, true)
  }

  write32(addr: number, v: number): void {
    this.dv.setUint32(addr, v >>> 0, true)
  }

  /** A fresh EPT hierarchy in its own table pool. */
  newEpt(): EptTables {
    const pool = EPT_POOL + this.pools++ * EPT_POOL_SIZE
    if (pool + EPT_POOL_SIZE > GUEST_WINDOW) throw new Error("no room for another EPT pool below the guest windows")
    return new EptTables(this.mem.ram, pool, pool + EPT_POOL_SIZE)
  }
}

/** Machine memory seen from `base`: guest-physical 0..size of a guest whose frames sit at machine base.. */
export function windowMemory(mem: PhysicalMemory, base: number, size: number): PhysicalMemory {
  const pages = size >>> 12
  return {
    ram: mem.ram.subarray(base, base + size),
    pageKind: (page) => (page < pages ? PageKind.Ram : PageKind.Mmio),
    read: (_a, s) => (s === 4 ? 0xffffffff : s === 2 ? 0xffff : 0xff),
    write: () => {}
  }
}

export interface VmOptions extends ProtectedOptions {
  /** Guest mode: 32-bit protected mode (default) or real mode at 0000:entry (needs unrestricted guest + EPT). */
  readonly real?: boolean
  /** identityVm only: build an identity EPT (2 MiB pages) and enable it. */
  readonly ept?: boolean
  /** VPID to tag the guest's translations with (enables VPID when non-zero). */
  readonly vpid?: number
}

/** A guest ready to enter: its VMCS, the pCPU, and the harness Guest that built (and reads) its memory. */
export class Vm {
  readonly guest: Guest
  readonly cpu: Cpu
  readonly vmcs: Vmcs

  constructor(guest: Guest, cpu: Cpu, vmcs: Vmcs) {
    this.guest = guest
    this.cpu = cpu
    this.vmcs = vmcs
  }

  /** VMLAUNCH/VMRESUME for up to `budget` instructions. */
  enter(budget = 10_000): RunExit {
    return vmenter(this.cpu, this.vmcs, budget)
  }

  /** What a VMM does after emulating an instruction that exited: RIP += VM-exit instruction length. */
  skip(): void {
    const r = this.vmcs.guest.regs
    r.eip = (r.eip + this.vmcs.exit.instructionLength) >>> 0
  }

  get rip(): number {
    return this.vmcs.guest.regs.eip
  }

  sym(name: string): number {
    return this.guest.sym(name)
  }

  /** Turn on secondary controls (and the "activate secondary controls" bit). */
  proc2(bits: number): void {
    this.vmcs.controls.proc |= ProcControls.ActivateSecondaryControls
    this.vmcs.controls.proc2 |= bits
  }
}

/** Copy a harness Guest's entered state into a VMCS guest-state area. */
function guestVmcs(g: Guest, options: VmOptions): Vmcs {
  const vmcs = newVmcs()
  vmcs.guest.regs = g.cpu.getState()
  if (options.vpid) {
    vmcs.controls.proc |= ProcControls.ActivateSecondaryControls
    vmcs.controls.proc2 |= Proc2Controls.EnableVpid
    vmcs.controls.vpid = options.vpid
  }
  return vmcs
}

function enterMode(g: Guest, body: string, options: VmOptions): void {
  if (options.real) {
    const org = typeof options.entry === "number" ? options.entry : 0x7c00
    g.load(body, org, 16)
    g.enterReal(org, options.esp ?? 0x7000)
  } else {
    g.load(body)
    g.enterProtected(options)
  }
}

/**
 * A guest whose guest-physical memory is the machine's (8 MiB): the harness
 * Guest's CPU is the pCPU. Protected mode with paging unless `paging: false`
 * (which then needs `ept`: unrestricted guest).
 */
export function identityVm(body: string, options: VmOptions = {}): Vm {
  const g = new Guest()
  const paging = options.paging ?? !options.real
  enterMode(g, body, { ...options, paging })
  g.cpu.vmxSupported = true
  const vmcs = guestVmcs(g, options)
  const vm = new Vm(g, g.cpu, vmcs)
  if (options.ept) {
    const ept = new EptTables(g.mem.ram, 0x700000, 0x710000)
    for (let gpa = 0; gpa < 0x700000; gpa += 0x200000) ept.map2m(gpa, gpa)
    vmcs.controls.eptPointer = ept.eptp()
    vm.proc2(Proc2Controls.EnableEpt | (paging ? 0 : Proc2Controls.UnrestrictedGuest))
  }
  return vm
}

/**
 * A guest whose guest-physical 0..GUEST_SIZE sits at machine `base` of
 * `machine`, mapped by a fresh EPT with 4 KiB RWX pages (returned with the
 * VM). Paging defaults to on; `paging: false` adds "unrestricted guest".
 */
export function eptVm(
  machine: Machine,
  base: number,
  body: string,
  options: VmOptions = {}
): { vm: Vm; ept: EptTables } {
  const g = new Guest(windowMemory(machine.mem, base, GUEST_SIZE))
  const paging = options.paging ?? !options.real
  enterMode(g, body, { ...options, paging })
  const vmcs = guestVmcs(g, options)
  const vm = new Vm(g, machine.cpu, vmcs)
  const ept = machine.newEpt()
  ept.mapRange(0, base, GUEST_SIZE)
  vmcs.controls.eptPointer = ept.eptp()
  vm.proc2(Proc2Controls.EnableEpt | (paging ? 0 : Proc2Controls.UnrestrictedGuest))
  return { vm, ept }
}
