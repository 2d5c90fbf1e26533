/**
 * The loader never throws, whatever the bytes (DESIGN.md "Errors": a guest
 * image cannot crash the hypervisor). fast-check properties over
 *
 *   - random mutations (bytes, 32-bit words with boundary values, aimed at
 *     the ELF header, the program headers and the Multiboot header, with the
 *     checksum sometimes repaired so the mutation reaches the loader's later
 *     rules) and truncations of the two real images (ELF and a.out kludge);
 *   - random byte soup around a valid Multiboot header with random flags and
 *     a.out kludge fields, which exercises the address arithmetic;
 *
 * with random RAM sizes, command lines and modules. Each run either fails
 * with a LoaderError whose reason is one of the documented ones, or returns
 * a plan that keeps every promise: all writes and zero ranges inside RAM and
 * pairwise disjoint, the entry inside bytes loaded from the image, the
 * registers of spec 3.2, and applyLoad writing exactly the planned ranges.
 *
 * The generators and checks are shared with fuzz suite `inputs`
 * (scripts/fuzz/inputs/loader.ts); here they run on the nasm-built reader
 * images, and each test also requires the outcomes to be varied.
 */
import { describe, expect, it } from "@effect/vitest"
import fc from "fast-check"
import {
  loaderOptions,
  loaderOutcome,
  mutatedImage,
  soupFields,
  soupImage
} from "../../../scripts/fuzz/inputs/loader.ts"
import { elfImage, flatImage, readerElfSource, readerKludgeSource } from "./images.ts"

const elf = () => elfImage(readerElfSource(), { text: 0x100000 }).bytes
const flat = () => flatImage(readerKludgeSource()).bytes

describe("the loader never throws", () => {
  it("on mutated and truncated ELF images", () => {
    const base = elf()
    const outcomes = new Map<string, number>()
    fc.assert(
      fc.property(
        mutatedImage(base, 0x1000, [
          [0, 52],
          [52, 52 + 3 * 32],
          [0x1000, 0x1020]
        ]),
        loaderOptions,
        (image, opts) => {
          const outcome = loaderOutcome(image, opts)
          outcomes.set(outcome, (outcomes.get(outcome) ?? 0) + 1)
        }
      ),
      { seed: 0x10ade, numRuns: 600 }
    )
    // the mutations reach both sides and many different rules
    expect(outcomes.get("ok")).toBeGreaterThan(0)
    expect(outcomes.size).toBeGreaterThanOrEqual(8)
  })

  it("on mutated and truncated a.out-kludge images", () => {
    const base = flat()
    const outcomes = new Set<string>()
    fc.assert(
      fc.property(mutatedImage(base, 0, [[0, 32]]), loaderOptions, (image, opts) => {
        outcomes.add(loaderOutcome(image, opts))
      }),
      { seed: 0xa0a7, numRuns: 600 }
    )
    expect(outcomes.has("ok")).toBe(true)
    expect(outcomes.size).toBeGreaterThanOrEqual(6)
  })

  it("on byte soup around a valid header with random flags and address fields", () => {
    const soup = soupFields.map(soupImage)
    const outcomes = new Set<string>()
    fc.assert(
      fc.property(soup, loaderOptions, (image, opts) => {
        outcomes.add(loaderOutcome(image, opts))
      }),
      { seed: 0x5009, numRuns: 800 }
    )
    expect(outcomes.has("ok")).toBe(true)
    expect(outcomes.size).toBeGreaterThanOrEqual(7)
  })
})
