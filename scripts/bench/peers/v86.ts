/**
 * v86 (npm package `v86`, a devDependency) as a `bench cpu` peer. v86 boots
 * a Multiboot ELF itself, with no BIOS (`multiboot` option, no `bios`), and
 * in that mode treats a write to port 0xF4 as "test exited" by throwing out
 * of its main loop; so every run is a child Node process
 * (`node scripts/bench/peers/v86.ts --child IMAGE jit|nojit`) that boots the
 * image from node_modules/v86/build (libv86.mjs + v86.wasm, nothing
 * fetched), timestamps the guest's "[" and "]" COM1 bytes in its
 * `serial0-output-byte` listener (called synchronously from the UART
 * write), and prints one JSON line before exiting at the guest's final
 * newline. `disable_jit` turns v86's x86-to-wasm JIT off.
 */
import { execFile } from "node:child_process"
import { readFileSync } from "node:fs"
import { fileURLToPath } from "node:url"
import type { MarkedRun } from "./fibervisor.ts"
import { END_MARKER, START_MARKER } from "./image.ts"

const RESULT_PREFIX = "FVBENCH-V86 "

/** Why v86 cannot run here, or undefined when its package and wasm are installed. */
export const v86Unavailable = (): string | undefined => {
  try {
    const lib = fileURLToPath(import.meta.resolve("v86"))
    readFileSync(new URL("v86.wasm", `file://${lib}`))
    return undefined
  } catch (e) {
    return `npm package v86 not installed (${e instanceof Error ? e.message.split("\n")[0] : String(e)}); run npm install`
  }
}

/** Run the (patched) bench image at `imagePath` once on v86, with or without its JIT. */
export const runV86Image = (imagePath: string, options: { jit: boolean; timeoutMs: number }): Promise<MarkedRun> =>
  new Promise((resolve, reject) => {
    execFile(
      process.execPath,
      [fileURLToPath(import.meta.url), "--child", imagePath, options.jit ? "jit" : "nojit"],
      { timeout: options.timeoutMs, maxBuffer: 16 << 20, encoding: "utf8" },
      (error, stdout, stderr) => {
        const line = stdout.split("\n").find((l) => l.startsWith(RESULT_PREFIX))
        if (line === undefined) {
          const why = error?.killed === true ? `timed out after ${options.timeoutMs} ms` : (error?.message ?? "")
          reject(new Error(`v86 run printed no result: ${why} ${stderr.trim().slice(-500)}`.trim()))
          return
        }
        const result = JSON.parse(line.slice(RESULT_PREFIX.length)) as MarkedRun & { error?: string }
        if (result.error !== undefined) reject(new Error(`v86: ${result.error}`))
        else resolve(result)
      }
    )
  })

/** The child: boot the image in v86 and report the markers' times. */
const child = async (imagePath: string, jit: boolean): Promise<void> => {
  const report = (result: object) => {
    process.stdout.write(`${RESULT_PREFIX}${JSON.stringify(result)}\n`)
    process.exit(0)
  }
  // v86 logs to the console (e.g. "Test exited with code 0x00"): keep stdout for the result line
  console.log = () => {}
  console.warn = () => {}
  process.on("uncaughtException", (e) =>
    report({ error: (e as unknown) === "HALT" ? "guest exited before its final newline" : String(e) })
  )
  const { V86 } = await import("v86")
  const wasm = fileURLToPath(new URL("v86.wasm", import.meta.resolve("v86")))
  const image = readFileSync(imagePath)
  const wallStart = performance.now()
  const emulator = new V86({
    wasm_path: wasm,
    multiboot: { buffer: image.buffer.slice(image.byteOffset, image.byteOffset + image.byteLength) },
    memory_size: 32 << 20,
    vga_memory_size: 2 << 20,
    autostart: true,
    disable_jit: !jit,
    log_level: 0
  })
  let serial = ""
  let start: number | undefined
  let end: number | undefined
  emulator.add_listener("serial0-output-byte", (byte: number) => {
    const now = performance.now()
    if (byte === START_MARKER && start === undefined) start = now
    else if (byte === END_MARKER && end === undefined) end = now
    serial += String.fromCharCode(byte)
    if (byte !== 0x0a) return
    if (start === undefined || end === undefined) report({ error: `no loop markers; COM1: ${serial}` })
    else
      report({
        loopSeconds: (end - start) / 1000,
        wallSeconds: (now - wallStart) / 1000,
        instructions: emulator.get_instruction_counter(),
        serial
      } satisfies MarkedRun)
  })
}

if (process.argv[1] === fileURLToPath(import.meta.url) && process.argv[2] === "--child")
  await child(process.argv[3]!, process.argv[4] === "jit")
