/**
 * The VM-exit conditions of instructions in VMX non-root operation (Intel
 * SDM Vol. 3C 26.1 (25.1 in older editions) "Instructions That Cause VM
 * Exits"): each function is called by the instruction's handler after the
 * checks that have priority over VM exits (#UD, CPL-based #GP, the I/O
 * permission bitmap, SDM 26.1.1) and raises the exit if the VMCS controls
 * say so. Outside non-root operation they do nothing.
 */

import { PageKind } from "../bus.ts"
import type { Cpu } from "../cpu.ts"
import { DS, EDI, ES, ESI } from "../regs.ts"
import { CrAccessType, crQualification, ExitReason, ioQualification } from "./exit-reasons.ts"
import { ProcControls } from "./vmcs.ts"
import { vmExitBeforeEffect, vmExitNow } from "./vmx.ts"

/** Read bit `bit` of a bitmap in machine memory (unmapped memory reads as 1s: exits). */
function bitmapBit(c: Cpu, base: number, bit: number): boolean {
  const addr = (base + (bit >>> 3)) >>> 0
  if (c.mem.pageKind(addr >>> 12) !== PageKind.Ram || addr >= c.ram.length) return true
  return ((c.ram[addr]! >> (bit & 7)) & 1) !== 0
}

/**
 * IN/OUT/INS/OUTS (SDM 26.1.3: unconditional I/O exiting, or the I/O bitmaps when "use I/O bitmaps" is 1).
 * True if the instruction exits: the exit is raised without a throw (vmExitBeforeEffect) and the caller
 * returns at once, before touching the port.
 */
export function checkIoExit(
  c: Cpu,
  port: number,
  size: number,
  isIn: boolean,
  isString: boolean,
  immediate: boolean
): boolean {
  const v = c.vmcs
  if (v === null) return false
  let exits: boolean
  if ((c.vmProc & ProcControls.UseIoBitmaps) !== 0) {
    exits = false
    for (let i = 0; i < size; i++) {
      const p = (port + i) & 0xffff
      // an access that wraps past FFFF exits unconditionally
      if (port + i > 0xffff || bitmapBit(c, p < 0x8000 ? v.controls.ioBitmapA : v.controls.ioBitmapB, p & 0x7fff))
        exits = true
    }
  } else {
    exits = (c.vmProc & ProcControls.UnconditionalIoExiting) !== 0
  }
  if (!exits) return false
  // INS/OUTS: the guest-linear-address field gets the linear address of the memory operand, ES:(E)DI for INS and
  // seg:(E)SI for OUTS (SDM 3C 28.2.1 "Guest-linear address")
  if (isString) {
    const seg = isIn ? ES : c.segOvr >= 0 ? c.segOvr : DS
    const reg = isIn ? EDI : ESI
    const offset = c.a32 ? c.r32[reg]! : c.r16[reg << 1]!
    v.exit.guestLinearAddress = ((c.segBase[seg]! + offset) & c.a20Mask) >>> 0
  }
  vmExitBeforeEffect(c, ExitReason.IoInstruction, ioQualification(size, isIn, isString, c.rep !== 0, immediate, port))
  return true
}

/** RDMSR/WRMSR (SDM 26.1.3: always, unless the MSR bitmaps say otherwise). */
export function checkMsrExit(c: Cpu, msr: number, write: boolean): void {
  const v = c.vmcs
  if (v === null) return
  const reason = write ? ExitReason.Wrmsr : ExitReason.Rdmsr
  if ((c.vmProc & ProcControls.UseMsrBitmaps) === 0) vmExitNow(c, reason)
  msr >>>= 0
  let offset: number
  if (msr <= 0x1fff) offset = 0
  else if (msr >= 0xc0000000 && msr <= 0xc0001fff) offset = 1024
  else vmExitNow(c, reason)
  if (write) offset += 2048
  if (bitmapBit(c, v.controls.msrBitmap + offset, msr & 0x1fff)) vmExitNow(c, reason)
}

/** An instruction that exits when a primary processor-based control is set (HLT, INVLPG, RDTSC, RDPMC, MOV DR...). */
export function checkControlExit(c: Cpu, control: number, reason: number, qualification = 0): void {
  if (c.vmcs !== null && (c.vmProc & control) !== 0) vmExitNow(c, reason, qualification)
}

/**
 * An instruction that exits when a primary processor-based control is set, checked before it has any
 * effect (HLT): true if it exits, raised without a throw (vmExitBeforeEffect); the caller returns at once.
 */
