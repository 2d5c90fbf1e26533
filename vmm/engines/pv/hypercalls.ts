/**
 * The hypercalls of `pv` mode (Xen x86-32 conventions, xen.h; docs/pv.md
 * has the table): number in EAX, arguments in EBX, ECX, EDX, ESI, EDI,
 * result in EAX. Each handler reads its arguments from the guest's
 * registers and, through GuestVirtual, from guest virtual memory it checks
 * page by page; nothing a guest passes can make the hypervisor touch memory
 * that is not the guest's, loop without bound, or throw.
 */
import type { CpuState } from "../../../hw/cpu/state.ts"
import type { VmEnd } from "../../exits/types.ts"
import {
  CONSOLEIO_write,
  DOMID_SELF,
  Errno,
  EvtchnOp,
  FLAT_RING1_CS,
  FLAT_RING1_DS,
  FLAT_RING3_CS,
  FLAT_RING3_DS,
  HYPERVISOR_VIRT_START,
  Hypercall,
  MMU_NORMAL_PT_UPDATE,
  MmuExt,
  SchedOp,
  Shutdown,
  TI_DPL_MASK,
  VcpuOp,
  XEN_VERSION,
  XENFEAT_auto_translated_physmap,
  XenMem,
  XenVer
} from "./abi.ts"
import type { PvDomain } from "./domain.ts"
import { GNTST_bad_domain, GNTST_general_error, GNTST_okay, GnttabOp } from "./grant-table.ts"
import type { GuestVirtual } from "./guest-virtual.ts"
import { flatSegment } from "./segments.ts"

/** One trap-table entry (trap_info_t). */
export interface TrapEntry {
  readonly flags: number
  readonly cs: number
  readonly address: number
}

/** What a hypercall handler needs of its vCPU (vmm/engines/pv/engine.ts). */
export interface PvVcpu {
  readonly domain: PvDomain
  readonly index: number
  readonly memory: GuestVirtual
  readonly trapTable: Array<TrapEntry | undefined>
  kernelStack: { ss: number; esp: number } | undefined
  eventCallback: { cs: number; eip: number } | undefined
  failsafeCallback: { cs: number; eip: number } | undefined
  /** The one-shot timer's deadline (VM ns; Infinity: none). */
  timerDeadline: number
  /** The guest's system time now, in ns. */
  now(): number
  /** The trap table changed (the direct system-call gate follows it). */
  trapTableChanged(): void
}

/** After a hypercall: go on in the guest (EAX already set), or what the vCPU does next. */
export type HypercallOutcome = "resume" | "block" | "yield" | { readonly end: VmEnd }

/** Most requests one mmu_update / mmuext_op call takes (Xen preempts with continuations; not modelled). */
export const MAX_BATCH = 1024
/** Most bytes one console_io write takes. */
const MAX_CONSOLE_WRITE = 65536
/** Most entries a trap table holds (one per vector). */
const MAX_TRAPS = 256

const ring = (selector: number) => selector & 3

