/**
 * `fibervisor boot`: one simulated host, one VM per image, all at once.
 * Builds the machine, boots the vmkernel, creates the VMs (each with the
 * standard PC devices), runs them in virtual time until every VM has ended
 * or `--max-time` of virtual time has passed, multiplexing their consoles,
 * then prints a summary per VM. The exit status is 0 only when every guest
 * wrote 0 to the debug-exit port.
 */
import { existsSync, statSync, writeFileSync } from "node:fs"
import { Effect, Schema } from "effect"
import { openFileDisk } from "../../hw/backends/file-disk.ts"
import { ExitReason, exitReasonName } from "../../hw/cpu/vmx/exit-reasons.ts"
import type { Vmcs } from "../../hw/cpu/vmx/vmcs.ts"
import { romDevice } from "../../hw/machine/buses.ts"
import { decodeMachineConfig, defaultMachineConfig } from "../../hw/machine/config.ts"
import { Machine } from "../../hw/machine/machine.ts"
import { Kernel } from "../../kernel/boot.ts"
import { Datastore } from "../../kernel/datastore/service.ts"
import { Worlds } from "../../kernel/sched/runtime.ts"
import { VSwitch } from "../../kernel/vswitch/vswitch.ts"
import { defaultVmConfig, type ExecutionMode } from "../../vmm/config.ts"
import { addStandardDevices } from "../../vmm/platform/standard.ts"
import { addVirtioDevices, datastoreBlockStore } from "../../vmm/platform/virtio.ts"
import { createVm, type VirtualMachine } from "../../vmm/vm.ts"
import type { PlannedGuest } from "./images.ts"

export interface BootOptions {
  /** Execution mode of VMs booted from an image (a VM config file names its own). Default hw. */
  readonly mode?: ExecutionMode
  /** `hw` mode of VMs booted from an image: false = without EPT (shadow page tables). Default true. */
  readonly ept?: boolean
  readonly memoryMiB: number
  readonly vcpus: number
  readonly pcpus: number
  readonly seed: number
  readonly maxTimeNs: number
  readonly serialFile: string | undefined
  /**
   * Host file holding the host's datastore (created and formatted when
   * missing or blank); each VM then gets a virtio-blk disk backed by the
   * datastore file `<vm>.disk` (1 MiB, created on first use, kept after).
   */
  readonly diskFile: string | undefined
  /** Give each VM a virtio-net NIC on port group "VM Network" of one vSwitch (MAC 52:54:00:00:00:<n>). */
  readonly net: boolean
  /** Write one line per VM exit (virtual time, vCPU, reason, guest EIP, qualification) through this, when set. */
  readonly traceLine: ((line: string) => void) | undefined
  /** After each 10 ms slice of virtual time: how far the run is and how many VMs still run. */
  readonly progress?: ((simulatedNs: number, running: number) => void) | undefined
  /** Write a console line for a VM (the caller prefixes and colours it). */
  readonly printLine: (vm: string, index: number, line: string) => void
}

export interface VmSummary {
  readonly vm: string
  readonly image: string
  readonly result: string
  readonly success: boolean
  readonly exitCode: number | null
  readonly simulatedMs: number
  readonly instructions: number
  readonly mips: number
  readonly exits: Record<string, number>
  /** The execution engine's counters (VirtualMachine.engineStats: shadow paging, ...); absent when it has none. */
  readonly engine?: Record<string, number>
}

const describeEnd = (vm: VirtualMachine): { result: string; success: boolean; exitCode: number | null } => {
  const end = vm.ended
  if (end === undefined) return { result: "timeout (still running at --max-time)", success: false, exitCode: null }
  switch (end._tag) {
    case "DebugExit":
      return {
        result: end.code === 0 ? "success" : `failure (exit code ${end.code})`,
        success: end.code === 0,
        exitCode: end.code
      }
    case "TripleFault":
      return { result: "triple fault", success: false, exitCode: null }
    case "Reset":
      return { result: "reset", success: false, exitCode: null }
    case "Failed":
      return { result: `failed: ${end.message}`, success: false, exitCode: null }
  }
}

/** The host's datastore disk under --disk: 64 MiB, room for 60-odd 1 MiB VM disks. */
const DATASTORE_MIB = 64
const VM_DISK_SECTORS = 2048

