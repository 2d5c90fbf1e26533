/**
 * Fuzz suite `pv-isolation` (issue 11): a hostile *paravirtualized* guest
 * next to the four victims of suite `isolation`. Its program is a random
 * mix of hypercalls (every implemented number and random ones, with
 * arguments aimed at its own random data page, at the builder's start-of-day
 * region -- start_info, shared_info, the console and xenstore rings, the
 * grant table, the page tables -- or anywhere), event-channel sends to the
 * console, xenstore and random ports, stores into that region and anywhere,
 * INT n and raw random bytes, run at ring 1 in `pv` mode, sometimes with a
 * disk (so its block back end sees the garbage too). A trap table and the
 * event callback send every exception and event to a handler that resumes
 * at the next step, so a fault does not end the program. The property: the
 * hypervisor never throws, every victim ends bit-identical to the baseline,
 * and the same program run twice ends in the same host state hash.
 */

import { Result } from "effect"
import fc from "fast-check"
import { planXenPvLoad } from "../../../vmm/loader/xen-pv.ts"
import { memoryBlockStore } from "../../../vmm/virtio/blk.ts"
import type { BootPayload, VirtualMachine } from "../../../vmm/vm.ts"
import type { FuzzSuite } from "../campaign.ts"
import { PV_ENTRY, PV_IMAGE_BASE, pvElf } from "../pv/image.ts"
import { checkVictims } from "./isolation.ts"

/** The program's own page of random bytes, and a scratch word in it for by-reference arguments. */
const DATA = PV_IMAGE_BASE + 0x3000
const SCRATCH = DATA + 0xff0
/** Where the domain builder puts start_info, shared_info, the rings, grant table and page tables (16 MiB VM). */
const START_OF_DAY = PV_IMAGE_BASE + 0x4000
const START_OF_DAY_END = START_OF_DAY + 0x10000
/**
 * The fixed part of the code region: a trap table sending every exception,
 * INT 0x80 and the event callback to one handler, which resets the stack
 * and resumes at the step after the one that trapped (each step first
 * stores where that is), so one fault does not end the program.
 */
const TRAPS = PV_IMAGE_BASE + 0x2c00
const HANDLER = PV_IMAGE_BASE + 0x2e00
const HANDLER_STACK = PV_IMAGE_BASE + 0x2ff0
const RESUME = PV_IMAGE_BASE + 0x2ffc
const STEPS_END = TRAPS
const FLAT_RING1_CS = 0xe019
const IMPLEMENTED = [0, 1, 3, 4, 12, 14, 15, 17, 18, 20, 23, 24, 26, 29, 32]

export type PvStep =
  | { readonly kind: "hypercall"; readonly nr: number; readonly args: ReadonlyArray<number> }
  | { readonly kind: "send"; readonly port: number }
  | { readonly kind: "store"; readonly address: number; readonly value: number }
  | { readonly kind: "int"; readonly vector: number }
  | { readonly kind: "bytes"; readonly bytes: ReadonlyArray<number> }

export interface PvProgram {
  readonly steps: ReadonlyArray<PvStep>
  readonly data: Uint8Array
  readonly disk: boolean
}

const u32 = fc.integer({ min: 0, max: 0xffffffff })
const argument = fc.oneof(
  u32,
  fc.integer({ min: 0, max: 255 }).map((k) => DATA + k * 16),
  fc.integer({ min: START_OF_DAY, max: START_OF_DAY_END - 1 }),
  fc.integer({ min: 0, max: 8 }),
  fc.constant(0x7ff0)
)
const address = fc.oneof(
  fc.integer({ min: START_OF_DAY, max: START_OF_DAY_END - 4 }),
  fc.integer({ min: DATA, max: DATA + 0xffc }),
  u32
)

const step: fc.Arbitrary<PvStep> = fc.oneof(
  {
    weight: 6,
    arbitrary: fc
      .tuple(
        fc.oneof({ weight: 4, arbitrary: fc.constantFrom(...IMPLEMENTED) }, fc.integer({ min: 0, max: 255 })),
        fc.array(argument, { minLength: 5, maxLength: 5 })
      )
      .map(([nr, args]): PvStep => ({ kind: "hypercall", nr, args }))
  },
  { weight: 2, arbitrary: fc.oneof(fc.constantFrom(1, 2, 3, 4), u32).map((port): PvStep => ({ kind: "send", port })) },
  { weight: 3, arbitrary: fc.tuple(address, u32).map(([a, value]): PvStep => ({ kind: "store", address: a, value })) },
  { weight: 1, arbitrary: fc.integer({ min: 0, max: 255 }).map((vector): PvStep => ({ kind: "int", vector })) },
  {
    weight: 1,
    arbitrary: fc
      .array(fc.integer({ min: 0, max: 255 }), { minLength: 1, maxLength: 16 })
      .map((bytes): PvStep => ({ kind: "bytes", bytes }))
  }
)

export const pvProgram: fc.Arbitrary<PvProgram> = fc.record({
  steps: fc.array(step, { minLength: 1, maxLength: 40 }),
  data: fc.uint8Array({ minLength: 4096, maxLength: 4096 }),
  disk: fc.boolean()
})

