/**
 * A VM's guest-physical memory as the VMM sees it: guest RAM is [0, ramBytes),
 * each 4 KiB guest frame backed lazily by one machine frame the VM owns
 * (kernel/memory: zeroed on first touch, mapped in the VM's EPT). Reads of
 * never-touched pages return zeros without allocating; writes back the page.
 * Every access is bounds-checked against the VM's RAM: nothing here can reach
 * another VM's frames or the kernel's (the frames come only from this VM's
 * pool). Synchronous: used inside a vCPU's quantum.
 *
 * Without EPT (`hw` mode with `--ept off`: shadow page tables) frames are
 * only backed, never mapped in an EPT, and `onWrite` tells the VM's shadow
 * paging of every write the VMM itself makes to guest RAM (the instruction
 * emulator, virtio DMA, the image reloaded on reset): those bypass the write
 * protection of traced guest page tables, so the shadows derived from the
 * entries written must be zapped (vmm/shadow/vmx-shadow-paging.ts).
 */

import type { VmId } from "../kernel/memory/errors.ts"
import type { MemoryManager } from "../kernel/memory/memory-manager.ts"

export class GuestMemoryError extends Error {
  override readonly name = "GuestMemoryError"
}

export class GuestPhysical {
  readonly ramBytes: number
  private readonly mm: MemoryManager
  private readonly vm: VmId
  private readonly machineRam: Uint8Array
  /** Back frames in the VM's EPT too (false: shadow paging, the frames are only backed). */
  private readonly ept: boolean
  /** Told after every write through `write` / `writeValue` (guest-physical address, length in bytes). */
  onWrite: ((gpa: number, length: number) => void) | undefined = undefined

  constructor(mm: MemoryManager, vm: VmId, ramBytes: number, options: { readonly ept?: boolean } = {}) {
    this.mm = mm
    this.vm = vm
    this.ramBytes = ramBytes
    this.machineRam = mm.frames.ram
    this.ept = options.ept ?? true
  }

  contains(gpa: number, length = 1): boolean {
    return Number.isInteger(gpa) && gpa >= 0 && length >= 0 && gpa + length <= this.ramBytes
  }

  /** The machine frame backing guest frame `gfn`: mapped on demand when `allocate`, else undefined if untouched. */
  frame(gfn: number, allocate: boolean): number | undefined {
    const existing = this.mm.guestFrame(this.vm, gfn)
    if (existing !== undefined || !allocate) return existing
    const frame = this.ept ? this.mm.mapGuestPage(this.vm, gfn) : this.mm.backGuestPage(this.vm, gfn)
    if (typeof frame !== "number")
      throw new GuestMemoryError(`cannot back guest page ${gfn.toString(16)}: ${frame.message}`)
    return frame
  }

  /** Map guest frame `gfn` (EPT-violation path); false when it is outside guest RAM. */
  back(gfn: number): boolean {
    if (!this.contains(gfn * 4096)) return false
    this.frame(gfn, true)
    return true
  }

  read(gpa: number, length: number): Uint8Array | undefined {
    if (!this.contains(gpa, length)) return undefined
    const out = new Uint8Array(length)
    for (let done = 0; done < length; ) {
      const at = gpa + done
      const chunk = Math.min(length - done, 4096 - (at & 0xfff))
      const frame = this.frame(at >>> 12, false)
      if (frame !== undefined) {
        const base = frame * 4096 + (at & 0xfff)
        out.set(this.machineRam.subarray(base, base + chunk), done)
      }
      done += chunk
    }
    return out
  }

  write(gpa: number, bytes: Uint8Array): boolean {
    if (!this.contains(gpa, bytes.length)) return false
    for (let done = 0; done < bytes.length; ) {
      const at = gpa + done
      const chunk = Math.min(bytes.length - done, 4096 - (at & 0xfff))
      const frame = this.frame(at >>> 12, true)!
      this.machineRam.set(bytes.subarray(done, done + chunk), frame * 4096 + (at & 0xfff))
      done += chunk
    }
    this.onWrite?.(gpa, bytes.length)
    return true
  }

  /** Little-endian read of 1, 2 or 4 bytes (all-ones outside guest RAM, as unclaimed memory reads). */
  readValue(gpa: number, size: 1 | 2 | 4): number {
    const bytes = this.read(gpa, size)
    if (bytes === undefined) return size === 4 ? 0xffffffff : size === 2 ? 0xffff : 0xff
    let v = 0
    for (let i = 0; i < size; i++) v |= bytes[i]! << (8 * i)
    return v >>> 0
  }

  writeValue(gpa: number, size: 1 | 2 | 4, value: number): boolean {
    const bytes = new Uint8Array(size)
    for (let i = 0; i < size; i++) bytes[i] = (value >>> (8 * i)) & 0xff
    return this.write(gpa, bytes)
  }
}