/** Carry out hypercall EAX of `vcpu` on its virtual state `v`. */
export function hypercall(vcpu: PvVcpu, v: CpuState): HypercallOutcome {
  const result = (value: number): HypercallOutcome => {
    v.eax = value >>> 0
    return "resume"
  }
  switch (v.eax) {
    case Hypercall.set_trap_table:
      return result(setTrapTable(vcpu, v.ebx))
    case Hypercall.mmu_update:
      return result(mmuUpdate(vcpu, v.ebx, v.ecx, v.edx, v.esi))
    case Hypercall.stack_switch:
      if (v.ebx !== FLAT_RING1_DS) return result(Errno.EPERM)
      vcpu.kernelStack = { ss: v.ebx, esp: v.ecx }
      vcpu.domain.region.setRing1Stack(vcpu.index, v.ebx, v.ecx)
      return result(0)
    case Hypercall.set_callbacks:
      if (v.ebx !== FLAT_RING1_CS || v.edx !== FLAT_RING1_CS) return result(Errno.EINVAL)
      vcpu.eventCallback = { cs: v.ebx, eip: v.ecx }
      vcpu.failsafeCallback = { cs: v.edx, eip: v.esi }
      return result(0)
    case Hypercall.memory_op:
      return result(memoryOp(vcpu, v.ebx, v.ecx))
    case Hypercall.update_va_mapping:
      return result(updateVaMapping(vcpu, v, v.ebx, v.ecx))
    case Hypercall.set_timer_op:
      return result(setTimer(vcpu, v.ecx * 2 ** 32 + v.ebx, false))
    case Hypercall.xen_version:
      return result(xenVersion(vcpu, v.ebx, v.ecx))
    case Hypercall.console_io: {
      if (v.ebx !== CONSOLEIO_write) return result(Errno.ENOSYS)
      if (v.ecx > MAX_CONSOLE_WRITE) return result(Errno.EINVAL)
      const bytes = vcpu.memory.read(v.edx, v.ecx)
      if (bytes === undefined) return result(Errno.EFAULT)
      vcpu.domain.write(bytes)
      return result(0)
    }
    case Hypercall.grant_table_op:
      return result(grantTableOp(vcpu, v.ebx, v.ecx, v.edx))
    case Hypercall.iret:
      return iret(vcpu, v)
    case Hypercall.vcpu_op:
      return result(vcpuOp(vcpu, v.ebx, v.ecx, v.edx))
    case Hypercall.mmuext_op:
      return result(mmuextOp(vcpu, v, v.ebx, v.ecx, v.edx, v.esi))
    case Hypercall.sched_op:
      return schedOp(vcpu, v, v.ebx, v.ecx)
    case Hypercall.event_channel_op:
      return result(eventChannelOp(vcpu, v.ebx, v.ecx))
    default:
      return result(Errno.ENOSYS)
  }
}

function setTrapTable(vcpu: PvVcpu, table: number): number {
  const entries: Array<[number, TrapEntry]> = []
  if (table !== 0) {
    for (let i = 0; ; i++) {
      if (i > MAX_TRAPS) return Errno.EINVAL
      const raw = vcpu.memory.read(table + i * 8, 8)
      if (raw === undefined) return Errno.EFAULT
      const address = (raw[4]! | (raw[5]! << 8) | (raw[6]! << 16) | (raw[7]! << 24)) >>> 0
      if (address === 0) break
      const cs = raw[2]! | (raw[3]! << 8)
      if (cs !== FLAT_RING1_CS) return Errno.EINVAL
      entries.push([raw[0]!, { flags: raw[1]!, cs, address }])
    }
  }
  vcpu.trapTable.fill(undefined)
  for (const [vector, entry] of entries) vcpu.trapTable[vector] = entry
  vcpu.trapTableChanged()
  return 0
}

function mmuUpdate(vcpu: PvVcpu, requests: number, count: number, doneOut: number, domid: number): number {
  if (domid !== DOMID_SELF) return Errno.ESRCH
  if (count > MAX_BATCH) return Errno.EINVAL
  const m = vcpu.memory
  const g = vcpu.domain.guest
  let done = 0
  let rc = 0
  for (; done < count; done++) {
    const raw = m.read(requests + done * 16, 16)
    if (raw === undefined) {
      rc = Errno.EFAULT
      break
    }
    const dv = new DataView(raw.buffer)
    const ptr = dv.getUint32(0, true)
    const val = dv.getUint32(8, true)
    if ((ptr & 3) !== MMU_NORMAL_PT_UPDATE) {
      rc = Errno.ENOSYS
      break
    }
    const at = (ptr & ~3) >>> 0
    if (dv.getUint32(4, true) !== 0 || dv.getUint32(12, true) !== 0 || !g.contains(at, 4)) {
      rc = Errno.EINVAL
      break
    }
    rc = vcpu.domain.checkEntry(at, val)
    if (rc !== 0) break
    g.writeValue(at, 4, val)
  }
  if (doneOut !== 0 && !m.write32(doneOut, done)) return Errno.EFAULT
  return rc
}

