/**
 * The flat segments of the hypervisor's GDT in `pv` mode (Xen x86-32,
 * arch-x86/xen-x86_32.h FLAT_RING1_CS...): base 0, limit 0xFFBFFFFF with
 * 4 KiB granularity, so no offset reaches the hypervisor's hole at the top
 * 4 MiB (Intel SDM Vol. 3A 3.4.5 segment descriptors, 5.3 limit checking).
 * As descriptor-cache values (the VMX access-rights format of
 * hw/cpu/state.ts) and as the 8-byte descriptors the GDT holds.
 */
import type { SegmentState } from "../../../hw/cpu/state.ts"
import { FLAT_RING1_CS, FLAT_RING1_DS, FLAT_RING3_CS, FLAT_RING3_DS, HYPERVISOR_VIRT_START } from "./abi.ts"

/** Highest offset of a flat guest segment. */
export const FLAT_LIMIT = HYPERVISOR_VIRT_START - 1

/** selector -> access rights (type | S | DPL | P | D/B | G), VMX format. */
const ACCESS: ReadonlyMap<number, number> = new Map([
  [FLAT_RING1_CS, 0xc0bb],
  [FLAT_RING1_DS, 0xc0b3],
  [FLAT_RING3_CS, 0xc0fb],
  [FLAT_RING3_DS, 0xc0f3]
])

/** The descriptor cache after loading flat selector `selector` (undefined: not one of them). */
export function flatSegment(selector: number): SegmentState | undefined {
  const access = ACCESS.get(selector)
  return access === undefined ? undefined : { selector, base: 0, limit: FLAT_LIMIT, access }
}

/** Every flat segment's GDT index and descriptor (low, high dwords). */
export function flatDescriptors(): Array<{ readonly index: number; readonly low: number; readonly high: number }> {
  const limit = FLAT_LIMIT >>> 12 // in 4 KiB units (G = 1)
  return [...ACCESS].map(([selector, access]) => ({
    index: selector >> 3,
    low: (limit & 0xffff) >>> 0,
    // base 31:24 = 0 | G D/B (from access bits 15,14) | limit 19:16 | P DPL S type | base 23:16 = 0
    high: ((((access >> 12) & 0xf) << 20) | (limit & 0xf0000) | ((access & 0xff) << 8)) >>> 0
  }))
}
