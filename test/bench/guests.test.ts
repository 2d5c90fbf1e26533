/** The bench guests' hand-encoded bytes are exactly their listed source (disassembled), so a typo cannot skew MIPS. */
import { describe, expect, it } from "@effect/vitest"
import { disassemble } from "../../hw/cpu/disasm.ts"
import { flatProtectedCpu, runGuestOnce } from "../../scripts/bench/cpu.ts"
import { computeGuests, GUEST_CODE } from "../../scripts/bench/guests.ts"

describe("bench compute guests", () => {
  for (const guest of computeGuests) {
    it(`${guest.name}: bytes disassemble to the source listing`, () => {
      const bytes = Uint8Array.from(guest.bytes)
      const texts: Array<string> = []
      for (let at = 0; at < bytes.length; ) {
        const d = disassemble(bytes, at, GUEST_CODE + at, true)
        texts.push(d.text)
        at += d.length
      }
      expect(texts).toEqual(guest.source)
    })

    it(`${guest.name}: retires exactly perIteration * N + 1 instructions and halts`, () => {
      const cpu = flatProtectedCpu(4 << 20)
      const r = runGuestOnce(cpu, guest, 1000)
      expect(r.instructions).toBe(guest.perIteration * 1000 + 1)
    })
  }
})