export function controlExits(c: Cpu, control: number, reason: number): boolean {
  if (c.vmcs === null || (c.vmProc & control) === 0) return false
  vmExitBeforeEffect(c, reason)
  return true
}

/** CPUID-like: always exits in non-root operation, before any effect; true if it exits (the caller returns at once). */
export function unconditionalExits(c: Cpu, reason: number): boolean {
  if (c.vmcs === null) return false
  vmExitBeforeEffect(c, reason)
  return true
}

/** An instruction that always exits in non-root operation (CPUID, INVD, VMCALL, ...). */
export function checkUnconditionalExit(c: Cpu, reason: number): void {
  if (c.vmcs !== null) vmExitNow(c, reason)
}

/**
 * MOV to CR0/CR4 (SDM 26.1.3 and 26.3): exits when the new value differs
 * from the read shadow in a bit the guest/host mask gives to the host.
 * Returns the value to load into the real register otherwise (host-owned
 * bits keep their current value).
 */
export function crWriteValue(c: Cpu, cr: 0 | 4, value: number, gpr: number): number {
  const v = c.vmcs
  if (v === null) return value
  const mask = cr === 0 ? v.controls.cr0GuestHostMask : v.controls.cr4GuestHostMask
  const shadow = cr === 0 ? v.controls.cr0ReadShadow : v.controls.cr4ReadShadow
  if (((value ^ shadow) & mask) !== 0) vmExitNow(c, ExitReason.CrAccess, crQualification(cr, CrAccessType.MovToCr, gpr))
  const current = cr === 0 ? c.cr0 : c.cr4
  return (current & mask) | (value & ~mask)
}

/** MOV from CR0/CR4: host-owned bits read from the read shadow (SDM 26.3). */
export function crReadValue(c: Cpu, cr: 0 | 4, actual: number): number {
  const v = c.vmcs
  if (v === null) return actual
  const mask = cr === 0 ? v.controls.cr0GuestHostMask : v.controls.cr4GuestHostMask
  const shadow = cr === 0 ? v.controls.cr0ReadShadow : v.controls.cr4ReadShadow
  return (actual & ~mask) | (shadow & mask)
}

/** MOV to CR3: exits unless the value is one of the CR3-target values (SDM 26.1.3). */
export function checkCr3Write(c: Cpu, value: number, gpr: number): void {
  const v = c.vmcs
  if (v === null || (c.vmProc & ProcControls.Cr3LoadExiting) === 0) return
  if (v.controls.cr3TargetValues.some((t) => t >>> 0 === value >>> 0)) return
  vmExitNow(c, ExitReason.CrAccess, crQualification(3, CrAccessType.MovToCr, gpr))
}

export function checkCr3Read(c: Cpu, gpr: number): void {
  if (c.vmcs !== null && (c.vmProc & ProcControls.Cr3StoreExiting) !== 0) {
    vmExitNow(c, ExitReason.CrAccess, crQualification(3, CrAccessType.MovFromCr, gpr))
  }
}

/** CLTS: exits if CR0.TS is host-owned and set in the read shadow (SDM 26.1.3). */
export function checkClts(c: Cpu): void {
  const v = c.vmcs
  if (v !== null && (v.controls.cr0GuestHostMask & 8) !== 0 && (v.controls.cr0ReadShadow & 8) !== 0) {
    vmExitNow(c, ExitReason.CrAccess, crQualification(0, CrAccessType.Clts, 0))
  }
}

/** LMSW: exits if a host-owned bit among CR0[3:0] would change from the shadow (PE cannot be cleared). */
export function checkLmsw(c: Cpu, source: number, memoryLinear: number): void {
  const v = c.vmcs
  if (v === null) return
  const mask = v.controls.cr0GuestHostMask & 0xf
  const shadow = v.controls.cr0ReadShadow
  const changes = (source ^ shadow) & mask & ~((shadow & 1) === 1 ? 1 : 0)
  if (changes === 0) return
  // table 28-3 bit 6: LMSW operand type (1 = memory); 28.2.1: the guest-linear address of a memory operand
  const memory = memoryLinear !== -1
  if (memory) v.exit.guestLinearAddress = memoryLinear >>> 0
  vmExitNow(c, ExitReason.CrAccess, crQualification(0, CrAccessType.Lmsw, 0, source) | (memory ? 1 << 6 : 0))
}
