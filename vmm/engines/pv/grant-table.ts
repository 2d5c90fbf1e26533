/**
 * Grant tables, version 1 (xen/include/public/grant_table.h): how a `pv`
 * guest lets a back end touch one of its frames. The table is the guest's
 * memory (the frames GNTTABOP_setup_table hands out, placed by the domain
 * builder); entry `ref` is 8 bytes: u16 flags, u16 domid (who may use it),
 * u32 frame (pseudo-physical). A back end in the hypervisor plays domain 0.
 * Every use checks the entry as Xen's grant-table code does: a permit-access
 * grant to domain 0, of a frame of the guest's RAM, writable if the back
 * end is to write it.
 */
import type { GuestPhysical } from "../../guest-memory.ts"

export const GTF_permit_access = 1
export const GTF_type_mask = 3
export const GTF_readonly = 1 << 2
/** Entries per frame of a v1 table. */
export const GRANT_ENTRIES_PER_FRAME = 512
/** grant_table.h GNTTABOP_* and GNTST_* codes. */
export const GnttabOp = { setup_table: 2, query_size: 6 } as const
export const GNTST_okay = 0
export const GNTST_bad_domain = -2
export const GNTST_general_error = -1

export class GrantTable {
  private readonly guest: GuestPhysical
  readonly frames: ReadonlyArray<number>
  private readonly nrPages: number

  constructor(guest: GuestPhysical, frames: ReadonlyArray<number>, nrPages: number) {
    this.guest = guest
    this.frames = frames
    this.nrPages = nrPages
  }

  get entries(): number {
    return this.frames.length * GRANT_ENTRIES_PER_FRAME
  }

  /**
   * The guest-physical address of the frame granted by `ref` to domain 0,
   * or a reason it may not be used (`write`: the back end writes it).
   */
  frameOf(ref: number, write: boolean): number | string {
    if (!Number.isInteger(ref) || ref < 0 || ref >= this.entries) return `grant reference ${ref} is outside the table`
    const at = this.frames[Math.floor(ref / GRANT_ENTRIES_PER_FRAME)]! * 4096 + (ref % GRANT_ENTRIES_PER_FRAME) * 8
    const flags = this.guest.readValue(at, 2)
    const domid = this.guest.readValue(at + 2, 2)
    const frame = this.guest.readValue(at + 4, 4)
    if ((flags & GTF_type_mask) !== GTF_permit_access) return `grant ${ref} is not a permit-access grant`
    if (domid !== 0) return `grant ${ref} is for domain ${domid}, not the back end (0)`
    if (write && (flags & GTF_readonly) !== 0) return `grant ${ref} is read-only`
    if (frame >= this.nrPages) return `grant ${ref} names frame 0x${frame.toString(16)}, outside the guest's RAM`
    return frame * 4096
  }
}
