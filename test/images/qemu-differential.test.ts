/**
 * The differential test (issue 7 "Verified against QEMU"): every guest image
 * boots on `qemu-system-i386 -accel tcg -kernel IMG ...` (Debian's
 * qemu-system-x86, installed by .ci/run) and on `fibervisor boot`; both must
 * produce the same COM1 bytes and the same result (QEMU's isa-debug-exit
 * exits with (v << 1) | 1; fibervisor reports v, 0 = success).
 * A timing image (boot.json `"timing": true`, e.g. nanobench) prints RDTSC
 * measurements, which differ between QEMU and fibervisor: its COM1 bytes are
 * not compared, but both runs must succeed and print the same lines once
 * their numbers are stripped (timingLines).
 * If QEMU is not installed this test says so loudly and is skipped.
 */
import { spawnSync } from "node:child_process"
import { existsSync, mkdtempSync, readdirSync, readFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { describe, expect, it } from "@effect/vitest"
import { qemuMultibootArgs } from "../../scripts/bench/peers/qemu.ts"
import { timingLines } from "./timing.ts"

const root = fileURLToPath(new URL("../..", import.meta.url))
const qemu = spawnSync("qemu-system-i386", ["--version"], { encoding: "utf8" })
const haveQemu = qemu.status === 0
if (!haveQemu) console.warn("\n*** qemu-system-i386 is NOT installed: the QEMU differential test is SKIPPED ***\n")

/** Every committed image: images/<name>/<name>.elf. */
const images = readdirSync(join(root, "images"))
  .map((dir) => join(root, "images", dir, `${dir}.elf`))
  .filter((path) => existsSync(path))

/**
 * Per-image boot settings (images/<name>/boot.json): vCPUs, for `-smp` and
 * `--vcpus` alike, and the expected result when it is not a debug-exit
 * ("triple-fault": QEMU with -no-reboot exits 0, fibervisor reports it).
 */
interface Settings {
  readonly vcpus: number
  readonly result?: "triple-fault"
  /** Needs virtio-mmio devices, which QEMU's pc machine does not have: not compared. */
  readonly virtio?: boolean
  /** Prints timings (RDTSC): only the lines without their numbers are compared, and both runs must succeed. */
  readonly timing?: boolean
}

const settings = (image: string): Settings => {
  const file = join(image, "..", "boot.json")
  return existsSync(file)
    ? { vcpus: 1, ...(JSON.parse(readFileSync(file, "utf8")) as Partial<Settings>) }
    : { vcpus: 1 }
}

const onQemu = (image: string) => {
  const out = join(mkdtempSync(join(tmpdir(), "qemu-")), "com1")
  const r = spawnSync(
    "qemu-system-i386",
    qemuMultibootArgs({ image, serial: `file:${out}`, vcpus: settings(image).vcpus }),
    { timeout: 30_000 }
  )
  return { serial: readFileSync(out, "latin1"), status: r.status }
}

const onFibervisor = (image: string) => {
  const out = join(mkdtempSync(join(tmpdir(), "fv-")), "com1")
  const r = spawnSync(
    join(root, "node_modules/.bin/node"),
    [
      join(root, "scripts/fibervisor.ts"),
      "boot",
      image,
      "--vcpus",
      String(settings(image).vcpus),
      "--serial",
      out,
      "--json"
    ],
    {
      cwd: root,
      encoding: "utf8",
      timeout: 60_000
    }
  )
  const summary = JSON.parse(r.stdout) as { vms: Array<{ exitCode: number | null; result: string }> }
  return { serial: readFileSync(out, "latin1"), exitCode: summary.vms[0]!.exitCode, result: summary.vms[0]!.result }
}

describe.skipIf(!haveQemu)("QEMU differential: same image, same serial output, same result", () => {
  it("has images to compare", () => expect(images.length).toBeGreaterThan(0))
  for (const image of images) {
    const name = image.slice(root.length).replace(/^\//, "")
    if (settings(image).virtio === true) {
      it.skip(`${name}: not compared (needs virtio-mmio, which QEMU's pc machine lacks)`, () => {})
      continue
    }
    it(name, () => {
      const q = onQemu(image)
      const f = onFibervisor(image)
      if (settings(image).timing === true) {
        expect(timingLines(f.serial).length).toBeGreaterThan(0)
        expect(timingLines(f.serial)).toEqual(timingLines(q.serial))
        expect(f.result).toBe("success")
        expect(f.exitCode).toBe(0)
        expect(q.status).toBe(1)
      } else expect(f.serial).toBe(q.serial)
      if (settings(image).result === "triple-fault") {
        expect(q.status).toBe(0)
        expect(f.result).toBe("triple fault")
      } else {
        // QEMU: exit status (v << 1) | 1 for a debug-exit write of v
        expect(q.status).toBe(((f.exitCode ?? -1) << 1) | 1)
      }
    })
  }
})
