/**
 * `fibervisor boot` as a user runs it (issue 7 Must show): the hello image
 * prints its greeting and the command exits 0; a guest that exits with a
 * failure code makes it exit non-zero; bad input is refused with every
 * problem listed and exit status 2, nothing started. Also the flags that
 * attach things: --bios (a raw ROM at the reset vector), --disk (the host's
 * datastore in a host file; each VM's virtio-blk disk lives on it across
 * runs) and --net (every VM's virtio-net NIC on one vSwitch port group).
 */
import { execFileSync } from "node:child_process"
import { mkdtempSync, readFileSync, statSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { describe, expect, it } from "@effect/vitest"
import { fibervisorCli, root } from "./cli.ts"

const hello = join(root, "images/hello/hello.elf")

const fibervisor = fibervisorCli(60_000)

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

/**
 * A 64 KiB BIOS ROM (nasm -f bin): the reset vector at FFF0 far-jumps to
 * F000:0000, which prints "rom: real mode at F000" on COM1 and writes 0 to
 * the debug-exit port.
 */
const romImage = (): string => {
  const dir = mkdtempSync(join(tmpdir(), "fibervisor-rom-"))
  const asm = join(dir, "rom.asm")
  writeFileSync(
    asm,
    `bits 16
org 0
start:
  mov ax, cs
  mov ds, ax
  mov si, msg
  mov dx, 0x3f8
.next:
  lodsb
  test al, al
  jz .done
  out dx, al
  jmp .next
.done:
  mov dx, 0xf4
  xor al, al
  out dx, al
  hlt
msg: db "rom: real mode at F000", 10, 0
times 0xfff0 - ($ - $$) db 0
  jmp 0xf000:start
times 0x10000 - ($ - $$) db 0
`
  )
  const rom = join(dir, "rom.bin")
  execFileSync("nasm", ["-f", "bin", "-o", rom, asm])
  return rom
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
    const r = fibervisor("boot", "no-such-image.elf", join(root, "README.md"), "--mode", "vt", "--mem", "1M")
    expect(r.status).toBe(2)
    expect(r.stderr).toContain("nothing started")
    expect(r.stderr).toContain("--mode vt: unknown (available: hw, bt, pv, emu, trap)")
    expect(r.stderr).toContain("--mem 1M")
    expect(r.stderr).toContain("no-such-image.elf: no such file")
    expect(r.stderr).toContain("README.md: not-multiboot")
    expect(r.stdout).toBe("")
  })

  it("--bios starts a raw ROM at the reset vector F000:FFF0", () => {
    const r = fibervisor("boot", "--bios", romImage())
    expect(r.stdout).toContain("rom | rom: real mode at F000")
    expect(r.stdout).toMatch(/rom\s+success/)
    expect(r.status).toBe(0)
  })

  it("--disk: each VM's virtio-blk disk lives in the datastore file and survives to the next run", () => {
    const disk = join(mkdtempSync(join(tmpdir(), "fibervisor-disk-")), "datastore.img")
    const blk = join(root, "images/blk/blk.elf")
    const first = fibervisor("boot", blk, blk, "--disk", disk)
    expect(first.stdout).toContain("blk   | blk: boot 1, sector 0 written and read back")
    expect(first.stdout).toContain("blk-2 | blk: boot 1, sector 0 written and read back")
    expect(first.status).toBe(0)
    const second = fibervisor("boot", blk, blk, "--disk", disk)
    expect(second.stdout).toContain("blk   | blk: boot 2, sector 0 written and read back")
    expect(second.stdout).toContain("blk-2 | blk: boot 2, sector 0 written and read back")
    expect(second.status).toBe(0)
    // the datastore's superblock is at sector 0 of the host file
    expect(readFileSync(disk).subarray(0, 8).toString("latin1")).toBe("FVDSTORE")
  })

  it("--disk refuses a file that is not a datastore and leaves it untouched", () => {
    const junk = join(mkdtempSync(join(tmpdir(), "fibervisor-disk-")), "photo.jpg")
    const bytes = Uint8Array.from({ length: 4096 }, (_, i) => (i * 37 + 11) & 0xff)
    writeFileSync(junk, bytes)
    const r = fibervisor("boot", hello, "--disk", junk)
    expect(r.status).toBe(2)
    expect(r.stderr).toContain("not a 64 MiB fibervisor datastore")
    expect(r.stdout).toBe("")
    expect(statSync(junk).size).toBe(4096)
    expect(new Uint8Array(readFileSync(junk))).toEqual(bytes)
  })

  it("--net: two VMs on one vSwitch port group hear each other", () => {
    const net = join(root, "images/net/net.elf")
    const r = fibervisor("boot", net, net, "--net")
    expect(r.stdout).toContain("net   | net: 52:54:00:00:00:01 heard 52:54:00:00:00:02")
    expect(r.stdout).toContain("net-2 | net: 52:54:00:00:00:02 heard 52:54:00:00:00:01")
    expect(r.status).toBe(0)
  })

  it("--trace prints one line per VM exit on stderr, agreeing with the summary's exit counts", () => {
    const timer = join(root, "images/timer/timer.elf")
    const r = fibervisor("boot", timer, "--trace", "--json")
    expect(r.status).toBe(0)
    const summary = JSON.parse(r.stdout) as { vms: Array<{ exits: Record<string, number> }> }
    const counted = Object.values(summary.vms[0]!.exits).reduce((a, b) => a + b, 0)
    const lines = r.stderr.split("\n").filter((l) => l.startsWith("trace | "))
    expect(lines.length).toBe(counted)
    expect(lines.filter((l) => / timer vcpu0 {2}Hlt {2}eip=0x[0-9a-f]{8}/.test(l)).length).toBe(
      summary.vms[0]!.exits.exit_hlt
    )
    expect(lines[0]).toMatch(/^trace \| 0\.\d{6} ms {2}timer vcpu0 {2}\w+ {2}eip=0x[0-9a-f]{8} {2}qual=0x[0-9a-f]{8}/)
  })

  it("boots VM config files: their own memory, vCPUs, shares, datastore disks and vSwitch port groups", () => {
    const dir = mkdtempSync(join(tmpdir(), "fibervisor-vmconfig-"))
    const net = join(root, "images/net/net.elf")
    const write = (name: string, config: object) => {
      writeFileSync(join(dir, `${name}.json`), JSON.stringify(config))
      return join(dir, `${name}.json`)
    }
    // fields left out take the defaults; a relative kernel path is relative to the config file
    const alpha = write("alpha", { memoryMiB: 8, boot: { kernel: net }, nics: [{ portGroup: "lab" }] })
    const beta = write("beta", { cpu: { shares: "high" }, boot: { kernel: net }, nics: [{ portGroup: "lab" }] })
    const gamma = write("gamma", { boot: { kernel: net }, nics: [{ portGroup: "dmz" }] })
    writeFileSync(join(dir, "blk.elf"), readFileSync(join(root, "images/blk/blk.elf")))
    const store = write("store", {
      name: "store",
      vcpus: 2,
      boot: { kernel: "blk.elf" },
      disks: [{ file: "data.disk" }]
    })
    const r = fibervisor(
      "boot",
      alpha,
      beta,
      gamma,
      store,
      "--disk",
      join(dir, "ds.img"),
      "--max-time",
      "20ms",
      "--json"
    )
    const summary = JSON.parse(r.stdout) as { vms: Array<{ vm: string; result: string }> }
    expect(summary.vms.map((v) => [v.vm, v.result])).toEqual([
      ["alpha", "success"],
      ["beta", "success"],
      ["gamma", "timeout (still running at --max-time)"], // alone on its port group, it hears no one
      ["store", "success"]
    ])
    expect(r.status).toBe(1)
  })

  it("refuses bad VM config files with every problem listed, exit 2, nothing started", () => {
    const dir = mkdtempSync(join(tmpdir(), "fibervisor-vmconfig-"))
    const bad = join(dir, "bad.json")
    writeFileSync(bad, JSON.stringify({ name: "-bad", memoryMiB: 0, vcpus: 99, boot: { kernel: "x.elf" }, nics: [{}] }))
    const notJson = join(dir, "broken.json")
    writeFileSync(notJson, "{ name: ")
    const withDisk = join(dir, "disky.json")
    writeFileSync(
      withDisk,
      JSON.stringify({ boot: { kernel: hello }, disks: [{ file: "d.disk" }, { file: "../../etc/passwd" }] })
    )
    const r1 = fibervisor("boot", bad, notJson)
    expect(r1.status).toBe(2)
    expect(r1.stderr).toContain('at ["name"]')
    expect(r1.stderr).toContain('at ["memoryMiB"]')
    expect(r1.stderr).toContain('at ["vcpus"]')
    expect(r1.stderr).toContain('at ["nics"][0]["portGroup"]')
    expect(r1.stderr).toContain("broken.json: not valid JSON")
    const r2 = fibervisor("boot", withDisk)
    expect(r2.status).toBe(2)
    expect(r2.stderr).toContain("VM disky has disks, which live on the host's datastore: give --disk FILE")
    expect(r2.stderr).toContain(`disk "../../etc/passwd": contains a path separator`)
    expect(r2.stderr).toContain("contains '..'")
    expect(r1.stdout + r2.stdout).toBe("")
  })
})