/** The host could not be brought up from the user's input (a --disk file the host refused). */
export class BootHostError extends Schema.TaggedError<BootHostError>()("BootHostError", { message: Schema.String }) {}

const macFor = (index: number): ReadonlyArray<number> => [0x52, 0x54, 0, 0, (index >> 8) & 0xff, (index + 1) & 0xff]

/**
 * Open the --disk file: a new or empty file becomes a fresh datastore; an
 * existing file of another size is refused before anything touches it (a
 * datastore file is always exactly DATASTORE_MIB).
 */
const openDatastoreFile = (path: string) => {
  const bytes = DATASTORE_MIB * 1024 * 1024
  const stat = existsSync(path) ? statSync(path) : undefined
  if (stat !== undefined && !stat.isFile()) throw new Error("not a regular file")
  const size = stat?.size ?? 0
  if (size !== 0 && size !== bytes)
    throw new Error(`holds ${size} bytes, not a ${DATASTORE_MIB} MiB fibervisor datastore; leaving it untouched`)
  return openFileDisk(path, bytes)
}

const hex = (n: number, digits = 8) => `0x${(n >>> 0).toString(16).padStart(digits, "0")}`

/** One --trace line: when (virtual ms), which VM and vCPU, why (SDM 3C appendix C), where, and the exit's details. */
const describeExit = (vm: VirtualMachine, vcpu: number, vmcs: Vmcs): string => {
  const exit = vmcs.exit
  const details = [`qual=${hex(exit.qualification)}`]
  const base = exit.reason & 0xffff
  if (base === ExitReason.EptViolation || base === ExitReason.EptMisconfig)
    details.push(`gpa=${hex(exit.guestPhysicalAddress)}`)
  if ((exit.interruptionInfo & 0x80000000) !== 0) details.push(`intr=${hex(exit.interruptionInfo)}`)
  return `${(vm.now / 1e6).toFixed(6)} ms  ${vm.name} vcpu${vcpu}  ${exitReasonName(exit.reason)}  eip=${hex(vmcs.guest.regs.eip)}  ${details.join(" ")}`
}

/** A virtio-blk store on datastore file `name`, created zero-filled (1 MiB) on first use. */
const vmDisk = (name: string) =>
  Effect.gen(function* () {
    const datastore = yield* Datastore
    const file = yield* datastore.open(name).pipe(
      Effect.catchTag("DatastoreNotFoundError", () =>
        datastore.create(name, VM_DISK_SECTORS).pipe(Effect.andThen(datastore.open(name)))
      ),
      Effect.mapError((e) => new BootHostError({ message: `datastore file ${name}: ${e.message}` }))
    )
    return datastoreBlockStore(file, datastore.flush)
  })

