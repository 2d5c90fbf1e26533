/**
 * Raw code as a boot payload, no image format: the two starting states
 * tests, fuzz suites and benchmarks put small guests in.
 *
 * - Real mode at 0000:7C00, where a BIOS leaves a boot sector (CS selector
 *   and base 0, 64 KiB limit; everything else as at reset, SDM 3A 9.1.1).
 * - Flat 32-bit protected mode (CR0.PE, paging off), ring 0: CS = 0x08 and
 *   data segments 0x10, base 0 and 4 GiB limit, as a Multiboot loader leaves
 *   a kernel (Multiboot 0.6.96 3.2), code at 1 MiB by default.
 */
import type { CpuState } from "../../hw/cpu/state.ts"
import { resetGuestRegisters } from "../../hw/cpu/vmx/vmcs.ts"
import type { BootPayload } from "../vm.ts"
import { SegmentAccess } from "./boot-info.ts"

export const BOOT_SECTOR = 0x7c00
export const FLAT_CODE = 0x100000

/** Registers of a vCPU in real mode at 0000:`ip`. */
export const realModeRegisters = (ip: number = BOOT_SECTOR): CpuState => {
  const registers = resetGuestRegisters()
  registers.cs = { selector: 0, base: 0, limit: 0xffff, access: 0x9b }
  registers.eip = ip
  return registers
}

/** Registers of a vCPU in flat 32-bit protected mode at `eip`, stack at `esp`. */
export const flat32Registers = (eip: number = FLAT_CODE, esp = 0x80000): CpuState => {
  const registers = resetGuestRegisters()
  const data = { selector: 0x10, base: 0, limit: 0xffffffff, access: SegmentAccess.data32 }
  registers.cr0 = 0x11
  registers.cs = { selector: 0x08, base: 0, limit: 0xffffffff, access: SegmentAccess.code32 }
  registers.ds = registers.es = registers.ss = registers.fs = registers.gs = data
  registers.eip = eip
  registers.esp = esp
  return registers
}

/** `bytes` at `ip` (default 0x7C00), started in real mode there. */
export const realModePayload = (bytes: ArrayLike<number>, ip: number = BOOT_SECTOR): BootPayload => ({
  writes: [{ address: ip, bytes: Uint8Array.from(bytes) }],
  registers: realModeRegisters(ip)
})

/** `bytes` at `eip` (default 1 MiB), started in flat 32-bit protected mode there. */
export const flat32Payload = (bytes: ArrayLike<number>, eip: number = FLAT_CODE, esp = 0x80000): BootPayload => ({
  writes: [{ address: eip, bytes: Uint8Array.from(bytes) }],
  registers: flat32Registers(eip, esp)
})
