/**
 * Fuzz suite `lifecycle` (issue 8 "Memory manager and scheduler"): random
 * sequences of create / pause / resume / reset / power-off / destroy across
 * up to four VM slots on one small host (12 MiB of RAM, 2 pCPUs), with
 * virtual time running in between. Guests are tiny programs chosen per VM:
 * spin, halt, print to COM1 without end, touch every page of RAM (a guest
 * that can outgrow what the host has left), reset itself through port 0x92,
 * or leave through isa-debug-exit. Reservations make admission control
 * refuse some creations.
 *
 * After every step:
 *   - the memory manager's own invariants (kernel/memory/memory-manager.ts
 *     checkInvariants: one owner per frame, records match the allocator,
 *     limits, reservations honourable);
 *   - frames add up: kernel + every pool's + free = usable;
 *   - exactly the live VMs have a pool and a scheduler VM, each with one
 *     world per vCPU; a refused creation leaves neither behind;
 *   - scheduler accounting adds up (kernel/sched/types.ts identities): per
 *     pCPU used + idle + running = elapsed, per world the columns sum to its
 *     lifetime;
 *   - a paused VM and an ended VM execute nothing while time runs, and are
 *     charged nothing beyond a slice already in flight when they stopped;
 * and once every VM is destroyed, the free frames are back to what the host
 * started with and the scheduler has no VM left.
 */
import { Effect, Exit, Scope } from "effect"
import fc from "fast-check"
import { decodeMachineConfig, defaultMachineConfig } from "../../../hw/machine/config.ts"
import { Machine } from "../../../hw/machine/machine.ts"
import { Kernel } from "../../../kernel/boot.ts"
import { MachineMemory } from "../../../kernel/memory/service.ts"
import { Worlds } from "../../../kernel/sched/runtime.ts"
import type { SchedulerStats } from "../../../kernel/sched/types.ts"
import { defaultVmConfig } from "../../../vmm/config.ts"
import { flat32Payload, realModePayload } from "../../../vmm/loader/raw-payload.ts"
import { addStandardDevices } from "../../../vmm/platform/standard.ts"
import { type BootPayload, createVm, type VirtualMachine, VmError } from "../../../vmm/vm.ts"
import { type FuzzSuite, renderSteps } from "../campaign.ts"

const SLOTS = 4
const HOST_RAM_MIB = 12

export const guestPrograms = ["spin", "halt", "print", "touch", "reboot", "exit"] as const
export type GuestProgram = (typeof guestPrograms)[number]

export type LifecycleOp =
  | {
      readonly op: "create"
      readonly slot: number
      readonly program: GuestProgram
      readonly memoryMiB: number
      readonly reservationMiB: number
      readonly vcpus: number
    }
  | { readonly op: "pause" | "resume" | "reset" | "powerOff" | "destroy"; readonly slot: number }
  | { readonly op: "run"; readonly us: number }

const real = realModePayload

const le32 = (n: number) => [n & 0xff, (n >>> 8) & 0xff, (n >>> 16) & 0xff, n >>> 24]

/** Flat 32-bit code at 1 MiB that writes one byte into every page from 1 MiB + 4 KiB to the end of RAM, then halts. */
const touchEveryPage = (ramBytes: number): BootPayload =>
  flat32Payload([
    ...[0xb8, ...le32(0x101000)], // mov eax, 0x101000
    ...[0xc6, 0x00, 0x01], // l: mov byte [eax], 1
    ...[0x05, ...le32(0x1000)], // add eax, 0x1000
    ...[0x3d, ...le32(ramBytes)], // cmp eax, ramBytes
    ...[0x72, 0xf1], // jb l
    ...[0xf4, 0xeb, 0xfd] // hlt; jmp $-1
  ])

const program = (name: GuestProgram, memoryMiB: number): BootPayload => {
  switch (name) {
    case "spin":
      return real([0xeb, 0xfe]) // jmp $
    case "halt":
      return real([0xfa, 0xf4, 0xeb, 0xfd]) // cli; hlt; jmp $-1
    case "print":
      return real([0xba, 0xf8, 0x03, 0xb0, 0x78, 0xee, 0xeb, 0xfb]) // mov dx, 0x3f8; l: mov al, 'x'; out dx, al; jmp l
    case "touch":
      return touchEveryPage(memoryMiB << 20)
    case "reboot":
      return real([0xb0, 0x01, 0xe6, 0x92, 0xeb, 0xfe]) // mov al, 1; out 0x92, al (fast reset); jmp $
    case "exit":
      return real([0xb0, 0x07, 0xe6, 0xf4, 0xf4]) // mov al, 7; out 0xf4, al (isa-debug-exit); hlt
  }
}

