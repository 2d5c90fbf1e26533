/**
 * QEMU TCG as a `bench cpu` peer: `qemu-system-i386 -accel tcg -kernel
 * IMAGE` (QEMU's own Multiboot loader, no guest firmware to wait for), COM1
 * on the child's stdout (a pipe: each guest byte is written as the TCG
 * thread executes the OUT), isa-debug-exit at 0xF4 (QEMU exits with
 * (code << 1) | 1, so 1 is success). The "[" and "]" markers are timestamped
 * as their pipe data arrives here, which leaves QEMU's start-up and
 * shut-down out of the loop time; the differential over two iteration
 * counts in cpu-peers.ts removes the remaining constant latency.
 */
import { spawn, spawnSync } from "node:child_process"
import type { MarkedRun } from "./fibervisor.ts"
import { END_MARKER, START_MARKER } from "./image.ts"

const QEMU = "qemu-system-i386"

/** Why QEMU cannot run here, or undefined when `qemu-system-i386` answers --version. */
export const qemuUnavailable = (): string | undefined => {
  const r = spawnSync(QEMU, ["--version"], { encoding: "utf8", timeout: 10_000 })
  if (r.error !== undefined) return `${QEMU} not installed (${(r.error as { code?: string }).code ?? r.error.message})`
  return r.status === 0 ? undefined : `${QEMU} --version exited with ${r.status}`
}

export const qemuVersion = (): string =>
  spawnSync(QEMU, ["--version"], { encoding: "utf8" }).stdout?.split("\n")[0]?.trim() ?? "unknown"

/**
 * The command line that boots a Multiboot `image` on QEMU TCG the way our
 * guests expect: 16 MiB, no default devices, COM1 to `serial` (a QEMU
 * chardev: "stdio", "file:PATH"), isa-debug-exit at 0xF4, no reboot.
 */
export const qemuMultibootArgs = (options: { image: string; serial: string; vcpus?: number }): Array<string> => [
  "-accel",
  "tcg",
  ...(options.vcpus === undefined ? [] : ["-smp", String(options.vcpus)]),
  "-kernel",
  options.image,
  "-display",
  "none",
  "-serial",
  options.serial,
  "-device",
  "isa-debug-exit,iobase=0xf4,iosize=0x04",
  "-no-reboot",
  "-nodefaults",
  "-m",
  "16"
]

/** Run the (patched) bench image at `imagePath` once on QEMU TCG. */
export const runQemuImage = (imagePath: string, options: { timeoutMs: number }): Promise<MarkedRun> =>
  new Promise((resolve, reject) => {
    const wallStart = performance.now()
    const qemu = spawn(QEMU, qemuMultibootArgs({ image: imagePath, serial: "stdio" }), {
      stdio: ["ignore", "pipe", "pipe"]
    })
    let serial = ""
    let stderr = ""
    let start: number | undefined
    let end: number | undefined
    const timer = setTimeout(() => qemu.kill("SIGKILL"), options.timeoutMs)
    qemu.stdout.on("data", (chunk: Buffer) => {
      const now = performance.now()
      if (start === undefined && chunk.includes(START_MARKER)) start = now
      if (end === undefined && chunk.includes(END_MARKER)) end = now
      serial += chunk.toString("latin1")
    })
    qemu.stderr.on("data", (chunk: Buffer) => {
      stderr += chunk.toString("utf8")
    })
    qemu.on("error", (e) => {
      clearTimeout(timer)
      reject(e)
    })
    qemu.on("close", (status, signal) => {
      clearTimeout(timer)
      const wallSeconds = (performance.now() - wallStart) / 1000
      if (status !== 1)
        reject(
          new Error(
            `${QEMU} ended with ${signal === null ? `status ${status}` : `signal ${signal} (timeout ${options.timeoutMs} ms?)`}; COM1: ${JSON.stringify(serial)} ${stderr.trim().slice(-300)}`
          )
        )
      else if (start === undefined || end === undefined)
        reject(new Error(`${QEMU}: no loop markers; COM1: ${JSON.stringify(serial)}`))
      else resolve({ loopSeconds: (end - start) / 1000, wallSeconds, instructions: undefined, serial })
    })
  })
