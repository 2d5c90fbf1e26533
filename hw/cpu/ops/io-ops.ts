/**
 * Port I/O: IN and OUT (E4-E7, EC-EF), and the protection check shared with
 * INS/OUTS (Intel SDM Vol. 1 19.5 "I/O privilege level", 19.5.2 "I/O
 * permission bit map"): in protected mode with CPL > IOPL every port byte
 * touched must have a clear bit in the 32-bit TSS's I/O bitmap, else #GP(0).
 * In VMX non-root operation the I/O-exiting controls are checked after that
 * (SDM 3C 26.1.1: the I/O-permission #GP has priority over the VM exit).
 */
import type { AccessSize } from "../bus.ts"
import type { Cpu } from "../cpu.ts"
import { F_IOPL, GP } from "../regs.ts"
import { checkIoExit } from "../vmx/exits.ts"
import type { Op } from "./types.ts"

export function checkIoPermission(c: Cpu, port: number, size: AccessSize): void {
  if (!c.pe || c.cpl <= (c.flags & F_IOPL) >> 12) return
  const tr = c.tr
  const type = tr.access & 0xf
  if ((type !== 9 && type !== 11) || tr.limit < 0x67) c.fault(GP, 0)
  const bitmap = c.sysLd16(tr.base + 0x66)
  const byte = bitmap + (port >> 3)
  if (byte + 1 > tr.limit) c.fault(GP, 0)
  const bits = c.sysLd16(tr.base + byte)
  const mask = ((1 << size) - 1) << (port & 7)
  if ((bits & mask) !== 0) c.fault(GP, 0)
}

function portIn(c: Cpu, port: number, size: AccessSize, immediate: boolean): void {
  checkIoPermission(c, port, size)
  if (checkIoExit(c, port, size, true, false, immediate)) return
  const v = c.io.in(port, size)
  c.cycles += c.portLatency
  c.setReg(size, 0, v)
}

function portOut(c: Cpu, port: number, size: AccessSize, immediate: boolean): void {
  checkIoPermission(c, port, size)
  if (checkIoExit(c, port, size, false, false, immediate)) return
  const v = c.getReg(size, 0)
  c.io.out(port, size, size === 4 ? v >>> 0 : v)
  c.cycles += c.portLatency
}

export function installIo(one: Array<Op>): void {
  one[0xe4] = (c) => portIn(c, c.fetch8(), 1, true)
  one[0xe5] = (c) => portIn(c, c.fetch8(), c.o32 ? 4 : 2, true)
  one[0xe6] = (c) => portOut(c, c.fetch8(), 1, true)
  one[0xe7] = (c) => portOut(c, c.fetch8(), c.o32 ? 4 : 2, true)
  one[0xec] = (c) => portIn(c, c.r16[4]!, 1, false)
  one[0xed] = (c) => portIn(c, c.r16[4]!, c.o32 ? 4 : 2, false)
  one[0xee] = (c) => portOut(c, c.r16[4]!, 1, false)
  one[0xef] = (c) => portOut(c, c.r16[4]!, c.o32 ? 4 : 2, false)
}