const slot = fc.nat(SLOTS - 1)
const opArb: fc.Arbitrary<LifecycleOp> = fc.oneof(
  {
    weight: 4,
    arbitrary: fc
      .record({
        slot,
        program: fc.constantFrom(...guestPrograms),
        memoryMiB: fc.integer({ min: 2, max: 6 }),
        reservationPercent: fc.constantFrom(0, 0, 50, 100),
        vcpus: fc.integer({ min: 1, max: 2 })
      })
      .map(({ reservationPercent, ...r }) => ({
        op: "create" as const,
        ...r,
        reservationMiB: Math.floor((r.memoryMiB * reservationPercent) / 100)
      }))
  },
  { weight: 2, arbitrary: fc.record({ op: fc.constantFrom("pause" as const, "resume" as const), slot }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constantFrom("reset" as const, "powerOff" as const), slot }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant("destroy" as const), slot }) },
  { weight: 4, arbitrary: fc.record({ op: fc.constant("run" as const), us: fc.integer({ min: 10, max: 3000 }) }) }
)

interface Live {
  readonly vm: VirtualMachine
  readonly scope: Scope.Closeable
  readonly vcpus: number
}

const checkAccounting = (stats: SchedulerStats): Array<string> => {
  const problems: Array<string> = []
  for (const p of stats.pcpus)
    if (p.used + p.idle + p.running !== p.elapsed)
      problems.push(`pCPU ${p.id}: used ${p.used} + idle ${p.idle} + running ${p.running} != elapsed ${p.elapsed}`)
  for (const w of stats.worlds) {
    const sum = w.used + w.ready + w.halted + w.costop + w.limited + w.running
    if (sum !== w.lifetime)
      problems.push(`world ${w.id}: its time columns sum to ${sum}, its lifetime is ${w.lifetime}`)
  }
  return problems
}

