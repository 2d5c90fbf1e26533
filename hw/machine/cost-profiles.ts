/**
 * Cost profiles: simulated cycles per instruction class, per TLB-miss walk,
 * per exception delivery and per VM entry/exit. This is how one technique is
 * "faster" than another inside the simulation, independent of how fast the
 * simulator itself runs on the host. The TSC and virtual time advance by
 * these numbers; guests read them with RDTSC.
 *
 * The numbers are model parameters, chosen to sit inside published ranges,
 * not measurements of one chip. Sources:
 * - Instruction classes: Intel 64 and IA-32 Architectures Optimization
 *   Reference Manual, appendix C latency tables (P6/Core family): simple ALU
 *   and MOV 1 cycle, IMUL 3-4, DIV r32 ~20-40, far transfers and segment
 *   loads tens of cycles, privileged system instructions tens to hundreds.
 * - Exception/interrupt delivery through the IDT: a model value of 100-150
 *   cycles for P6/Core class parts (gate read, privilege checks, stack
 *   switch and five to six pushes; the Optimization Manual lists INT n among
 *   the microcoded instructions with latencies of this order).
 * - VM transitions: Adams & Agesen (ASPLOS 2006) on first-generation VT-x
 *   report exit/entry round trips in the low thousands of cycles; Intel
 *   ("Virtualization and Performance: Understanding VM Exits", 2009) puts one
 *   transition at "hundreds or thousands of cycles"; later generations
 *   reduced the round trip to a few hundred cycles (Agesen et al., USENIX ATC
 *   2012, "Software Techniques for Avoiding Hardware Virtualization Exits",
 *   fig. 1 charts the decline from Prescott to Sandy Bridge).
 * - Pure emulation (`emu` mode, vmm/engines/emu.ts): `emulatedInstruction`
 *   cycles per guest instruction on top of its class cost, for the
 *   emulator's own work (decode or translated-code dispatch, lazy flags,
 *   the softmmu TLB lookup on each memory access). QEMU's TCG turns a guest
 *   instruction into a few micro-operations of a few host instructions each,
 *   plus a softmmu TLB lookup per memory access (Bellard, USENIX 2005,
 *   "QEMU, a Fast and Portable Dynamic Translator"): a model value of
 *   ~10-20 host instructions per typical integer guest instruction, i.e.
 *   ~10 cycles at 1.5 IPC on a modern part, ~15 at 1 IPC on a 2006 one.
 * - Port I/O and device models: an IN or OUT to a legacy device on the
 *   ISA/LPC bus takes on the order of 1 µs (Linux's `outb_p` delays with a
 *   port 0x80 write on that assumption; Adams & Agesen measured `in` at
 *   3209 cycles natively on a 3.8 GHz Pentium 4, ~0.85 µs): `portLatency`,
 *   ~0.8 µs, paid by native code only. A hypervisor's device model answers
 *   in software instead: `deviceModel` cycles per access (the dispatch to
 *   the device and its handler, a model value of ~100-150 cycles), paid by
 *   every engine on top of its way there (an exit, a callout, an emulated
 *   instruction) -- which is why the paper's BT `in` (~214) beats native.
 * - Hypercalls (`pv` mode, vmm/engines/pv): the trap into the hypervisor
 *   and its return are two event deliveries; `hypercall` is the handler's
 *   own work, a model value for a dispatcher and argument checks of
 *   ~100-150 instructions (not a published measurement).
 * - Page walks: a 2-level 32-bit walk is 2 memory references; a 2-D walk
 *   through a 4-level EPT is up to (2+1)*(4+1)-1 = 14 references for 32-bit
 *   guest paging (Bhargava et al., ASPLOS 2008, "Accelerating Two-Dimensional
 *   Page Walks"), each ~10-40 cycles when it misses the paging caches.
 */
import { CostClass, costClassCount } from "../cpu/cost-class.ts"
import type { CostProfileName } from "./config.ts"