function updateVaMapping(vcpu: PvVcpu, v: CpuState, va: number, entry: number): number {
  if (va >>> 0 >= HYPERVISOR_VIRT_START) return Errno.EINVAL
  const g = vcpu.domain.guest
  const pdeAt = ((v.cr3 & 0xfffff000) | ((va >>> 22) << 2)) >>> 0
  if (!g.contains(pdeAt, 4)) return Errno.EINVAL
  const pde = g.readValue(pdeAt, 4)
  if ((pde & 1) === 0 || (pde & 0x80) !== 0) return Errno.EINVAL
  const pteAt = ((pde & 0xfffff000) | ((va >>> 10) & 0xffc)) >>> 0
  if (!g.contains(pteAt, 4)) return Errno.EINVAL
  const rc = vcpu.domain.checkEntry(pteAt, entry)
  if (rc !== 0) return rc
  // the write reaches the shadows through GuestPhysical.onWrite: the derived entry is zapped (UVMF_INVLPG's job)
  g.writeValue(pteAt, 4, entry)
  return 0
}

function mmuextOp(vcpu: PvVcpu, v: CpuState, ops: number, count: number, doneOut: number, domid: number): number {
  if (domid !== DOMID_SELF) return Errno.ESRCH
  if (count > MAX_BATCH) return Errno.EINVAL
  const m = vcpu.memory
  const nrPages = vcpu.domain.info.nrPages
  let done = 0
  let rc = 0
  for (; done < count && rc === 0; done++) {
    const cmd = m.read32(ops + done * 12)
    const arg1 = m.read32(ops + done * 12 + 4)
    if (cmd === undefined || arg1 === undefined) {
      rc = Errno.EFAULT
      break
    }
    switch (cmd) {
      case MmuExt.pin_l1_table:
      case MmuExt.pin_l2_table:
      case MmuExt.unpin_table:
        if (arg1 >= nrPages) rc = Errno.EINVAL
        else if (cmd === MmuExt.unpin_table) vcpu.domain.unpin(arg1)
        else vcpu.domain.pin(arg1)
        break
      case MmuExt.new_baseptr:
        if (arg1 >= nrPages) rc = Errno.EINVAL
        else v.cr3 = (arg1 * 4096) >>> 0
        break
      // the pCPU's TLB is flushed at every entry, and every page-table update reached the shadows already
      case MmuExt.tlb_flush_local:
      case MmuExt.tlb_flush_all:
      case MmuExt.invlpg_local:
      case MmuExt.invlpg_all:
        break
      default:
        rc = Errno.ENOSYS
    }
    if (rc !== 0) break
  }
  if (doneOut !== 0 && !m.write32(doneOut, done)) return Errno.EFAULT
  return rc
}

/**
 * grant_table_op (grant_table.h): GNTTABOP_setup_table {u16 dom, u32
 * nr_frames at 4, i16 status at 8 (out), frame_list pointer at 12} hands
 * out the table's frames; GNTTABOP_query_size {u16 dom, u32 nr_frames out at
 * 4, u32 max_nr_frames out at 8, i16 status out at 12}. One operation per
 * call; its status field carries a GNTST_* error.
 */
function grantTableOp(vcpu: PvVcpu, cmd: number, op: number, count: number): number {
  const m = vcpu.memory
  const frames = vcpu.domain.grants.frames
  if (count !== 1) return Errno.EINVAL
  const dom = m.read16(op)
  if (dom === undefined) return Errno.EFAULT
  const status = (at: number, value: number) =>
    m.write(op + at, new Uint8Array([value & 0xff, (value >> 8) & 0xff])) ? 0 : Errno.EFAULT
  switch (cmd) {
    case GnttabOp.setup_table: {
      const wanted = m.read32(op + 4)
      const list = m.read32(op + 12)
      if (wanted === undefined || list === undefined) return Errno.EFAULT
      if (dom !== DOMID_SELF) return status(8, GNTST_bad_domain)
      if (wanted > frames.length) return status(8, GNTST_general_error)
      for (let i = 0; i < wanted; i++) if (!m.write32(list + i * 4, frames[i]!)) return Errno.EFAULT
      return status(8, GNTST_okay)
    }
    case GnttabOp.query_size:
      if (dom !== DOMID_SELF) return status(12, GNTST_bad_domain)
      if (!m.write32(op + 4, frames.length) || !m.write32(op + 8, frames.length)) return Errno.EFAULT
      return status(12, GNTST_okay)
    default:
      return Errno.ENOSYS
  }
}