/** Run `ops` on a fresh host; throws naming the first broken invariant and the step that broke it. */
export const runLifecycle = (ops: ReadonlyArray<LifecycleOp>) => {
  const machine = new Machine(
    Effect.runSync(
      decodeMachineConfig("lifecycle host", JSON.stringify({ ...defaultMachineConfig, ramMiB: HOST_RAM_MIB }))
    )
  )
  return Effect.gen(function* () {
    const memory = yield* MachineMemory
    const worlds = yield* Worlds
    const mm = memory.managerUnsafe
    const initialFree = mm.frames.freeFrames
    const slots: Array<Live | undefined> = Array(SLOTS).fill(undefined)
    let created = 0
    /** What happened, for tests: refused creations and how each VM ended (before it was destroyed). */
    const outcome = { refused: 0, ends: new Map<string, string>() }
    const noteEnd = (vm: VirtualMachine) => outcome.ends.set(vm.name, vm.ended === undefined ? vm.state : vm.ended._tag)

    const check = (step: number, what: string) =>
      Effect.gen(function* () {
        const at = `after step ${step} (${what})`
        const problems = [...mm.checkInvariants()]
        const owned = mm.frames.owners().reduce((n, o) => n + o.frames, 0)
        if (owned + mm.frames.freeFrames !== mm.frames.usableFrames)
          problems.push(`owned ${owned} + free ${mm.frames.freeFrames} != usable ${mm.frames.usableFrames}`)
        const stats = yield* worlds.stats
        problems.push(...checkAccounting(stats))
        const liveNames = new Set(slots.flatMap((s) => (s === undefined ? [] : [s.vm.name])))
        for (const v of stats.vms) if (!liveNames.has(v.name)) problems.push(`the scheduler still has VM ${v.name}`)
        for (const owner of mm.frames.owners())
          if (owner.owner !== "kernel" && !liveNames.has(String(owner.owner)))
            problems.push(`${owner.frames} frame(s) still owned by ${String(owner.owner)}`)
        for (const s of slots) {
          if (s === undefined) continue
          if (!mm.hasPool(s.vm.name)) problems.push(`live VM ${s.vm.name} has no memory pool`)
          const v = stats.vms.find((x) => x.name === s.vm.name)
          if (v === undefined) problems.push(`live VM ${s.vm.name} is not in the scheduler`)
          else if (v.worlds.length !== s.vcpus)
            problems.push(`VM ${s.vm.name} has ${v.worlds.length} worlds for ${s.vcpus} vCPUs`)
        }
        if (problems.length > 0) throw new Error(`${at}:\n  ${problems.join("\n  ")}`)
      })

    for (const [step, op] of ops.entries()) {
      const what = JSON.stringify(op)
      if (op.op === "run") {
        // VMs that must not run during this step: paused or ended ones
        const still = slots.flatMap((s) =>
          s !== undefined && (s.vm.state === "paused" || s.vm.ended !== undefined)
            ? [{ s, instructions: s.vm.instructions }]
            : []
        )
        const before = new Map((yield* worlds.stats).worlds.map((w) => [w.id, w]))
        yield* worlds.runFor(op.us * 1000)
        const after = yield* worlds.stats
        for (const { s, instructions } of still) {
          if (s.vm.instructions !== instructions)
            throw new Error(
              `step ${step} (${what}): ${s.vm.state} VM ${s.vm.name} executed ${s.vm.instructions - instructions} instruction(s)`
            )
          for (const id of s.vm.worlds) {
            const w = after.worlds.find((x) => x.id === id)
            const was = before.get(id)
            // a slice in flight when the VM paused is charged when it ends (its instructions ran before the
            // pause); any later dispatch notices the pause and charges nothing
            if (w !== undefined && was !== undefined && was.state !== "running" && w.used !== was.used)
              throw new Error(`step ${step} (${what}): ${s.vm.state} VM ${s.vm.name}'s world ${id} was charged CPU`)
          }
        }
      } else if (op.op === "create") {
        if (slots[op.slot] !== undefined) continue
        const name = `vm${created++}`
        const base = defaultVmConfig(name, "inline")
        const config = {
          ...base,
          memoryMiB: op.memoryMiB,
          vcpus: op.vcpus,
          memory: { ...base.memory, reservationMiB: op.reservationMiB }
        }
        const scope = yield* Scope.make()
        const result = yield* Effect.result(
          Scope.provide(scope)(createVm(config, program(op.program, op.memoryMiB), { console: () => {} }))
        )
        if (result._tag === "Failure") {
          yield* Scope.close(scope, Exit.void)
          if (!(result.failure instanceof VmError))
            throw new Error(`step ${step} (${what}): creation failed without a VmError: ${String(result.failure)}`)
          if (mm.hasPool(name)) throw new Error(`step ${step} (${what}): a refused VM kept its memory pool`)
          outcome.refused++
        } else {
          addStandardDevices(result.success)
          slots[op.slot] = { vm: result.success, scope, vcpus: op.vcpus }
        }
      } else {
        const s = slots[op.slot]
        if (s === undefined) continue
        if (op.op === "destroy") {
          noteEnd(s.vm)
          yield* Scope.close(s.scope, Exit.void)
          slots[op.slot] = undefined
          if (mm.hasPool(s.vm.name)) throw new Error(`step ${step} (${what}): destroyed VM ${s.vm.name} kept its pool`)
        } else s.vm[op.op]()
      }
      yield* check(step, what)
    }

    for (const [i, s] of slots.entries()) {
      if (s === undefined) continue
      noteEnd(s.vm)
      yield* Scope.close(s.scope, Exit.void)
      slots[i] = undefined
    }
    yield* check(ops.length, "destroy every VM")
    if (mm.frames.freeFrames !== initialFree)
      throw new Error(`leak: ${initialFree - mm.frames.freeFrames} frame(s) not returned after every VM was destroyed`)
    const stats = yield* worlds.stats
    if (stats.vms.length !== 0 || stats.worlds.some((w) => w.state !== "exited"))
      throw new Error("the scheduler still holds worlds after every VM was destroyed")
    return outcome
  }).pipe(Effect.provide(Kernel.boot(machine)), Effect.scoped)
}

export const lifecycleSuite: FuzzSuite<ReadonlyArray<LifecycleOp>> = {
  name: "lifecycle",
  description:
    "random create/pause/resume/reset/power-off/destroy sequences across VMs: frame ownership, no leaks, scheduler accounting",
  arbitrary: fc.array(opArb, { minLength: 1, maxLength: 30 }),
  ciRuns: 40,
  check: async (ops) => {
    await Effect.runPromise(runLifecycle(ops))
  },
  render: (ops) => renderSteps(ops, "op")
}
