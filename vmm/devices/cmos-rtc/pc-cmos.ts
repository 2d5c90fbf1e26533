/**
 * The PC/AT CMOS bytes QEMU's pc (i440FX) machine writes at start-up, so a
 * guest that reads its memory size or CPU count from CMOS sees the same
 * values under fibervisor as under `qemu-system-i386 -M pc`:
 *
 * - hw/i386/pc.c `pc_cmos_init_late`: base memory (KiB, at most 640) at
 *   0x15/0x16; extended memory above 1 MiB (KiB, at most 65535) at
 *   0x17/0x18 and again at 0x30/0x31; memory above 16 MiB (64 KiB units,
 *   at most 65535) at 0x34/0x35; memory above 4 GiB (64 KiB units) at
 *   0x5B-0x5D; equipment byte 0x14 = 0x06 (FPU present, PS/2 mouse
 *   installed: QEMU writes it after the floppy bits, so no floppy bits);
 *   no floppy (0x10 = 0), no IDE disk (0x12 = 0, 0x39 = 0);
 * - `set_boot_dev` with QEMU's default boot order "cad": 0x3D = 0x12
 *   (hard disk, then floppy), 0x38 = 0x30 (then CD-ROM; floppy boot
 *   signature check on);
 * - hw/i386/x86.c `x86_rtc_set_cpus_count`: 0x5F = CPUs - 1 (0 above 255).
 *
 * RAM below 4 GiB follows QEMU's i440FX split (hw/i386/pc_piix.c): all of
 * it when it is below 0xE0000000 (the PCI hole), else 3 GiB below and the
 * rest above 4 GiB ("gigabyte_align").
 */
import { Reg } from "./registers.ts"

const KiB = 1024
const MiB = 1024 * KiB

/** Where QEMU's i440FX puts the top of low RAM when RAM reaches the PCI hole. */
export const PCI_HOLE_START = 0xe0000000
export const GIGABYTE_ALIGNED_LOW_RAM = 0xc0000000

/** RAM below and above 4 GiB as QEMU's pc machine splits `ramBytes`. */
export const splitRam = (ramBytes: number): { below4g: number; above4g: number } => {
  const ram = Number.isFinite(ramBytes) && ramBytes > 0 ? Math.floor(ramBytes) : 0
  const below4g = ram >= PCI_HOLE_START ? GIGABYTE_ALIGNED_LOW_RAM : ram
  return { below4g, above4g: ram - below4g }
}

/** The CMOS bytes (index -> value) QEMU's pc machine sets for this RAM size and CPU count. */
export const pcCmosBytes = (ramBytes: number, cpus: number): ReadonlyArray<readonly [number, number]> => {
  const { below4g, above4g } = splitRam(ramBytes)
  const base = Math.min(Math.floor(below4g / KiB), 640)
  const extended = below4g > MiB ? Math.min(Math.floor((below4g - MiB) / KiB), 0xffff) : 0
  const above16m = below4g > 16 * MiB ? Math.min(Math.floor((below4g - 16 * MiB) / (64 * KiB)), 0xffff) : 0
  const high = Math.floor(above4g / (64 * KiB))
  const n = Number.isInteger(cpus) && cpus >= 1 ? cpus : 1
  return [
    [Reg.ShutdownStatus, 0x00],
    [Reg.FloppyTypes, 0x00],
    [Reg.HardDiskTypes, 0x00],
    [Reg.AtaTranslation, 0x00],
    [Reg.Equipment, 0x06],
    [Reg.BaseMemoryLow, base & 0xff],
    [Reg.BaseMemoryHigh, (base >> 8) & 0xff],
    [Reg.ExtendedMemoryLow, extended & 0xff],
    [Reg.ExtendedMemoryHigh, (extended >> 8) & 0xff],
    [Reg.ExtendedMemory2Low, extended & 0xff],
    [Reg.ExtendedMemory2High, (extended >> 8) & 0xff],
    [Reg.MemoryAbove16MLow, above16m & 0xff],
    [Reg.MemoryAbove16MHigh, (above16m >> 8) & 0xff],
    [Reg.MemoryAbove4GLow, high & 0xff],
    [Reg.MemoryAbove4GMid, (high >>> 8) & 0xff],
    [Reg.MemoryAbove4GHigh, (high >>> 16) & 0xff],
    [Reg.BootOrder12, 0x12],
    [Reg.BootOrder3, 0x30],
    [Reg.CpuCount, n > 0xff ? 0 : n - 1]
  ]
}
