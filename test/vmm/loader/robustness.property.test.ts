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
 */
import { describe, expect, it } from "@effect/vitest"
import { Result } from "effect"
import fc from "fast-check"
import { LoaderError, LoaderErrorReason } from "../../../vmm/loader/errors.ts"
import { applyLoad, type MultibootLoad, planMultibootLoad } from "../../../vmm/loader/multiboot.ts"
import { elfImage, flatImage, readerElfSource, readerKludgeSource } from "./images.ts"

const MAGIC = 0x1badb002
const reasons = new Set<string>(LoaderErrorReason.literals)

const boundary = fc.constantFrom(
  0,
  1,
  4,
  0x1000,
  0x9000,
  0x9500,
  0xa0000,
  0x100000,
  0x101000,
  0x7ff000,
  0x7fffffff,
  0x80000000,
  0xfffff000,
  0xffffffff,
  MAGIC
)
const u32 = fc.oneof(boundary, fc.integer({ min: 0, max: 0xffffffff }))

const options = fc.record({
  ramBytes: fc.constantFrom(2 << 20, 4 << 20, 8 << 20, 64 << 20),
  cmdline: fc.string({ maxLength: 40 }),
  modules: fc.array(fc.record({ bytes: fc.uint8Array({ maxLength: 64 }), cmdline: fc.string({ maxLength: 8 }) }), {
    maxLength: 3
  })
})

/** Everything a successful plan promises (see the header). */
function checkPlan(load: MultibootLoad, ramBytes: number): void {
  const ranges = [
    ...load.writes.map((w) => [w.address, w.address + w.bytes.length] as const),
    ...load.zero.map((z) => [z.address, z.address + z.length] as const)
  ].sort((a, b) => a[0] - b[0])
  for (const [start, end] of ranges) {
    expect(start).toBeGreaterThanOrEqual(0)
    expect(end).toBeLessThanOrEqual(ramBytes)
  }
  for (let i = 1; i < ranges.length; i++) expect(ranges[i]![0]).toBeGreaterThanOrEqual(ranges[i - 1]![1])
  expect(load.kernel.segments.some((s) => load.entry >= s.address && load.entry < s.address + s.fileBytes)).toBe(true)
  expect(load.registers.eip).toBe(load.entry)
  expect(load.registers.eax).toBe(0x2badb002)
  expect(load.registers.ebx).toBe(load.info.address)
  for (const m of load.modules) expect(m.start % 4096).toBe(0)
  let written = 0
  applyLoad(load, (address, bytes) => {
    expect(address + bytes.length).toBeLessThanOrEqual(ramBytes)
    written += bytes.length
  })
  expect(written).toBe(ranges.reduce((n, [start, end]) => n + end - start, 0))
}

/** Plan, and check the outcome is one of the two allowed ones. */
function planNeverThrows(image: Uint8Array, opts: Parameters<typeof planMultibootLoad>[1]): "ok" | string {
  const result = planMultibootLoad(image, opts)
  if (Result.isSuccess(result)) {
    checkPlan(result.success, opts.ramBytes)
    return "ok"
  }
  const e = result.failure
  expect(e).toBeInstanceOf(LoaderError)
  expect(reasons.has(e.reason)).toBe(true)
  expect(e.message.startsWith(`${e.reason}: `)).toBe(true)
  return e.reason
}

const elf = () => elfImage(readerElfSource(), { text: 0x100000 }).bytes
const flat = () => flatImage(readerKludgeSource()).bytes

/** Offsets worth hitting: the ELF header and program headers, the Multiboot header, or anywhere. */
const offsetIn = (size: number, hot: ReadonlyArray<readonly [number, number]>) =>
  fc.oneof(
    { weight: 3, arbitrary: fc.constantFrom(...hot).chain(([lo, hi]) => fc.integer({ min: lo, max: hi - 1 })) },
    { weight: 1, arbitrary: fc.integer({ min: 0, max: size - 1 }) }
  )

const mutation = (size: number, hot: ReadonlyArray<readonly [number, number]>) =>
  fc.oneof(
    fc.record({ kind: fc.constant("byte" as const), at: offsetIn(size, hot), value: fc.integer({ min: 0, max: 255 }) }),
    fc.record({ kind: fc.constant("word" as const), at: offsetIn(size - 4, hot).map((o) => o & ~3), value: u32 })
  )

