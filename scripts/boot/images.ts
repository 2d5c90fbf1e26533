/**
 * Reading what the user asked to boot, before anything starts: every image
 * file is read and planned (Multiboot ELF32 / a.out kludge via the loader,
 * or a raw `--bios` ROM of 64 or 128 KiB), and every problem is collected so
 * one message lists them all. Nothing is started when anything is wrong.
 */
import { readFileSync, statSync } from "node:fs"
import { basename } from "node:path"
import { Effect } from "effect"
import { resetGuestRegisters } from "../../hw/cpu/vmx/vmcs.ts"
import { planMultibootLoad } from "../../vmm/loader/multiboot.ts"
import type { BootPayload } from "../../vmm/vm.ts"

export interface PlannedGuest {
  readonly name: string
  readonly path: string
  readonly payload: BootPayload
  /** A ROM to map at 4 GiB - size (QEMU -bios), besides its copy below 1 MiB. */
  readonly rom?: Uint8Array
}

const vmName = (path: string, taken: Set<string>): string => {
  const base =
    basename(path)
      .replace(/\.[^.]*$/, "")
      .replace(/[^A-Za-z0-9._-]/g, "-")
      .slice(0, 28) || "vm"
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

/** Plan every guest; fails with the list of every problem found. */
export const planGuests = (
  paths: ReadonlyArray<string>,
  options: { readonly memoryBytes: number; readonly cmdline: string; readonly bios: string | undefined }
): Effect.Effect<Array<PlannedGuest>, ReadonlyArray<string>> =>
  Effect.suspend(() => {
    const problems: Array<string> = []
    const guests: Array<PlannedGuest> = []
    const taken = new Set<string>()
    if (options.bios !== undefined) {
      const rom = readImage(options.bios)
      if (typeof rom === "string") problems.push(rom)
      else if (rom.length !== 65536 && rom.length !== 131072) {
        problems.push(
          `${options.bios}: a BIOS ROM must be 64 KiB or 128 KiB (QEMU -bios), this one is ${rom.length} bytes`
        )
      } else {
        // the reset vector F000:FFF0 reads the ROM's copy below 1 MiB and its image at 4 GiB - size
        guests.push({
          name: vmName(options.bios, taken),
          path: options.bios,
          payload: { writes: [{ address: 0x100000 - rom.length, bytes: rom }], registers: resetGuestRegisters() },
          rom
        })
      }
    }
    for (const path of paths) {
      const image = readImage(path)
      if (typeof image === "string") {
        problems.push(image)
        continue
      }
      const plan = planMultibootLoad(image, { ramBytes: options.memoryBytes, cmdline: options.cmdline })
      if (plan._tag === "Failure") {
        problems.push(`${path}: ${plan.failure.message}`)
        continue
      }
      guests.push({
        name: vmName(path, taken),
        path,
        payload: { writes: plan.success.writes, registers: plan.success.registers }
      })
    }
    if (guests.length === 0 && problems.length === 0)
      problems.push("nothing to boot: give one or more Multiboot images, or --bios ROM")
    return problems.length > 0 ? Effect.fail(problems) : Effect.succeed(guests)
  })
