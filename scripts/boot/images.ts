/**
 * Reading what the user asked to boot, before anything starts: every image
 * file is read and planned (Multiboot ELF32 / a.out kludge via the loader,
 * or in `pv` mode a Xen paravirtualized kernel via the domain builder,
 * a VM config file naming a kernel or ROM, or a raw `--bios` ROM of 64 or
 * 128 KiB), and every problem is collected so one message lists them all. Nothing is started when anything is wrong.
 */
import { readFileSync, statSync } from "node:fs"
import { basename, dirname, resolve } from "node:path"
import { Effect } from "effect"
import { resetGuestRegisters } from "../../hw/cpu/vmx/vmcs.ts"
import { decodeVmConfig, defaultVmConfig, type ExecutionMode, type VmConfig } from "../../vmm/config.ts"
import { planMultibootLoad } from "../../vmm/loader/multiboot.ts"
import { planXenPvLoad, readXenNotes } from "../../vmm/loader/xen-pv.ts"
import type { BootPayload } from "../../vmm/vm.ts"

export interface PlannedGuest {
  readonly name: string
  readonly path: string
  readonly payload: BootPayload
  /** A ROM to map at 4 GiB - size (QEMU -bios), besides its copy below 1 MiB. */
  readonly rom?: Uint8Array
  /** From a VM config file: the whole config (memory, vCPUs, shares, disks, NICs); else the command line's flags apply. */
  readonly config?: VmConfig
}

/**
 * A VM name from an image's file name. Under --disk the VM's disk is the
 * datastore file `<name>.disk`, so the name has no ".." and does not end in
 * "." (an image "a..b.elf" or "..elf" would otherwise name a disk the
 * datastore refuses, after --disk was already formatted).
 */
const vmName = (path: string, taken: Set<string>): string => {
  const base =
    basename(path)
      .replace(/\.[^.]*$/, "")
      .replace(/[^A-Za-z0-9._-]/g, "-")
      .slice(0, 28)
      .replace(/\.{2,}/g, ".")
      .replace(/\.+$/, "") || "vm"
  let name = /^[A-Za-z0-9]/.test(base) ? base : `vm-${base}`
  for (let i = 2; taken.has(name); i++) name = `${base}-${i}`
  taken.add(name)
  return name
}

const readImage = (path: string): Uint8Array | string => {
  try {
    if (!statSync(path).isFile()) return `${path}: not a regular file`
    return readFileSync(path)
  } catch (e) {
    const code = (e as { code?: string }).code
    return code === "ENOENT" ? `${path}: no such file` : `${path}: cannot read (${code ?? String(e)})`
  }
}

/**
 * Plan a kernel for `memoryBytes` of RAM in `mode`; a problem string if it
 * cannot be. `pv` mode builds a Xen PV domain (vmm/loader/xen-pv.ts); every
 * other mode loads a Multiboot kernel and refuses a PV one.
 */
const planKernel = (path: string, memoryBytes: number, cmdline: string, mode: ExecutionMode): BootPayload | string => {
  const image = readImage(path)
  if (typeof image === "string") return image
  if (mode === "pv") {
    const pv = planXenPvLoad(image, { ramBytes: memoryBytes, cmdline })
    if (pv._tag === "Failure") return `${path}: ${pv.failure.message}`
    return pv.success
  }
  const notes = readXenNotes(image)
  if (notes !== undefined)
    return `${path}: xen-pv-image: a paravirtualized (Xen) kernel${notes.guestOs === undefined ? "" : ` (${notes.guestOs})`}, built for --mode pv, not --mode ${mode}`
  const plan = planMultibootLoad(image, { ramBytes: memoryBytes, cmdline })
  if (plan._tag === "Failure") return `${path}: ${plan.failure.message}`
  return { writes: plan.success.writes, registers: plan.success.registers }
}

/** Read a raw BIOS ROM (QEMU -bios: 64 or 128 KiB); its payload (the copy below 1 MiB) or a problem. */
const planRom = (path: string): { payload: BootPayload; rom: Uint8Array } | string => {
  const rom = readImage(path)
  if (typeof rom === "string") return rom
  if (rom.length !== 65536 && rom.length !== 131072)
    return `${path}: a BIOS ROM must be 64 KiB or 128 KiB (QEMU -bios), this one is ${rom.length} bytes`
  // the reset vector F000:FFF0 reads the ROM's copy below 1 MiB and its image at 4 GiB - size
  return {
    payload: { writes: [{ address: 0x100000 - rom.length, bytes: rom }], registers: resetGuestRegisters() },
    rom
  }
}

const isObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === "object" && value !== null && !Array.isArray(value)

/**
 * A VM config file (JSON, vmm/config.ts's schema): fields left out take the
 * defaults of `fibervisor boot IMAGE` (name from the file name, 16 MiB, 1
 * vCPU, hw, normal shares); `boot.kernel` and `boot.bios` are relative to the
 * file. Every problem is listed.
 */
const planConfigFile = (path: string, text: string, taken: Set<string>): Effect.Effect<PlannedGuest, Array<string>> =>
  Effect.gen(function* () {
    let parsed: unknown
    try {
      parsed = JSON.parse(text)
    } catch (e) {
      return yield* Effect.fail([`${path}: not valid JSON (${e instanceof Error ? e.message : String(e)})`])
    }
    if (!isObject(parsed)) return yield* Effect.fail([`${path}: a VM config is a JSON object`])
    const defaults = defaultVmConfig(
      basename(path, ".json")
        .replace(/[^A-Za-z0-9._-]/g, "-")
        .slice(0, 32),
      ""
    )
    const boot = isObject(parsed.boot) ? { ...parsed.boot } : parsed.boot
    if (isObject(boot)) {
      for (const key of ["kernel", "bios"])
        if (typeof boot[key] === "string" && boot[key] !== "") boot[key] = resolve(dirname(path), boot[key])
      if (typeof boot.kernel === "string" && boot.cmdline === undefined) boot.cmdline = ""
    }
    const merged = {
      ...defaults,
      ...parsed,
      cpu: isObject(parsed.cpu) ? { ...defaults.cpu, ...parsed.cpu } : (parsed.cpu ?? defaults.cpu),
      memory: isObject(parsed.memory) ? { ...defaults.memory, ...parsed.memory } : (parsed.memory ?? defaults.memory),
      boot
    }
    const config = yield* decodeVmConfig(path, JSON.stringify(merged)).pipe(
      Effect.mapError((e) => [`${path}: invalid VM config:\n    ${e.message.split("\n").join("\n    ")}`])
    )
    if (taken.has(config.name)) return yield* Effect.fail([`${path}: a VM named "${config.name}" is already booting`])
    taken.add(config.name)
    if ("kernel" in config.boot) {
      const payload = planKernel(config.boot.kernel, config.memoryMiB * 1024 * 1024, config.boot.cmdline, config.mode)
      if (typeof payload === "string") return yield* Effect.fail([payload])
      return { name: config.name, path, payload, config }
    }
    const planned = planRom(config.boot.bios)
    if (typeof planned === "string") return yield* Effect.fail([planned])
    return { name: config.name, path, payload: planned.payload, rom: planned.rom, config }
  })

/**
 * Plan every guest: Multiboot images, VM config files (*.json) and the
 * --bios ROM; fails with the list of every problem found.
 */
export const planGuests = (
  paths: ReadonlyArray<string>,
  options: {
    readonly memoryBytes: number
    readonly cmdline: string
    readonly bios: string | undefined
    /** The mode images are booted in (a VM config file names its own). Default hw. */
    readonly mode?: ExecutionMode
  }
): Effect.Effect<Array<PlannedGuest>, ReadonlyArray<string>> =>
  Effect.gen(function* () {
    const problems: Array<string> = []
    const guests: Array<PlannedGuest> = []
    const taken = new Set<string>()
    if (options.bios !== undefined) {
      const planned = planRom(options.bios)
      if (typeof planned === "string") problems.push(planned)
      else guests.push({ name: vmName(options.bios, taken), path: options.bios, ...planned })
    }
    for (const path of paths) {
      if (path.endsWith(".json")) {
        const text = readImage(path)
        if (typeof text === "string") {
          problems.push(text)
          continue
        }
        const planned = yield* Effect.result(planConfigFile(path, new TextDecoder().decode(text), taken))
        if (planned._tag === "Failure") problems.push(...planned.failure)
        else guests.push(planned.success)
        continue
      }
      const payload = planKernel(path, options.memoryBytes, options.cmdline, options.mode ?? "hw")
      if (typeof payload === "string") problems.push(payload)
      else guests.push({ name: vmName(path, taken), path, payload })
    }
    if (guests.length === 0 && problems.length === 0)
      problems.push("nothing to boot: give one or more Multiboot images or VM config files, or --bios ROM")
    return problems.length > 0 ? yield* Effect.fail(problems) : guests
  })