export const bootGuests = (guests: ReadonlyArray<PlannedGuest>, options: BootOptions) =>
  Effect.scoped(
    Effect.gen(function* () {
      const guestMiB = guests.reduce((sum, g) => sum + (g.config?.memoryMiB ?? options.memoryMiB) + 2, 0)
      const ramMiB = Math.min(3584, 64 + guestMiB)
      const hostConfig = yield* decodeMachineConfig(
        "boot host",
        JSON.stringify({
          ...defaultMachineConfig,
          pcpus: options.pcpus,
          ramMiB,
          seed: options.seed,
          uart: { backend: "none" },
          block: options.diskFile === undefined ? null : { path: options.diskFile, sizeMiB: DATASTORE_MIB }
        })
      )
      const diskBackend =
        options.diskFile === undefined
          ? {}
          : {
              disk: yield* Effect.acquireRelease(
                Effect.try({
                  try: () => openDatastoreFile(options.diskFile!),
                  catch: (error) =>
                    new BootHostError({
                      message: `--disk ${options.diskFile}: ${error instanceof Error ? error.message : String(error)}`
                    })
                }),
                (disk) => Effect.sync(() => disk.close())
              )
            }
      const machine = new Machine(hostConfig, diskBackend)
      const serial: Array<number> = []
      const wall = performance.now()
      const vswitch = new VSwitch({ name: "vSwitch0" })
      let nicCount = 0
      const summaries = yield* Effect.gen(function* () {
        const vms: Array<VirtualMachine> = []
        for (const [index, guest] of guests.entries()) {
          let line = ""
          const emit = (byte: number) => {
            if (index === 0) serial.push(byte)
            if (byte === 0x0a) {
              options.printLine(guest.name, index, line.replace(/\r$/, ""))
              line = ""
            } else line += String.fromCharCode(byte)
          }
          const config = guest.config ?? {
            ...defaultVmConfig(guest.name, guest.path),
            mode: options.mode ?? "hw",
            ...(options.ept === false ? { ept: false } : {}),
            memoryMiB: options.memoryMiB,
            vcpus: options.vcpus
          }
          const vm = yield* createVm(config, guest.payload, { console: emit })
          addStandardDevices(vm, emit)
          // a VM config file brings its own disks and NICs; an image gets <vm>.disk under --disk, a NIC under --net
          const disks =
            guest.config?.disks.map((d) => d.file) ?? (options.diskFile === undefined ? [] : [`${guest.name}.disk`])
          const portGroups = guest.config?.nics.map((n) => n.portGroup) ?? (options.net ? ["VM Network"] : [])
          const stores = []
          for (const file of disks) stores.push(yield* vmDisk(file))
          addVirtioDevices(vm, {
            disks: stores,
            nics: portGroups.map((group) => ({ port: vswitch.attach(group, guest.name).port, mac: macFor(nicCount++) }))
          })
          if (guest.rom !== undefined)
            vm.platform.addMmio(2 ** 32 - guest.rom.length, guest.rom.length, romDevice("bios", guest.rom))
          const traceLine = options.traceLine
          if (traceLine !== undefined) vm.onExit = (vcpu, vmcs) => traceLine(describeExit(vm, vcpu, vmcs))
          vm.onFlush = () => {
            if (line.length > 0) options.printLine(guest.name, index, line)
            line = ""
          }
          vms.push(vm)
        }
        const worlds = yield* Worlds
        const slice = 10_000_000
        for (let t = 0; t < options.maxTimeNs && vms.some((vm) => vm.ended === undefined); t += slice) {
          yield* worlds.runFor(Math.min(slice, options.maxTimeNs - t))
          options.progress?.(Math.min(t + slice, options.maxTimeNs), vms.filter((vm) => vm.ended === undefined).length)
        }
        const seconds = (performance.now() - wall) / 1000
        return vms.map((vm, i): VmSummary => {
          vm.onFlush()
          const exits = Object.fromEntries(Object.entries(vm.counters).filter(([, n]) => n > 0))
          const engine = vm.engineStats()
          return {
            vm: vm.name,
            image: guests[i]!.path,
            ...describeEnd(vm),
            simulatedMs: vm.now / 1e6,
            instructions: vm.instructions,
            mips: vm.instructions / 1e6 / Math.max(seconds, 1e-9),
            exits,
            ...(Object.keys(engine).length > 0 ? { engine } : {})
          }
        })
      }).pipe(Effect.provide(Kernel.boot(machine)))
      if (options.serialFile !== undefined) writeFileSync(options.serialFile, Uint8Array.from(serial))
      return summaries
    })
  )

export const formatSummary = (rows: ReadonlyArray<VmSummary>): string => {
  // the engine's counters get a column only when some VM has them (hw mode with EPT has none)
  const withEngine = rows.some((r) => r.engine !== undefined)
  const header = ["VM", "result", "sim ms", "instructions", "MIPS", "exits", ...(withEngine ? ["engine"] : [])]
  const counts = (counters: Record<string, number>, prefix?: RegExp) =>
    Object.entries(counters)
      .map(([k, v]) => `${prefix === undefined ? k : k.replace(prefix, "")}=${v}`)
      .join(" ")
  const body = rows.map((r) => [
    r.vm,
    r.result,
    r.simulatedMs.toFixed(3),
    String(r.instructions),
    r.mips.toPrecision(3),
    counts(r.exits, /^exit_/),
    ...(withEngine ? [counts(r.engine ?? {})] : [])
  ])
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((row) => row[i]!.length)))
  const fmt = (row: ReadonlyArray<string>) =>
    row
      .map((cell, i) => cell.padEnd(widths[i]!))
      .join("  ")
      .trimEnd()
  return [fmt(header), ...body.map(fmt)].join("\n")
}
