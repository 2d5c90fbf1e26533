/**
 * Guest virtual memory as the hypervisor reads and writes it on a `pv`
 * guest's behalf (hypercall arguments, bounce frames): a walk of the
 * guest's own 2-level page tables from its CR3 (Intel SDM Vol. 3A 4.3,
 * 32-bit paging, table 4-6) with the checks a supervisor access under
 * CR0.WP = 1 makes (4.6: P at both levels, R/W at both levels to write).
 * Addresses at or above the hypervisor's hole are never the guest's.
 * Every access either succeeds whole or reports failure (-EFAULT for the
 * guest); nothing here trusts what the guest's tables say.
 */
import type { GuestPhysical } from "../../guest-memory.ts"
import { HYPERVISOR_VIRT_START } from "./abi.ts"

const P = 1
const RW = 2
const PS = 0x80

export class GuestVirtual {
  private readonly guest: GuestPhysical
  /** The guest's page directory (guest-physical) and CR4.PSE, for the access being made. */
  cr3 = 0
  pse = false

  constructor(guest: GuestPhysical) {
    this.guest = guest
  }

  /** The guest-physical address of `linear`, or undefined if a supervisor access (`write` or read) faults. */
  translate(linear: number, write: boolean): number | undefined {
    linear >>>= 0
    if (linear >= HYPERVISOR_VIRT_START) return undefined
    const g = this.guest
    const pdeAt = ((this.cr3 & 0xfffff000) | ((linear >>> 22) << 2)) >>> 0
    if (!g.contains(pdeAt, 4)) return undefined
    const pde = g.readValue(pdeAt, 4)
    if ((pde & P) === 0 || (write && (pde & RW) === 0)) return undefined
    let gpa: number
    if ((pde & PS) !== 0 && this.pse) {
      gpa = ((pde & 0xffc00000) | (linear & 0x3fffff)) >>> 0
    } else {
      const pteAt = ((pde & 0xfffff000) | ((linear >>> 10) & 0xffc)) >>> 0
      if (!g.contains(pteAt, 4)) return undefined
      const pte = g.readValue(pteAt, 4)
      if ((pte & P) === 0 || (write && (pte & RW) === 0)) return undefined
      gpa = ((pte & 0xfffff000) | (linear & 0xfff)) >>> 0
    }
    return g.contains(gpa, 1) ? gpa : undefined
  }

  /** Little-endian u32 at `linear` (it may straddle pages), or undefined. */
  read32(linear: number): number | undefined {
    const bytes = this.read(linear, 4)
    return bytes === undefined
      ? undefined
      : (bytes[0]! | (bytes[1]! << 8) | (bytes[2]! << 16) | (bytes[3]! << 24)) >>> 0
  }

  read16(linear: number): number | undefined {
    const bytes = this.read(linear, 2)
    return bytes === undefined ? undefined : bytes[0]! | (bytes[1]! << 8)
  }

  read8(linear: number): number | undefined {
    return this.read(linear, 1)?.[0]
  }

  /** `length` bytes from `linear`, or undefined if any of them cannot be read. */
  read(linear: number, length: number): Uint8Array | undefined {
    const out = new Uint8Array(length)
    let done = 0
    while (done < length) {
      const at = (linear + done) >>> 0
      const chunk = Math.min(length - done, 0x1000 - (at & 0xfff))
      const gpa = this.translate(at, false)
      if (gpa === undefined) return undefined
      const bytes = this.guest.read(gpa, chunk)
      if (bytes === undefined) return undefined
      out.set(bytes, done)
      done += chunk
    }
    return out
  }

  /** Write `bytes` at `linear`; false (nothing written) if any byte cannot be written. */
  write(linear: number, bytes: Uint8Array): boolean {
    const parts: Array<[number, number, number]> = []
    for (let done = 0; done < bytes.length; ) {
      const at = (linear + done) >>> 0
      const chunk = Math.min(bytes.length - done, 0x1000 - (at & 0xfff))
      const gpa = this.translate(at, true)
      if (gpa === undefined) return false
      parts.push([gpa, done, chunk])
      done += chunk
    }
    for (const [gpa, from, chunk] of parts) this.guest.write(gpa, bytes.subarray(from, from + chunk))
    return true
  }

  write32(linear: number, value: number): boolean {
    const b = new Uint8Array(4)
    new DataView(b.buffer).setUint32(0, value >>> 0, true)
    return this.write(linear, b)
  }
}
