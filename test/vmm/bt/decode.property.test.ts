/**
 * The translator's length decoder (vmm/engines/bt/decode.ts
 * `instructionLength`) against the disassembler (hw/cpu/disasm.ts), which
 * decodes from the same opcode table: on random bytes, wherever the
 * disassembler decodes an instruction the lengths agree, and where the
 * length decoder gives up the disassembler does too. A wrong length would
 * make the translator copy a different instruction stream than the guest's.
 */
import { describe, expect, it } from "@effect/vitest"
import fc from "fast-check"
import { disassemble } from "../../../hw/cpu/disasm.ts"
import { instructionLength } from "../../../vmm/engines/bt/decode.ts"

const prefixes = [0x66, 0x67, 0xf2, 0xf3, 0xf0, 0x26, 0x2e, 0x36, 0x3e, 0x64, 0x65]

/** Random bytes, often starting with prefixes or the 0F escape. */
const instructionBytes = fc
  .tuple(
    fc.array(fc.constantFrom(...prefixes), { maxLength: 3 }),
    fc.boolean(),
    fc.uint8Array({ minLength: 1, maxLength: 14 })
  )
  .map(([pre, twoByte, rest]) => Uint8Array.from([...pre, ...(twoByte ? [0x0f] : []), ...rest]).subarray(0, 15))

describe("bt length decoder", () => {
  it("agrees with the disassembler on every instruction the disassembler decodes", () => {
    fc.assert(
      fc.property(instructionBytes, (bytes) => {
        const d = disassemble(bytes, 0, 0, true)
        const length = instructionLength(bytes)
        if (d.text.startsWith("db ")) return true // undefined, cut off, or a register form where memory is required
        expect(length, d.text).toBe(d.length)
        return true
      }),
      { numRuns: 20_000, seed: 0xdec0de }
    )
  })

  it("gives up (-1) only where the disassembler does", () => {
    fc.assert(
      fc.property(instructionBytes, (bytes) => {
        if (instructionLength(bytes) >= 0) return true
        expect(disassemble(bytes, 0, 0, true).text, Array.from(bytes, (b) => b.toString(16)).join(" ")).toMatch(/^db /)
        return true
      }),
      { numRuns: 20_000, seed: 0xdec0df }
    )
  })
})
