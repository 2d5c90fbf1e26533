/**
 * Fuzz suite `isolation` (issues 6 and 8): random guest programs (random
 * bytes in real mode or flat 32-bit protected mode, or structured sequences
 * of port writes and stores to random, mostly out-of-RAM, addresses) run in
 * one VM for 5 ms of virtual time next to four victim VMs on the same
 * 2-pCPU host. The property: the hypervisor never throws, and every victim
 * ends with its own console output, guest memory and device state
 * (UART, PIC, PIT, LAPIC) bit-identical to a baseline run in which the
 * hostile VM only halts. Suite `determinism` runs the same host twice per
 * program and requires equal host state hashes. Counterexamples render as a
 * disassembly.
 */
import { Effect } from "effect"
import fc from "fast-check"
import { disassembleAll } from "../../../hw/cpu/disasm.ts"
import { decodeMachineConfig, defaultMachineConfig } from "../../../hw/machine/config.ts"
import { Machine } from "../../../hw/machine/machine.ts"
import { Kernel } from "../../../kernel/boot.ts"
import { Worlds } from "../../../kernel/sched/runtime.ts"
import { defaultVmConfig, type ExecutionMode } from "../../../vmm/config.ts"
import { flat32Payload, realModePayload } from "../../../vmm/loader/raw-payload.ts"
import { type BootPayload, createVm, type VirtualMachine } from "../../../vmm/vm.ts"
import type { FuzzSuite } from "../campaign.ts"

const VICTIMS = 4
type GuestMode = "real" | "flat32"
export type HostileProgram = readonly [bytes: Uint8Array, mode: GuestMode]

const payload = (bytes: Uint8Array, mode: GuestMode): BootPayload =>
  mode === "real" ? realModePayload(bytes) : flat32Payload(bytes)

/**
 * A victim (16-bit code at 0x7C00): fill 0x2000..0x2FFF with its own byte,
 * print "ok<i>" on COM1, write 0 to the debug-exit port, HLT.
 */
const victim = (i: number) =>
  payload(
    Uint8Array.of(
      ...[0x31, 0xc0, 0x8e, 0xc0], // xor ax, ax; mov es, ax
      ...[0xbf, 0x00, 0x20, 0xb9, 0x00, 0x10], // mov di, 0x2000; mov cx, 4096
      ...[0xb0, 0x40 + i, 0xf3, 0xaa], // mov al, 0x40 + i; rep stosb
      ...[0xba, 0xf8, 0x03], // mov dx, 0x3f8
      ...[0xb0, 0x6f, 0xee, 0xb0, 0x6b, 0xee, 0xb0, 0x30 + i, 0xee], // "ok<i>"
      ...[0x30, 0xc0, 0xe6, 0xf4, 0xf4] // xor al, al; out 0xf4, al; hlt
    ),
    "real"
  )

const debugPorts = (vm: VirtualMachine) =>
  [
    [
      0xf4,
      4,
      {
        name: "debug-exit",
        read: () => 0xffffffff,
        write: (_o: number, _s: number, v: number) => vm.end({ _tag: "DebugExit", code: v })
      }
    ]
  ] as const

/** Everything a victim owns that the hostile VM must not change: its console, its memory, its devices. */
const fingerprint = (vm: VirtualMachine, console: string) => {
  const memory: Array<string> = []
  for (let gfn = 0; gfn < vm.guest.ramBytes / 4096; gfn++) {
    if (vm.guest.frame(gfn, false) === undefined) continue
    const bytes = vm.guest.read(gfn * 4096, 4096)!
    let h = 0x811c9dc5
    for (const b of bytes) h = Math.imul(h ^ b, 0x01000193)
    memory.push(`${gfn}:${(h >>> 0).toString(16)}`)
  }
  return {
    console,
    ended: JSON.stringify(vm.ended),
    memory: memory.join(" "),
    uart: JSON.stringify(vm.platform.uart.snapshot()),
    pic: JSON.stringify(vm.platform.pic.snapshot()),
    pit: JSON.stringify(vm.platform.pit.snapshot()),
    lapic: JSON.stringify(vm.platform.lapics[0]!.snapshot())
  }
}
type Fingerprint = ReturnType<typeof fingerprint>

