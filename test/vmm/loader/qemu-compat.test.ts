/**
 * QEMU as the differential oracle (.ci/run installs it): the same reader
 * kernel boots under `qemu-system-i386 -kernel` and under this loader on a
 * hw/cpu Cpu, and what it records must agree on everything the loader
 * claims to copy from QEMU (hw/i386/multiboot.c and its option ROM): the
 * handoff registers, the GDT, the information flags, mem_lower, boot_device,
 * the first three memory-map entries, the command lines, the module bytes.
 * The documented differences are asserted as differences:
 *
 *   mem_upper / map tail   SeaBIOS reserves the top 128 KiB of RAM (ACPI) and
 *                          the BIOS flash below 4 GiB; this loader's map
 *                          ends with RAM: QEMU's mem_upper is smaller
 *   boot_loader_name       "qemu" vs "fibervisor"
 *   module address         QEMU puts its module list and strings in a page
 *                          after the kernel, before the modules; here they are
 *                          in the low area, so modules start a page lower
 *   EFLAGS                 QEMU leaves arithmetic flags from its ROM; both
 *                          have IF = VM = 0
 *
 * The guest ends by dumping its record to the debugcon port 0xe9 and writing
 * 0 to isa-debug-exit (0xf4); on the Cpu those ports go nowhere and it halts.
 */
import { execFileSync } from "node:child_process"
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { describe, expect, it } from "@effect/vitest"
import { bootOnCpu, DONE, elfImage, R, RESULT, readerElfSource } from "./images.ts"

const hasQemu = (() => {
  try {
    execFileSync("qemu-system-i386", ["--version"], { stdio: "pipe" })
    return true
  } catch {
    return false
  }
})()

/** After the record: the first three memory-map entries (72 bytes) copied to RESULT + 0x1c0, then dump it all. */
const MMAP_COPY = 0x1c0
const tail = `
  mov esi, [RESULT + ${R.ebx}]
  mov esi, [esi + 48]
  mov edi, RESULT + ${MMAP_COPY}
  mov ecx, 72
  rep movsb
  mov esi, RESULT
  mov ecx, ${MMAP_COPY + 72}
  mov dx, 0xe9
  rep outsb
  mov al, 0
  out 0xf4, al
`

describe.skipIf(!hasQemu)("the loader against qemu-system-i386 -kernel", () => {
  it("hands the reader kernel the same machine", () => {
    const image = elfImage(readerElfSource(0x3, tail), { text: 0x100000 }).bytes
    const module = new Uint8Array([0x11, 0x22, 0x33, 0x44, 0x55, 0x66])
    const dir = mkdtempSync(join(tmpdir(), "fibervisor-qemu-"))
    let q: Uint8Array
    const kernelPath = join(dir, "k.elf")
    const modulePath = join(dir, "m.bin")
    try {
      writeFileSync(kernelPath, image)
      writeFileSync(modulePath, module)
      const out = join(dir, "debugcon.bin")
      // -kernel's exit status is 1 here: isa-debug-exit exits with (0 << 1) | 1
      try {
        execFileSync(
          "qemu-system-i386",
          [
            ...["-kernel", kernelPath, "-append", "quiet=1", "-initrd", `${modulePath} arg=2`, "-m", "8"],
            ...["-display", "none", "-serial", "none", "-monitor", "none", "-no-reboot", "-nodefaults"],
            ...["-debugcon", `file:${out}`, "-device", "isa-debug-exit,iobase=0xf4,iosize=0x04"]
          ],
          { stdio: "pipe", timeout: 20_000 }
        )
      } catch (e) {
        if ((e as { status?: number }).status !== 1) throw e
      }
      q = new Uint8Array(readFileSync(out))
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
    expect(q.length).toBe(MMAP_COPY + 72)

    const ours = bootOnCpu(image, {
      ramBytes: 8 << 20,
      cmdline: `${kernelPath} quiet=1`, // QEMU's kernel command line is "<file> <-append>"
      modules: [{ bytes: module, cmdline: `${modulePath} arg=2` }]
    })
    const qv = new DataView(q.buffer)
    const theirs = (offset: number) => qv.getUint32(offset, true)
    const mine = (offset: number) => ours.u32(RESULT + offset)
    const qstr = (offset: number) => new TextDecoder().decode(q.subarray(offset, q.indexOf(0, offset)))

    for (const field of [
      "done",
      "eax",
      "ebx",
      "cr0",
      "cs",
      "ds",
      "gdtrLimit",
      "flags",
      "memLower",
      "bootDevice"
    ] as const)
      expect({ field, value: mine(R[field]) }).toEqual({ field, value: theirs(R[field]) })
    expect(theirs(R.done)).toBe(DONE)
    for (const field of ["modsCount", "mod0First", "bssOr", "data"] as const)
      expect({ field, value: mine(R[field]) }).toEqual({ field, value: theirs(R[field]) })
    expect(ours.string(RESULT + R.cmdline)).toBe(qstr(R.cmdline))
    expect(ours.string(RESULT + R.mod0Cmdline)).toBe(qstr(R.mod0Cmdline))
    expect([...ours.mem.ram.subarray(RESULT + MMAP_COPY, RESULT + MMAP_COPY + 72)]).toEqual([
      ...q.subarray(MMAP_COPY, MMAP_COPY + 72)
    ])

    // the documented differences
    for (const flags of [mine(R.eflags), theirs(R.eflags)]) expect(flags & ((1 << 9) | (1 << 17))).toBe(0)
    expect(theirs(R.memUpper)).toBeLessThan(mine(R.memUpper))
    expect(theirs(R.mmapCount)).toBeGreaterThan(mine(R.mmapCount))
    expect(qstr(R.loaderName)).toBe("qemu")
    expect(ours.string(RESULT + R.loaderName)).toBe("fibervisor")
    expect(theirs(R.mod0Start) % 4096).toBe(0)
    expect(mine(R.mod0Start)).toBe(theirs(R.mod0Start) - 4096)
  })
})