function setTimer(vcpu: PvVcpu, deadline: number, futureOnly: boolean): number {
  if (deadline === 0) {
    vcpu.timerDeadline = Number.POSITIVE_INFINITY
    return 0
  }
  if (futureOnly && deadline <= vcpu.now()) return Errno.ETIME
  vcpu.timerDeadline = deadline
  return 0
}

function xenVersion(vcpu: PvVcpu, cmd: number, arg: number): number {
  switch (cmd) {
    case XenVer.version:
      return XEN_VERSION
    case XenVer.platform_parameters:
      return vcpu.memory.write32(arg, HYPERVISOR_VIRT_START) ? 0 : Errno.EFAULT
    case XenVer.get_features: {
      const index = vcpu.memory.read32(arg)
      if (index === undefined) return Errno.EFAULT
      const submap = index === 0 ? 1 << XENFEAT_auto_translated_physmap : 0
      return vcpu.memory.write32(arg + 4, submap) ? 0 : Errno.EFAULT
    }
    default:
      return Errno.ENOSYS
  }
}

function memoryOp(vcpu: PvVcpu, cmd: number, arg: number): number {
  const pages = vcpu.domain.info.nrPages
  switch (cmd) {
    case XenMem.maximum_ram_page:
      return pages - 1
    case XenMem.current_reservation:
    case XenMem.maximum_reservation: {
      const domid = vcpu.memory.read16(arg)
      if (domid === undefined) return Errno.EFAULT
      return domid === DOMID_SELF ? pages : Errno.ESRCH
    }
    default:
      return Errno.ENOSYS
  }
}

function vcpuOp(vcpu: PvVcpu, cmd: number, target: number, arg: number): number {
  if (target >= vcpu.domain.vcpus) return Errno.ENOENT
  if (target !== vcpu.index && cmd !== VcpuOp.is_up) return Errno.EINVAL
  switch (cmd) {
    case VcpuOp.is_up:
      return target === 0 ? 1 : 0
    case VcpuOp.set_singleshot_timer: {
      const raw = vcpu.memory.read(arg, 12)
      if (raw === undefined) return Errno.EFAULT
      const dv = new DataView(raw.buffer)
      return setTimer(vcpu, dv.getUint32(4, true) * 2 ** 32 + dv.getUint32(0, true), (dv.getUint32(8, true) & 1) !== 0)
    }
    case VcpuOp.stop_singleshot_timer:
      vcpu.timerDeadline = Number.POSITIVE_INFINITY
      return 0
    default:
      return Errno.ENOSYS
  }
}

function schedOp(vcpu: PvVcpu, v: CpuState, cmd: number, arg: number): HypercallOutcome {
  v.eax = 0
  switch (cmd) {
    case SchedOp.yield:
      return "yield"
    case SchedOp.block:
      // blocking enables events (sched.h): an event already pending returns at once, through the upcall
      vcpu.domain.setUpcallMask(vcpu.index, false)
      return vcpu.domain.upcallDeliverable(vcpu.index) ? "resume" : "block"
    case SchedOp.shutdown_code: {
      const code = vcpu.memory.read32(arg)
      if (code === undefined) v.eax = Errno.EFAULT >>> 0
      else vcpu.domain.exitCode = code & 0xff
      return "resume"
    }
    case SchedOp.shutdown: {
      const reason = vcpu.memory.read32(arg)
      if (reason === undefined) {
        v.eax = Errno.EFAULT >>> 0
        return "resume"
      }
      switch (reason) {
        case Shutdown.poweroff:
          return { end: { _tag: "DebugExit", code: vcpu.domain.exitCode } }
        case Shutdown.reboot:
          return { end: { _tag: "Reset" } }
        case Shutdown.crash:
          return { end: { _tag: "Failed", message: "the PV guest crashed (SCHEDOP_shutdown, SHUTDOWN_crash)" } }
        default:
          v.eax = Errno.EINVAL >>> 0
          return "resume"
      }
    }
    default:
      v.eax = Errno.ENOSYS >>> 0
      return "resume"
  }
}