/** One host: four victims and the hostile VM, 5 ms of virtual time; the victims' fingerprints and the host's state hash. */
export const runIsolationHost = (
  hostile: BootPayload,
  hostileMode: ExecutionMode = "hw",
  /** Called with the hostile VM before anything runs (e.g. to give it a disk). */
  setup?: (vm: VirtualMachine) => void
) => {
  const machine = new Machine(
    Effect.runSync(decodeMachineConfig("fuzz host", JSON.stringify({ ...defaultMachineConfig, ramMiB: 96 })))
  )
  const consoles = new Map<string, string>()
  return Effect.gen(function* () {
    const victims: Array<VirtualMachine> = []
    for (let i = 0; i < VICTIMS; i++) {
      consoles.set(`victim${i}`, "")
      victims.push(
        yield* createVm(defaultVmConfig(`victim${i}`, "inline"), victim(i), {
          console: (b) => consoles.set(`victim${i}`, consoles.get(`victim${i}`)! + String.fromCharCode(b)),
          ports: debugPorts
        })
      )
    }
    const hostileVm = yield* createVm({ ...defaultVmConfig("hostile", "inline"), mode: hostileMode }, hostile, {
      console: () => {},
      ports: debugPorts
    })
    setup?.(hostileVm)
    // victims finish in microseconds; a hostile VM that never halts runs every cycle of the 5 ms
    yield* (yield* Worlds).runFor(5_000_000)
    return {
      victims: victims.map((v, i) => fingerprint(v, consoles.get(`victim${i}`)!)),
      /** The whole host at the end (RAM, pCPUs, devices, virtual time): hw/machine/state-hash.ts. */
      hostHash: machine.stateHash()
    }
  }).pipe(Effect.provide(Kernel.boot(machine)), Effect.scoped)
}

/** Structured hostile code: port writes to random ports and stores to random (often out-of-RAM) addresses. */
const structured = fc
  .array(
    fc.oneof(
      fc
        .tuple(fc.integer({ min: 0, max: 0xffff }), fc.integer({ min: 0, max: 255 }))
        .map(([port, v]) => [0xba, port & 0xff, port >>> 8, 0, 0, 0xb0, v, 0xee]), // mov edx, port; mov al, v; out dx, al
      fc.tuple(fc.integer({ min: 0, max: 0xffffffff }), fc.integer({ min: 0, max: 0xffffffff })).map(([addr, v]) => [
        ...[0xc7, 0x05, addr & 0xff, (addr >>> 8) & 0xff, (addr >>> 16) & 0xff, addr >>> 24],
        ...[v & 0xff, (v >>> 8) & 0xff, (v >>> 16) & 0xff, v >>> 24] // mov dword [addr], v
      ])
    ),
    { minLength: 1, maxLength: 40 }
  )
  .map((parts) => Uint8Array.from(parts.flat()))

export const hostileProgram: fc.Arbitrary<HostileProgram> = fc.oneof(
  fc.tuple(fc.uint8Array({ minLength: 1, maxLength: 256 }), fc.constantFrom<GuestMode>("real", "flat32")),
  fc.tuple(structured, fc.constant<GuestMode>("flat32"))
)

let baseline: Promise<ReadonlyArray<Fingerprint>> | undefined
/** The victims' fingerprints next to a hostile VM that only halts (computed once per process). */
export const isolationBaseline = () => {
  baseline ??= Effect.runPromise(runIsolationHost(payload(Uint8Array.of(0xf4), "real"))).then((run) => run.victims)
  return baseline
}