const mutated = (base: Uint8Array, headerAt: number, hot: ReadonlyArray<readonly [number, number]>) =>
  fc
    .record({
      edits: fc.array(mutation(base.length, hot), { minLength: 1, maxLength: 6 }),
      fixChecksum: fc.boolean(),
      cut: fc.oneof(
        { weight: 3, arbitrary: fc.constant(null) },
        { weight: 1, arbitrary: fc.integer({ min: 0, max: base.length }) }
      )
    })
    .map(({ edits, fixChecksum, cut }) => {
      const image = base.slice()
      const dv = new DataView(image.buffer)
      for (const e of edits) {
        if (e.kind === "byte") image[e.at] = e.value
        else dv.setUint32(e.at, e.value, true)
      }
      if (fixChecksum && dv.getUint32(headerAt, true) === MAGIC) {
        const flags = dv.getUint32(headerAt + 4, true)
        dv.setUint32(headerAt + 8, (2 ** 32 - ((MAGIC + flags) % 2 ** 32)) % 2 ** 32, true)
      }
      return cut === null ? image : image.subarray(0, cut)
    })

describe("the loader never throws", () => {
  it("on mutated and truncated ELF images", () => {
    const base = elf()
    const outcomes = new Map<string, number>()
    fc.assert(
      fc.property(
        mutated(base, 0x1000, [
          [0, 52],
          [52, 52 + 3 * 32],
          [0x1000, 0x1020]
        ]),
        options,
        (image, opts) => {
          const outcome = planNeverThrows(image, opts)
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
      fc.property(mutated(base, 0, [[0, 32]]), options, (image, opts) => {
        outcomes.add(planNeverThrows(image, opts))
      }),
      { seed: 0xa0a7, numRuns: 600 }
    )
    expect(outcomes.has("ok")).toBe(true)
    expect(outcomes.size).toBeGreaterThanOrEqual(6)
  })

  it("on byte soup around a valid header with random flags and address fields", () => {
    const near = (base: number, span: number) => fc.integer({ min: 0, max: span }).map((k) => (base + k) % 2 ** 32)
    const soup = fc
      .record({
        before: fc.integer({ min: 0, max: 2100 }).map((n) => n * 4),
        flags: fc.oneof({ weight: 4, arbitrary: fc.constantFrom(0x10000, 0x10001, 0x10002, 0x10003) }, u32),
        loadAddr: u32,
        noise: fc.uint8Array({ maxLength: 512 }),
        tail: fc.integer({ min: 0, max: 64 })
      })
      .chain((r) => {
        const size = r.before + 32 + r.tail
        // mostly consistent address fields (the header where the text says), sometimes anything
        const headerAddr = fc.oneof({ weight: 3, arbitrary: fc.constant((r.loadAddr + r.before) % 2 ** 32) }, u32)
        const loadEnd = fc.oneof(fc.constant(0), near(r.loadAddr, size + 16), u32)
        return fc
          .record({
            headerAddr,
            loadEnd,
            bssSpan: fc.oneof(fc.constant(-1), fc.nat(0x20000), u32),
            entry: fc.oneof(near(r.loadAddr, size), u32)
          })
          .map((f) => ({ ...r, ...f, size }))
      })
      .map(({ before, flags, loadAddr, headerAddr, loadEnd, bssSpan, entry, noise, size }) => {
        const image = new Uint8Array(size)
        for (let i = 0; i < image.length; i++) image[i] = noise.length > 0 ? noise[i % noise.length]! : 0
        const dv = new DataView(image.buffer)
        const bssEnd = bssSpan < 0 ? 0 : ((loadEnd === 0 ? loadAddr + size - before : loadEnd) + bssSpan) % 2 ** 32
        const words = [
          MAGIC,
          flags,
          (2 ** 32 - ((MAGIC + flags) % 2 ** 32)) % 2 ** 32,
          headerAddr,
          loadAddr,
          loadEnd,
          bssEnd,
          entry
        ]
        words.forEach((w, i) => {
          dv.setUint32(before + i * 4, w >>> 0, true)
        })
        return image
      })
    const outcomes = new Set<string>()
    fc.assert(
      fc.property(soup, options, (image, opts) => {
        outcomes.add(planNeverThrows(image, opts))
      }),
      { seed: 0x5009, numRuns: 800 }
    )
    expect(outcomes.has("ok")).toBe(true)
    expect(outcomes.size).toBeGreaterThanOrEqual(7)
  })
})
