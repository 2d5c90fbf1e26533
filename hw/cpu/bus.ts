/**
 * What a pCPU is wired to: machine memory and the port-I/O space.
 *
 * The machine (hw/machine) supplies these; the CPU holds no globals, so two
 * CPUs in one process (or one test) never interfere.
 *
 * Machine memory is a flat Uint8Array indexed by machine-physical address for
 * RAM and ROM (the fast path, reached through the CPU's software TLB); every
 * other address (MMIO, unmapped) goes through `read`/`write`, where unmapped
 * reads return all-ones (Intel: a read that no device claims floats high).
 */

/** Kind of a 4 KiB machine page, as the TLB caches it. */
export const PageKind = {
  /** read/write, backed by `ram` */
  Ram: 0,
  /** read-only, backed by `ram`; writes go to `write` (which ignores them) */
  Rom: 1,
  /** MMIO or unmapped: every access goes through `read`/`write` */
  Mmio: 2
} as const
export type PageKind = (typeof PageKind)[keyof typeof PageKind]

export type AccessSize = 1 | 2 | 4

export interface PhysicalMemory {
  /** Backing store for RAM and ROM pages, indexed by machine-physical address. */
  readonly ram: Uint8Array
  /** Kind of the 4 KiB page with the given page number (address >>> 12). */
  pageKind(page: number): PageKind
  /** Slow path for MMIO/unmapped (and ROM writes). Returns the value zero-extended to `size` bytes. */
  read(address: number, size: AccessSize): number
  write(address: number, size: AccessSize, value: number): void
}

export interface IoPorts {
  /** IN: the value zero-extended to `size` bytes; a port nobody decodes reads all-ones. */
  in(port: number, size: AccessSize): number
  out(port: number, size: AccessSize, value: number): void
}

/** A flat RAM-only memory of `size` bytes (tests, conformance): everything past `size` reads all-ones. */
export const flatMemory = (size: number): PhysicalMemory => {
  const ram = new Uint8Array(size)
  const pages = size >>> 12
  return {
    ram,
    pageKind: (page) => (page < pages ? PageKind.Ram : PageKind.Mmio),
    read: (_address, size) => (size === 4 ? 0xffffffff : size === 2 ? 0xffff : 0xff),
    write: () => {}
  }
}

/** An I/O space where nothing is decoded: reads float high, writes vanish. */
export const noPorts: IoPorts = {
  in: (_port, size) => (size === 4 ? 0xffffffff : size === 2 ? 0xffff : 0xff),
  out: () => {}
}