export const isolationSuite: FuzzSuite<HostileProgram> = {
  name: "isolation",
  description: "random code in one VM must not change four victim VMs (memory, devices, console) or hurt the host",
  arbitrary: hostileProgram,
  ciRuns: 20,
  check: async ([bytes, mode]) => {
    await checkIsolation(bytes, mode, "hw")
  },
  render: (program) => renderProgram(program)
}

/**
 * Fuzz suite `bt-isolation` (issue 10): the same property with the hostile
 * VM in `bt` mode -- random code in a deprivileged, binary-translated guest
 * kernel (ring 1 under the monitor's GDT/IDT, the monitor's region in its
 * address space, shadow page tables) must neither throw in the hypervisor
 * nor change a victim; and its run is deterministic (same host hash twice).
 */
export const btIsolationSuite: FuzzSuite<HostileProgram> = {
  name: "bt-isolation",
  description: "random code in a bt-mode VM must not change four victim VMs or hurt the host, deterministically",
  arbitrary: hostileProgram,
  ciRuns: 3,
  check: async ([bytes, mode]) => {
    const hash = await checkIsolation(bytes, mode, "bt")
    const again = (await Effect.runPromise(runIsolationHost(payload(bytes, mode), "bt"))).hostHash
    if (again !== hash)
      throw new Error(`the host's state hash differs between two identical bt runs: ${hash} vs ${again}`)
  },
  render: (program) => renderProgram(program)
}

/** Run the hostile program in `hostileMode` next to the victims; throw if a victim differs from the baseline. */
const checkIsolation = (bytes: Uint8Array, mode: GuestMode, hostileMode: ExecutionMode): Promise<string> =>
  checkVictims(payload(bytes, mode), hostileMode)

/** Run `hostile` in `hostileMode` next to the victims; throw if a victim differs from the baseline. Its host hash. */
export const checkVictims = async (
  hostile: BootPayload,
  hostileMode: ExecutionMode,
  setup?: (vm: VirtualMachine) => void
): Promise<string> => {
  const expected = await isolationBaseline()
  const run = await Effect.runPromise(runIsolationHost(hostile, hostileMode, setup))
  const got = run.victims
  for (const [i, victimPrint] of got.entries()) {
    for (const key of Object.keys(victimPrint) as Array<keyof Fingerprint>) {
      if (victimPrint[key] !== expected[i]![key])
        throw new Error(
          `victim${i}'s ${key} differs from the baseline:\n  expected ${expected[i]![key]}\n  got      ${victimPrint[key]}`
        )
    }
  }
  return run.hostHash
}

/**
 * Fuzz suite `determinism` (DESIGN.md "Virtual time"): the same host, VMs,
 * hostile program and seed, run twice, end in the same host state hash and
 * the same victim fingerprints.
 */
export const determinismSuite: FuzzSuite<HostileProgram> = {
  name: "determinism",
  description: "the same host, VMs and random hostile program run twice end in the same host state hash",
  arbitrary: hostileProgram,
  ciRuns: 5,
  check: async ([bytes, mode]) => {
    const first = await Effect.runPromise(runIsolationHost(payload(bytes, mode)))
    const second = await Effect.runPromise(runIsolationHost(payload(bytes, mode)))
    if (first.hostHash !== second.hostHash)
      throw new Error(
        `the host's state hash differs between two identical runs: ${first.hostHash} vs ${second.hostHash}`
      )
    if (JSON.stringify(first.victims) !== JSON.stringify(second.victims))
      throw new Error("the victims' fingerprints differ between two identical runs")
  },
  render: (program) => renderProgram(program)
}

const renderProgram = ([bytes, mode]: HostileProgram): string =>
  [
    `${mode === "real" ? "real mode at 0000:7C00" : "flat 32-bit protected mode at 0x100000"}, ${bytes.length} bytes:`,
    ...disassembleAll(bytes, mode === "real" ? 0x7c00 : 0x100000, mode === "flat32", 200).map((l) => `  ${l}`)
  ].join("\n")