export interface CostProfile {
  readonly name: CostProfileName
  readonly description: string
  /** Core clock: converts cycles to virtual nanoseconds. */
  readonly clockHz: number
  /** Cycles per instruction of each cost class, indexed by CostClass. */
  readonly perClass: ReadonlyArray<number>
  /** Extra cycles for a TLB miss with 32-bit paging (no EPT). */
  readonly pageWalk: number
  /** Extra cycles for a TLB miss under EPT (the 2-D walk). */
  readonly eptWalk: number
  /** Cycles to deliver an exception or interrupt through the IDT/IVT. */
  readonly eventDelivery: number
  readonly vmEntry: number
  readonly vmExit: number
  /** Extra cycles per guest instruction run by pure emulation (`emu` mode): the emulator's own work. */
  readonly emulatedInstruction: number
  /**
   * The hypervisor's own work for one hypercall of a paravirtualized guest (`pv` mode), on top of the
   * trap into the hypervisor and the return (2 x eventDelivery): dispatch, argument checks, the copy of
   * a small argument structure.
   */
  readonly hypercall: number
  /**
   * A physical legacy port access (IN/OUT of x86 code on a pCPU reaching the machine's own devices): the
   * ISA/LPC bus cycle and the device's response, ~1 µs on real hardware. Only native code pays it: a VM's
   * port access is caught (an exit, a fault, an emulated instruction) before any bus.
   */
  readonly portLatency: number
  /**
   * A virtual device model's own work per guest access to one of its registers (port or MMIO, any
   * engine): finding the device and running its handler, on top of however the access reached the VMM.
   */
  readonly deviceModel: number
}

const classCosts = (costs: Partial<Record<keyof typeof CostClass, number>>): Array<number> => {
  const out = new Array<number>(costClassCount).fill(1)
  for (const [name, cycles] of Object.entries(costs)) out[CostClass[name as keyof typeof CostClass]] = cycles
  return out
}

/** First-generation VT-x (2006): no EPT, no VPID, expensive transitions. */
export const vtx2006: CostProfile = {
  name: "vtx-2006",
  description: "2006 first-generation VT-x part (Core 2 class, 2.4 GHz): exit+entry round trip ~2,300 cycles, no EPT",
  clockHz: 2_400_000_000,
  perClass: classCosts({
    Alu: 1,
    Mov: 1,
    Stack: 1,
    Branch: 1,
    Mul: 4,
    Div: 30,
    String: 2,
    Io: 40,
    Far: 25,
    Interrupt: 30,
    System: 40,
    Bcd: 4,
    Bit: 2,
    Nop: 1,
    Prefix: 0,
    Invalid: 5
  }),
  pageWalk: 40,
  eptWalk: 200,
  eventDelivery: 150,
  vmEntry: 1_000,
  vmExit: 1_300,
  // ~15 host instructions per guest instruction at ~1 IPC (Core 2 class)
  emulatedInstruction: 15,
  // a C dispatcher and argument checks: ~100-150 instructions
  hypercall: 120,
  // ~0.8 µs at 2.4 GHz
  portLatency: 1_900,
  deviceModel: 150
}

/** A modern part: EPT with paging-structure caches, VPID, round trip of a few hundred cycles. */
export const modern: CostProfile = {
  name: "modern",
  description: "modern VT-x part (3.0 GHz, EPT + VPID): exit+entry round trip ~500 cycles, cheap 2-D walks",
  clockHz: 3_000_000_000,
  perClass: classCosts({
    Alu: 1,
    Mov: 1,
    Stack: 1,
    Branch: 1,
    Mul: 3,
    Div: 20,
    String: 1,
    Io: 30,
    Far: 15,
    Interrupt: 20,
    System: 25,
    Bcd: 3,
    Bit: 1,
    Nop: 1,
    Prefix: 0,
    Invalid: 5
  }),
  pageWalk: 20,
  eptWalk: 60,
  eventDelivery: 100,
  vmEntry: 230,
  vmExit: 270,
  // ~15 host instructions per guest instruction at ~1.5 IPC
  emulatedInstruction: 10,
  hypercall: 80,
  // ~0.8 µs at 3 GHz: legacy I/O through the LPC bridge did not get faster
  portLatency: 2_400,
  deviceModel: 100
}

export const costProfiles: Record<CostProfileName, CostProfile> = { "vtx-2006": vtx2006, modern }

/** Install a profile's cycle costs on a pCPU of the machine (whose ports are physical devices). */
export const applyCostProfile = (
  cpu: {
    setCosts(perClass: ArrayLike<number>, walkCycles: number): void
    vmEntryCost: number
    vmExitCost: number
    eptWalkCost: number
    eventCost: number
    portLatency: number
  },
  profile: CostProfile
): void => {
  cpu.setCosts(profile.perClass, profile.pageWalk)
  cpu.vmEntryCost = profile.vmEntry
  cpu.vmExitCost = profile.vmExit
  cpu.eptWalkCost = profile.eptWalk
  cpu.eventCost = profile.eventDelivery
  cpu.portLatency = profile.portLatency
}
