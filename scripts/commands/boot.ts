/**
 * `fibervisor boot IMAGE... [options]`: boot one VM per Multiboot image, VM
 * config file (*.json, vmm/config.ts; its own memory, vCPUs, shares, disks
 * and NICs, the flags' values apply to plain images) or raw ROM (--bios) on
 * one simulated host; consoles are multiplexed with
 * each line prefixed by its VM's name; a summary per VM ends the run.
 * `--ept off` runs the `hw` VMs booted from images without EPT, on shadow page
 * tables as first-generation VT-x did (a config file says `"ept": false`);
 * the summary then adds the engine's counters (shadow_hidden_faults, ...).
 * Exit status: 0 when every guest wrote 0 to the debug-exit port 0xF4, 1
 * otherwise (a guest failed, faulted or outlived --max-time), 2 for bad input
 * (nothing is started then).
 */
import { Console, Effect, Option } from "effect"
import { Argument, Command, Flag } from "effect/cli"
import { nameProblems } from "../../kernel/datastore/names.ts"
import { availableModes, ExecutionMode } from "../../vmm/config.ts"
import { planGuests } from "../boot/images.ts"
import { bootGuests, formatSummary } from "../boot/run.ts"
import { failWithMessage } from "./user-error.ts"

const images = Argument.String("image").pipe(
  Argument.withDescription(
    "Multiboot v1 ELF32 (or a.out-kludge) kernel image, or a VM config file (*.json: name, memoryMiB, vcpus, cpu, memory, boot, disks, nics); one VM each"
  ),
  Argument.variadic()
)
const mode = Flag.String("mode").pipe(
  Flag.withDescription(
    "Execution mode: hw (VT-x), bt (binary translation), emu (pure emulation: every instruction on a software CPU, QEMU TCG style), trap (deprivileged without translation: a demonstration that x86 needs BT), pv (paravirtualization: a Xen PV kernel at ring 1 making hypercalls; docs/pv.md)"
  ),
  Flag.withDefault("hw")
)
const ept = Flag.String("ept").pipe(
  Flag.withDescription(
    "hw mode: on = EPT (nested paging); off = shadow page tables, as first-generation VT-x (real mode stepped in the emulator)"
  ),
  Flag.withDefault("on")
)
const mem = Flag.String("mem").pipe(Flag.withDescription("Guest RAM per VM, e.g. 16M, 64M"), Flag.withDefault("16M"))
const vcpus = Flag.Int("vcpus").pipe(Flag.withDescription("vCPUs per VM"), Flag.withDefault(1))
const pcpus = Flag.Int("pcpus").pipe(Flag.withDescription("pCPUs of the simulated host"), Flag.withDefault(2))
const seed = Flag.Int("seed").pipe(Flag.withDescription("Seed of the simulated host"), Flag.withDefault(1))
const maxTime = Flag.String("max-time").pipe(
  Flag.withDescription("Virtual time limit, e.g. 10s, 500ms"),
  Flag.withDefault("10s")
)
const cmdline = Flag.String("cmdline").pipe(Flag.withDescription("Kernel command line"), Flag.withDefault(""))
const bios = Flag.String("bios").pipe(
  Flag.withDescription("A raw 64/128 KiB ROM started at the reset vector"),
  Flag.optional
)
const serial = Flag.String("serial").pipe(
  Flag.withDescription("Write the first VM's raw COM1 bytes to FILE"),
  Flag.optional
)
const disk = Flag.String("disk").pipe(
  Flag.withDescription(
    "Host FILE holding the host's datastore (64 MiB, formatted when new); each VM gets a virtio-blk disk, datastore file <vm>.disk, kept across runs"
  ),
  Flag.optional
)
const net = Flag.Boolean("net").pipe(
  Flag.withDescription(
    "Give each VM a virtio-net NIC on one vSwitch port group (MAC 52:54:00:00:00:<n>); with --disk too, the disk is virtio device 0 and the NIC device 1"
  ),
  Flag.withDefault(false)
)
const trace = Flag.Boolean("trace").pipe(
  Flag.withDescription("Print every VM exit on stderr: virtual time, VM, vCPU, reason, guest EIP, qualification"),
  Flag.withDefault(false)
)
const json = Flag.Boolean("json").pipe(Flag.withDescription("Print the summary as JSON"), Flag.withDefault(false))

const parseSize = (text: string): number | undefined => {
  const m = /^(\d+)\s*([MG]?)i?B?$/i.exec(text.trim())
  if (m === null) return undefined
  const n = Number(m[1])
  return m[2]?.toUpperCase() === "G" ? n * 1024 : n
}

const parseDuration = (text: string): number | undefined => {
  const m = /^(\d+(?:\.\d+)?)\s*(ns|us|ms|s)$/.exec(text.trim())
  if (m === null) return undefined
  const scale = { ns: 1, us: 1e3, ms: 1e6, s: 1e9 }[m[2] as "ns" | "us" | "ms" | "s"]
  return Math.round(Number(m[1]) * scale)
}

const colors = [36, 33, 35, 32, 34, 31]

