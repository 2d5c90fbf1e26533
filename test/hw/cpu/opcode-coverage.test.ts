/**
 * The interpreter's dispatch tables and the opcode table the disassembler
 * uses (hw/cpu/opcodes.ts, SDM Vol. 2 appendix A) agree on which opcodes
 * exist: every opcode the table defines has a handler, and every handler
 * belongs to an opcode the table defines.
 */
import { describe, expect, it } from "@effect/vitest"
import { oneByte, twoByte } from "../../../hw/cpu/opcodes.ts"
import { isInvalid, oneByteOps, twoByteOps } from "../../../hw/cpu/ops/table.ts"

const hex = (n: number) => n.toString(16).padStart(2, "0")

describe("opcode table vs handlers", () => {
  it("one-byte map: defined <=> handled", () => {
    const mismatches: Array<string> = []
    for (let op = 0; op < 256; op++) {
      const defined = oneByte[op] !== undefined
      const handled = !isInvalid(oneByteOps[op]!)
      if (defined !== handled)
        mismatches.push(
          `${hex(op)}: table ${defined ? "defines" : "lacks"} it, handler ${handled ? "exists" : "missing"}`
        )
    }
    expect(mismatches).toEqual([])
  })

  it("two-byte map (0F xx): defined <=> handled", () => {
    const mismatches: Array<string> = []
    for (let op = 0; op < 256; op++) {
      const defined = twoByte[op] !== undefined
      const handled = !isInvalid(twoByteOps[op]!)
      if (defined !== handled)
        mismatches.push(
          `0f ${hex(op)}: table ${defined ? "defines" : "lacks"} it, handler ${handled ? "exists" : "missing"}`
        )
    }
    expect(mismatches).toEqual([])
  })
})
