/**
 * `fibervisor boot` as a user runs it (issue 7 Must show): the hello image
 * prints its greeting and the command exits 0; a guest that exits with a
 * failure code makes it exit non-zero; bad input is refused with every
 * problem listed and exit status 2, nothing started.
 */
import { execFileSync, spawnSync } from "node:child_process"
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { describe, expect, it } from "@effect/vitest"

const root = fileURLToPath(new URL("../..", import.meta.url))
const node = join(root, "node_modules/.bin/node")
const cli = join(root, "scripts/fibervisor.ts")
const hello = join(root, "images/hello/hello.elf")

const fibervisor = (...args: Array<string>) => {
  const r = spawnSync(node, [cli, ...args], { cwd: root, encoding: "utf8", timeout: 60_000 })
  return { status: r.status, stdout: r.stdout, stderr: r.stderr }
}

/** A Multiboot guest that prints and exits with `code` (built with Debian's nasm and ld). */
const guestExiting = (code: number): string => {
  const dir = mkdtempSync(join(tmpdir(), "fibervisor-boot-"))
  const asm = join(dir, "exit.asm")
  writeFileSync(
    asm,
    `%include "multiboot.inc"
%include "serial.inc"
section .text
global _start
_start:
  mov esp, 0x80000
  mov esi, msg
  call serial_puts
  mov al, ${code}
  jmp debug_exit
section .rodata
msg: db "exiting with ${code}", 10, 0
`
  )
  execFileSync("nasm", ["-f", "elf32", "-I", join(root, "images/lib/"), "-o", join(dir, "exit.o"), asm])
  const elf = join(dir, "exit.elf")
  execFileSync("ld", [
    "-m",
    "elf_i386",
    "-T",
    join(root, "images/lib/link.ld"),
    "--build-id=none",
    "-nostdlib",
    "-o",
    elf,
    join(dir, "exit.o")
  ])
  return elf
}

describe("fibervisor boot", () => {
  it("boots images/hello/hello.elf: prints the greeting, exits 0", () => {
    const r = fibervisor("boot", hello)
    expect(r.stdout).toContain("hello | Hello from a fibervisor guest!")
    expect(r.stdout).toMatch(/hello\s+success/)
    expect(r.status).toBe(0)
  })

  it("a guest that exits with a failure code makes boot exit non-zero; --serial captures its raw COM1 bytes", () => {
    const failing = guestExiting(3)
    const serial = join(mkdtempSync(join(tmpdir(), "fibervisor-serial-")), "com1.txt")
    const r = fibervisor("boot", failing, hello, "--serial", serial, "--json")
    const summary = JSON.parse(r.stdout) as { vms: Array<{ vm: string; success: boolean; exitCode: number | null }> }
    expect(summary.vms.map((v) => [v.success, v.exitCode])).toEqual([
      [false, 3],
      [true, 0]
    ])
    expect(readFileSync(serial, "utf8")).toBe("exiting with 3\n")
    expect(r.status).toBe(1)
  })

  it("refuses bad input with every problem listed, exit 2, nothing started", () => {
    const r = fibervisor("boot", "no-such-image.elf", join(root, "package.json"), "--mode", "bt", "--mem", "1M")
    expect(r.status).toBe(2)
    expect(r.stderr).toContain("nothing started")
    expect(r.stderr).toContain("--mode bt: not built yet")
    expect(r.stderr).toContain("--mem 1M")
    expect(r.stderr).toContain("no-such-image.elf: no such file")
    expect(r.stderr).toContain("package.json: not-multiboot")
    expect(r.stdout).toBe("")
  })
})
