/**
 * The CPU state in which a Multiboot kernel starts (GNU "Multiboot
 * Specification version 0.6.96", 3.2 "Machine state"), as the `CpuState`
 * record of hw/cpu/state.ts, ready for a VMCS guest-state area or
 * `Cpu.setState`:
 *
 *   EAX     0x2BADB002, the boot loader magic                       (3.2)
 *   EBX     physical address of the information structure (0x9500)  (3.2)
 *   CS      32-bit read/execute, base 0, limit 4 GiB: selector 0x08 (3.2)
 *   DS ES FS GS SS  32-bit read/write, base 0, limit 4 GiB: 0x10    (3.2)
 *   A20     enabled                                                 (3.2)
 *   CR0     PE = 1, PG = 0; 0x11 (PE | ET): QEMU's option ROM writes
 *           CR0 = 1 and ET is hardwired, so CD/NW are clear (caches on)
 *   EFLAGS  0x2: VM = 0, IF = 0 (3.2), DF = 0 (QEMU runs cli; cld)
 *   ESP     undefined by the spec; 0x9000 here, the bottom of the boot
 *           information, so early pushes land in free memory below it. The
 *           kernel must still set up its own stack (3.2).
 *   ECX     the entry point: QEMU's ROM jumps with `jmp *%ecx`; harmless
 *   GDTR    undefined by the spec ("the OS image must create its own GDT");
 *           here, as in QEMU, the loader's 5-entry table: base 0x9580,
 *           limit 0x27, and the segment caches match its descriptors, so a
 *           kernel may reload 0x08/0x10 before it installs its own GDT
 *   IDTR    undefined by the spec; limit 0 here. QEMU leaves the BIOS's
 *           real-mode IVT (base 0, limit 0x3ff), which an early exception
 *           would misread as gates; with limit 0 it becomes a clean triple
 *           fault (shutdown) instead
 *   the rest (LDTR, TR, CR2-4, DR0-7, MSRs, TSC) is the INIT state of SDM
 *           Vol. 3A 9.1.1 table 9-1, which the option ROM leaves alone.
 */
import type { CpuState, SegmentState } from "../../hw/cpu/state.ts"
import { resetGuestRegisters } from "../../hw/cpu/vmx/vmcs.ts"
import { GDT_ADDRESS, GDT_ENTRIES, SegmentAccess, Selector } from "./boot-info.ts"

/** EAX at entry (3.2): tells the kernel a Multiboot-compliant loader started it. */
export const MULTIBOOT_BOOTLOADER_MAGIC = 0x2badb002
/** ESP at entry: see the header. */
export const INITIAL_ESP = 0x9000
const CR0_PE = 1 << 0
const CR0_ET = 1 << 4

const flat = (selector: number, access: number): SegmentState => ({ selector, base: 0, limit: 0xffffffff, access })

/** The registers at the kernel's first instruction: `entry`, with EBX = `infoAddress`. */
export function multibootMachineState(entry: number, infoAddress: number): CpuState {
  const s = resetGuestRegisters()
  s.eax = MULTIBOOT_BOOTLOADER_MAGIC
  s.ebx = infoAddress >>> 0
  s.ecx = entry >>> 0
  s.edx = 0
  s.esp = INITIAL_ESP
  s.eip = entry >>> 0
  s.eflags = 0x2
  s.cs = flat(Selector.Code32, SegmentAccess.code32)
  s.ss = flat(Selector.Data32, SegmentAccess.data32)
  s.ds = flat(Selector.Data32, SegmentAccess.data32)
  s.es = flat(Selector.Data32, SegmentAccess.data32)
  s.fs = flat(Selector.Data32, SegmentAccess.data32)
  s.gs = flat(Selector.Data32, SegmentAccess.data32)
  s.gdtr = { base: GDT_ADDRESS, limit: GDT_ENTRIES * 8 - 1 }
  s.idtr = { base: 0, limit: 0 }
  s.cr0 = CR0_PE | CR0_ET
  s.a20 = true
  s.halted = false
  return s
}