function eventChannelOp(vcpu: PvVcpu, cmd: number, arg: number): number {
  const m = vcpu.memory
  const d = vcpu.domain
  const word = (offset: number) => m.read32(arg + offset)
  switch (cmd) {
    case EvtchnOp.bind_virq: {
      const virq = word(0)
      const target = word(4)
      if (virq === undefined || target === undefined) return Errno.EFAULT
      const port = d.bindVirq(virq, target)
      if (port < 0) return port
      return m.write32(arg + 8, port) ? 0 : Errno.EFAULT
    }
    case EvtchnOp.alloc_unbound: {
      const dom = m.read16(arg)
      if (dom === undefined) return Errno.EFAULT
      if (dom !== DOMID_SELF && dom !== 0) return Errno.ESRCH
      const port = d.allocUnbound()
      if (port < 0) return port
      return m.write32(arg + 4, port) ? 0 : Errno.EFAULT
    }
    case EvtchnOp.close:
    case EvtchnOp.send:
    case EvtchnOp.unmask: {
      const port = word(0)
      if (port === undefined) return Errno.EFAULT
      return cmd === EvtchnOp.close ? d.close(port) : cmd === EvtchnOp.send ? d.send(port) : d.unmask(port)
    }
    default:
      return Errno.ENOSYS
  }
}

/**
 * HYPERVISOR_iret: pop eax, eip, cs, eflags (and esp, ss when going back to
 * ring 3) from the guest's stack and return there, the event mask following
 * !EFLAGS.IF (xen.h "iret"). As the hardware's IRET to an outer ring does,
 * data segments the new ring may not use become null (SDM 3A 6.12.1).
 */
function iret(vcpu: PvVcpu, v: CpuState): HypercallOutcome {
  const m = vcpu.memory
  const frame = m.read(v.esp, 16)
  if (frame === undefined) return crash(`HYPERVISOR_iret: the frame at 0x${v.esp.toString(16)} cannot be read`)
  const dv = new DataView(frame.buffer)
  const cs = dv.getUint32(8, true) & 0xffff
  const eflags = dv.getUint32(12, true)
  const code = flatSegment(cs)
  if (code === undefined || (cs !== FLAT_RING1_CS && cs !== FLAT_RING3_CS))
    return crash(`HYPERVISOR_iret to CS 0x${cs.toString(16)}, not a flat ring-1 or ring-3 code selector`)
  let esp = (v.esp + 16) >>> 0
  if (ring(cs) === 3) {
    const outer = m.read(esp, 8)
    if (outer === undefined) return crash("HYPERVISOR_iret: the ring-3 stack pointer cannot be read")
    const odv = new DataView(outer.buffer)
    const ss = odv.getUint32(4, true) & 0xffff
    if (ss !== FLAT_RING3_DS) return crash(`HYPERVISOR_iret to ring 3 with SS 0x${ss.toString(16)}`)
    esp = odv.getUint32(0, true)
    v.ss = flatSegment(ss)!
    for (const seg of [v.ds, v.es, v.fs, v.gs]) {
      if ((seg.access & 0x10000) === 0 && ((seg.access >> 5) & 3) < 3) {
        seg.selector = 0
        seg.base = 0
        seg.limit = 0
        seg.access = 0x10000
      }
    }
  }
  v.eax = dv.getUint32(0, true)
  v.eip = dv.getUint32(4, true)
  v.cs = code
  v.esp = esp
  // arithmetic, TF, DF, AC, ID come from the frame; IF is the event mask's; IOPL, VM, NT stay the hypervisor's
  v.eflags = ((eflags & 0x00240dd5) | 0x202) >>> 0
  vcpu.domain.setUpcallMask(vcpu.index, (eflags & 0x200) === 0)
  return "resume"
}

const crash = (message: string): HypercallOutcome => ({ end: { _tag: "Failed", message: `pv: ${message}` } })

/** May `INT n` from `cpl` use trap-table entry `entry` (its DPL, xen.h TI_GET_DPL)? */
export const trapAllowed = (entry: TrapEntry | undefined, cpl: number): entry is TrapEntry =>
  entry !== undefined && (entry.flags & TI_DPL_MASK) >= cpl