export const boot = Command.make(
  "boot",
  { images, mode, ept, mem, vcpus, pcpus, seed, maxTime, cmdline, bios, serial, disk, net, trace, json },
  (o) =>
    Effect.gen(function* () {
      const problems: Array<string> = []
      if (!availableModes.includes(o.mode as never)) {
        problems.push(
          `--mode ${o.mode}: ${(ExecutionMode.literals as ReadonlyArray<string>).includes(o.mode) ? "not built yet" : "unknown"} (available: ${availableModes.join(", ")})`
        )
      }
      if (o.ept !== "on" && o.ept !== "off") problems.push(`--ept ${o.ept}: give on or off`)
      else if (o.ept === "off" && o.mode !== "hw") problems.push(`--ept off: only for --mode hw (not ${o.mode})`)
      const memoryMiB = parseSize(o.mem)
      const memoryValid = memoryMiB !== undefined && memoryMiB >= 2 && memoryMiB <= 3072
      if (!memoryValid) problems.push(`--mem ${o.mem}: give 2M..3G, e.g. 16M`)
      const maxTimeNs = parseDuration(o.maxTime)
      if (maxTimeNs === undefined || maxTimeNs <= 0)
        problems.push(`--max-time ${o.maxTime}: give a duration like 10s or 500ms`)
      if (o.vcpus < 1 || o.vcpus > 16) problems.push(`--vcpus ${o.vcpus}: give 1..16`)
      if (o.pcpus < 1 || o.pcpus > 64) problems.push(`--pcpus ${o.pcpus}: give 1..64`)
      const guests = yield* planGuests(o.images, {
        // with an invalid --mem, images are still checked (against the default size) so every problem is listed
        memoryBytes: (memoryValid ? memoryMiB! : 16) * 1024 * 1024,
        cmdline: o.cmdline,
        bios: Option.getOrUndefined(o.bios),
        ...(availableModes.includes(o.mode as never) ? { mode: o.mode as ExecutionMode } : {})
      }).pipe(
        Effect.catch((found: ReadonlyArray<string>) => {
          problems.push(...found)
          return Effect.succeed([])
        })
      )
      // a config's disks are datastore files: checked before anything starts (no path may leave the datastore)
      for (const guest of guests) {
        const vcpus = guest.config?.vcpus ?? o.vcpus
        if ((guest.config?.mode ?? o.mode) === "pv" && vcpus > 1)
          problems.push(`${guest.path}: VM ${guest.name}: pv mode runs one vCPU per domain, not ${vcpus}`)
        const disks = guest.config?.disks ?? []
        if (disks.length > 0 && o.disk._tag === "None")
          problems.push(
            `${guest.path}: VM ${guest.name} has disks, which live on the host's datastore: give --disk FILE`
          )
        for (const disk of disks) {
          const wrong = nameProblems(disk.file)
          if (wrong.length > 0) problems.push(`${guest.path}: disk "${disk.file}": ${wrong.join("; ")}`)
        }
      }
      if (problems.length > 0)
        return yield* failWithMessage(`fibervisor boot: nothing started:\n  ${problems.join("\n  ")}`)
      const tty = process.stdout.isTTY === true
      const width = Math.max(...guests.map((g) => g.name.length))
      // on a terminal, a long run shows how far it is (on stderr, at most twice a second, erased at the end)
      let lastProgress = performance.now()
      let progressShown = false
      const progress =
        process.stderr.isTTY === true && !o.json
          ? (simulatedNs: number, running: number) => {
              if (performance.now() - lastProgress < 500) return
              lastProgress = performance.now()
              progressShown = true
              process.stderr.write(
                `\r\x1b[K${(simulatedNs / 1e6).toFixed(0)} ms of ${o.maxTime} simulated, ${running}/${guests.length} VMs running`
              )
            }
          : undefined
      const summaries = yield* bootGuests(guests, {
        mode: o.mode as ExecutionMode,
        ...(o.ept === "off" ? { ept: false } : {}),
        memoryMiB: memoryMiB!,
        vcpus: o.vcpus,
        pcpus: o.pcpus,
        seed: o.seed,
        maxTimeNs: maxTimeNs!,
        serialFile: Option.getOrUndefined(o.serial),
        diskFile: Option.getOrUndefined(o.disk),
        net: o.net,
        progress,
        traceLine: o.trace ? (line) => process.stderr.write(`trace | ${line}\n`) : undefined,
        printLine: (vm, index, line) => {
          if (o.json) return
          const prefix = vm.padEnd(width)
          process.stdout.write(
            tty ? `\x1b[${colors[index % colors.length]}m${prefix}\x1b[0m | ${line}\n` : `${prefix} | ${line}\n`
          )
        }
      })
      if (progressShown) process.stderr.write("\r\x1b[K")
      yield* Console.log(o.json ? JSON.stringify({ vms: summaries }, null, 2) : `\n${formatSummary(summaries)}`)
      if (!summaries.every((s) => s.success)) process.exitCode = 1
    }).pipe(
      Effect.catchTags({
        MachineConfigError: (e) => failWithMessage(`fibervisor boot: ${e.message}`),
        BootHostError: (e) => failWithMessage(`fibervisor boot: ${e.message}`),
        KernelBootError: (e) => failWithMessage(`fibervisor boot: the host did not boot: ${e.message}`)
      })
    )
).pipe(Command.withDescription("Boot Multiboot guest images in VMs on one simulated host and report how each ended"))
