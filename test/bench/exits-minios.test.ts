/**
 * `bench exits` and `bench minios` (scripts/bench/exits.ts, minios.ts): the
 * exit guests are exactly the loops they claim (disassembled), one loop
 * iteration is one VM exit of the claimed kind, simulated cycles per exit
 * follow the cost profile, and minios reports its own counts (the same
 * numbers on QEMU: the differential test compares its whole output). No
 * timing is asserted: speed claims live in `fibervisor bench`.
 */

import { readFileSync } from "node:fs"
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { disassemble } from "../../hw/cpu/disasm.ts"
import { costProfiles } from "../../hw/machine/cost-profiles.ts"
import { cpuidGuest, type ExitGuest, ioGuest, runExitGuest } from "../../scripts/bench/exits.ts"
import { MINIOS_IMAGE, parseMiniosSummary, runMinios } from "../../scripts/bench/minios.ts"

const listing = (guest: ExitGuest, iterations: number): Array<string> => {
  const bytes = Uint8Array.from(guest.bytes(iterations))
  const texts: Array<string> = []
  for (let at = 0; at < bytes.length; ) {
    const d = disassemble(bytes, at, 0x100000 + at, true)
    texts.push(d.text)
    at += d.length
  }
  return texts
}

describe("bench exits", () => {
  it("the guests are an OUT loop to COM1's scratch register and a CPUID loop, each ending with a debug exit", () => {
    expect(listing(ioGuest, 5)).toEqual([
      "mov ecx, 0x5",
      "mov dx, 0x3ff",
      "xor eax, eax",
      "out dx, al",
      "dec ecx",
      "jnz 0x10000b",
      "out 0xf4, al",
      "hlt"
    ])
    expect(listing(cpuidGuest, 5)).toEqual([
      "mov esi, 0x5",
      "xor eax, eax",
      "cpuid",
      "dec esi",
      "jnz 0x100005",
      "xor eax, eax",
      "out 0xf4, al",
      "hlt"
    ])
  })

  it.effect("one iteration is one exit; simulated cycles per exit are the loop plus the profile's entry and exit", () =>
    Effect.gen(function* () {
      for (const guest of [ioGuest, cpuidGuest]) {
        for (const profile of ["vtx-2006", "modern"] as const) {
          const run = yield* runExitGuest(guest, 2000, profile)
          expect(run.ended).toBe("debug-exit 0")
          expect(run.loopExits).toBe(guest === ioGuest ? 2001 : 2000) // the I/O guest's debug exit is an OUT too
          const perExit = run.simulatedCycles / run.exits
          const p = costProfiles[profile]
          expect(perExit).toBeGreaterThan(p.vmEntry + p.vmExit)
          expect(perExit).toBeLessThan(p.vmEntry + p.vmExit + 200)
        }
      }
    })
  )
})

describe("bench minios", () => {
  it("reads the guest's summary line", () => {
    expect(
      parseMiniosSummary("minios: 6 processes, 17 page faults, 51 system calls, all exited correctly\r\n")
    ).toEqual({ processes: 6, pageFaults: 17, syscalls: 51 })
    expect(parseMiniosSummary("minios: no runnable process\r\n")).toBeUndefined()
  })

  it.effect(
    "minios creates 6 processes, serves 17 demand faults and takes 51 system calls; rates are per simulated second",
    () =>
      Effect.gen(function* () {
        const row = yield* runMinios(new Uint8Array(readFileSync(MINIOS_IMAGE)), "hw", "modern")
        expect([row.processes, row.pageFaults, row.syscalls]).toEqual([6, 17, 51])
        expect(row.simulatedNs).toBeGreaterThan(0)
        expect(row.syscallsPerSecond).toBeCloseTo(51 / (row.simulatedNs / 1e9), 6)
      })
  )
})