const le = (n: number) => [n & 0xff, (n >>> 8) & 0xff, (n >>> 16) & 0xff, n >>> 24]

const encode = (s: PvStep): Array<number> => {
  switch (s.kind) {
    case "hypercall": {
      // mov eax, nr; mov ebx/ecx/edx/esi/edi, args; int 0x82
      const [b, c, d, si, di] = s.args
      return [
        0xb8,
        ...le(s.nr),
        0xbb,
        ...le(b!),
        0xb9,
        ...le(c!),
        0xba,
        ...le(d!),
        0xbe,
        ...le(si!),
        0xbf,
        ...le(di!),
        0xcd,
        0x82
      ]
    }
    case "send":
      // mov dword [SCRATCH], port; mov ebx, EVTCHNOP_send; mov ecx, SCRATCH; mov eax, event_channel_op; int 0x82
      return [
        0xc7,
        0x05,
        ...le(SCRATCH),
        ...le(s.port),
        0xbb,
        ...le(4),
        0xb9,
        ...le(SCRATCH),
        0xb8,
        ...le(32),
        0xcd,
        0x82
      ]
    case "store":
      return [0xc7, 0x05, ...le(s.address), ...le(s.value)]
    case "int":
      return [0xcd, s.vector]
    case "bytes":
      return [...s.bytes]
  }
}

/** The hostile PV domain: hypercall page, prelude, the program (then `jmp $`), trap table and handler, data page. */
export const pvProgramPayload = (program: PvProgram): BootPayload => {
  // prelude: set_trap_table(TRAPS); set_callbacks(FLAT_RING1_CS, HANDLER, FLAT_RING1_CS, HANDLER)
  const code: Array<number> = [
    ...[0xb8, ...le(0), 0xbb, ...le(TRAPS), 0xcd, 0x82],
    ...[
      0xb8,
      ...le(4),
      0xbb,
      ...le(FLAT_RING1_CS),
      0xb9,
      ...le(HANDLER),
      0xba,
      ...le(FLAT_RING1_CS),
      0xbe,
      ...le(HANDLER)
    ],
    ...[0xcd, 0x82]
  ]
  for (const s of program.steps) {
    const body = encode(s)
    // mov dword [RESUME], <the next step>; then the step
    const next = PV_ENTRY + code.length + 10 + body.length
    if (next + 2 > STEPS_END) break
    code.push(0xc7, 0x05, ...le(RESUME), ...le(next), ...body)
  }
  code.push(0xeb, 0xfe)
  const image = new Uint8Array(0x4000)
  image.set(code, PV_ENTRY - PV_IMAGE_BASE)
  const traps = [...Array.from({ length: 32 }, (_, v) => v), 0x80].flatMap((v) => [
    v,
    3,
    ...le(FLAT_RING1_CS).slice(0, 2),
    ...le(HANDLER)
  ])
  image.set(traps, TRAPS - PV_IMAGE_BASE)
  // mov esp, HANDLER_STACK; jmp dword [RESUME]
  image.set([0xbc, ...le(HANDLER_STACK), 0xff, 0x25, ...le(RESUME)], HANDLER - PV_IMAGE_BASE)
  image.set(program.data, DATA - PV_IMAGE_BASE)
  const planned = planXenPvLoad(pvElf(image), { ramBytes: 16 * 1024 * 1024, cmdline: "" })
  if (Result.isFailure(planned))
    throw new Error(`pv-isolation: the domain builder refused the program: ${planned.failure.message}`)
  return planned.success
}

const setup = (program: PvProgram) => (vm: VirtualMachine) => {
  if (program.disk) vm.pvDomain?.attachDisk(memoryBlockStore(64))
}

export const pvIsolationSuite: FuzzSuite<PvProgram> = {
  name: "pv-isolation",
  description:
    "random hypercalls, event sends and stores from a PV guest must not change four victim VMs or hurt the host, deterministically",
  arbitrary: pvProgram,
  ciRuns: 10,
  check: async (program) => {
    const hash = await checkVictims(pvProgramPayload(program), "pv", setup(program))
    const again = await checkVictims(pvProgramPayload(program), "pv", setup(program))
    if (again !== hash)
      throw new Error(`the host's state hash differs between two identical pv runs: ${hash} vs ${again}`)
  },
  render: (program) =>
    [
      `a PV domain${program.disk ? " with a disk" : ""}, ${program.steps.length} steps at ring 1:`,
      ...program.steps.map((s) => {
        const hex = (n: number) => `0x${(n >>> 0).toString(16)}`
        switch (s.kind) {
          case "hypercall":
            return `  hypercall ${s.nr}(${s.args.map(hex).join(", ")})`
          case "send":
            return `  EVTCHNOP_send(port ${s.port})`
          case "store":
            return `  mov dword [${hex(s.address)}], ${hex(s.value)}`
          case "int":
            return `  int ${hex(s.vector)}`
          default:
            return `  db ${s.bytes.map(hex).join(", ")}`
        }
      })
    ].join("\n")
}
