/**
 * The `bench cpu` guest image (images/bench/bench.elf) that fibervisor, v86
 * and QEMU all run: its loops are exactly the (disassembled from the
 * ELF), the parameter block patches as the bench expects, and fibervisor
 * retires exactly perIteration instructions per extra iteration and prints
 * the loop's true result. No timing is asserted here: speed claims live in
 * `fibervisor bench`, never in tests.
 */
import { describe, expect, it } from "@effect/vitest"
import { disassemble } from "../../hw/cpu/disasm.ts"
import { formatCpuPeers } from "../../scripts/bench/cpu-peers.ts"
import { runFibervisorImage } from "../../scripts/bench/peers/fibervisor.ts"
import {
  bytesAt,
  elfSymbols,
  type LoopKind,
  loopInfo,
  paramsOffset,
  patchBenchImage,
  readBenchImage,
  withTempImage
} from "../../scripts/bench/peers/image.ts"
import { qemuUnavailable, runQemuImage } from "../../scripts/bench/peers/qemu.ts"
import { runV86Image, v86Unavailable } from "../../scripts/bench/peers/v86.ts"

const image = readBenchImage()
const symbols = elfSymbols(image)
const symbol = (name: string) => {
  const value = symbols.get(name)
  if (value === undefined) throw new Error(`bench.elf has no symbol ${name}`)
  return value
}
const hex = (n: number) => `0x${n.toString(16)}`

const disassembleRange = (from: number, to: number): Array<string> => {
  const bytes = bytesAt(image, from, to - from)
  const texts: Array<string> = []
  for (let at = 0; at < bytes.length; ) {
    const d = disassemble(bytes, at, from + at, true)
    texts.push(d.text)
    at += d.length
  }
  return texts
}

/** The loop's result (EAX) computed here, as the guest starts it: EAX = 1, EBX = 0x9E3779B9, a zeroed buffer. */
const expectedEax = (kind: LoopKind, iterations: number): number => {
  let eax = 1
  let ebx = 0x9e3779b9
  const buffer = new Uint32Array(0x1000)
  for (let ecx = iterations; ecx > 0; ecx--) {
    if (kind === "alu") {
      eax = (eax + ebx) >>> 0
      ebx = (ebx ^ eax) >>> 0
      ebx = ((ebx << 3) | (ebx >>> 29)) >>> 0
    } else {
      const edx = ecx & 0xfff
      eax = (eax + buffer[edx]!) >>> 0
      buffer[edx] = eax
    }
  }
  return eax
}
const expectedSerial = (kind: LoopKind, iterations: number) =>
  `[] eax=${expectedEax(kind, iterations).toString(16).padStart(8, "0")}\r\n`

describe("bench image", () => {
  it("the ALU loop is exactly the issue's: add eax,ebx; xor ebx,eax; rol ebx,3; dec ecx; jnz", () => {
    const loop = symbol("alu_loop")
    expect(disassembleRange(loop, symbol("alu_end"))).toEqual([
      "add eax, ebx",
      "xor ebx, eax",
      "rol ebx, 0x3",
      "dec ecx",
      `jnz ${hex(loop)}`
    ])
  })

  it("the memory loop is exactly the issue's, on a buffer in pages of its own", () => {
    const loop = symbol("memory_loop")
    const buffer = symbol("bench_buf")
    expect(disassembleRange(loop, symbol("memory_end"))).toEqual([
      "mov edx, ecx",
      "and edx, 0xfff",
      `add eax, [edx*4+${hex(buffer)}]`,
      `mov [edx*4+${hex(buffer)}], eax`,
      "dec ecx",
      `jnz ${hex(loop)}`
    ])
    expect(buffer % 4096).toBe(0)
    // code, data and stack all lie below the buffer's first page
    expect(
      Math.max(...[...symbols.entries()].filter(([n]) => n !== "bench_buf").map(([, v]) => v))
    ).toBeLessThanOrEqual(buffer)
    expect(symbol("stack_top")).toBeLessThanOrEqual(buffer)
  })

  it("the parameter block is FVBENCH\\0, kind, iterations, and patching sets exactly those", () => {
    const at = paramsOffset(image)
    const view = new DataView(image.buffer, image.byteOffset)
    expect([view.getUint32(at + 8, true), view.getUint32(at + 12, true)]).toEqual([0, 1000]) // committed defaults
    const patched = patchBenchImage(image, "memory", 123_456)
    const patchedView = new DataView(patched.buffer)
    expect([patchedView.getUint32(at + 8, true), patchedView.getUint32(at + 12, true)]).toEqual([1, 123_456])
    expect([...patched].filter((b, i) => b !== image[i]).length).toBeLessThanOrEqual(8)
    expect(() => patchBenchImage(image, "alu", 0)).toThrow(/iterations/)
  })

  for (const kind of ["alu", "memory"] as const) {
    it(`fibervisor (${kind}): perIteration instructions per extra iteration, and the loop's true result`, async () => {
      // both counts touch all four buffer pages (4096 dwords), so both runs take the same first-touch EPT exits
      const short = await runFibervisorImage(patchBenchImage(image, kind, 5000))
      const long = await runFibervisorImage(patchBenchImage(image, kind, 9000))
      expect(short.serial).toBe(expectedSerial(kind, 5000))
      expect(long.serial).toBe(expectedSerial(kind, 9000))
      expect(long.instructions! - short.instructions!).toBe(loopInfo[kind].perIteration * 4000)
    })
  }

  it.skipIf(v86Unavailable() !== undefined)("v86, with and without its JIT, prints the same result", async () => {
    for (const jit of [false, true]) {
      const run = await withTempImage(patchBenchImage(image, "memory", 5000), (path) =>
        runV86Image(path, { jit, timeoutMs: 20_000 })
      )
      expect(run.serial).toBe(expectedSerial("memory", 5000))
    }
  })

  it.skipIf(qemuUnavailable() !== undefined)("QEMU TCG prints the same result", async () => {
    const run = await withTempImage(patchBenchImage(image, "alu", 5000), (path) =>
      runQemuImage(path, { timeoutMs: 20_000 })
    )
    expect(run.serial).toBe(expectedSerial("alu", 5000))
  })

  it("an engine that cannot run here is a row saying why, and ratios are fibervisor's MIPS over the peer's", () => {
    const text = formatCpuPeers({
      method: "m",
      targetSeconds: 0.5,
      repeats: 1,
      rows: [
        {
          engine: "fibervisor",
          label: "fibervisor VM (hw mode)",
          loop: "alu",
          status: "ok",
          iterations: [1, 5],
          loopSeconds: [0.1, 0.5],
          instructions: 20,
          mips: 50
        },
        {
          engine: "v86-nojit",
          label: "v86 without JIT",
          loop: "alu",
          status: "ok",
          iterations: [1, 5],
          loopSeconds: [0.1, 0.3],
          instructions: 20,
          mips: 100
        },
        {
          engine: "qemu",
          label: "QEMU TCG",
          loop: "alu",
          status: "unavailable",
          reason: "qemu-system-i386 not installed (ENOENT)"
        }
      ],
      ratios: [{ loop: "alu", peer: "v86-nojit", label: "v86 without JIT", ratio: 0.5 }],
      peers: { qemu: "not measured", v86: "v86 x" },
      target: { metric: "fibervisor ALU loop / v86 without JIT", value: 0.5, target: 0.6, met: false }
    })
    expect(text).toMatch(/QEMU TCG\s+alu\s+unavailable: qemu-system-i386 not installed/)
    expect(text).toMatch(/v86 without JIT\s+alu\s+1 \/ 5\s+0\.100 \/ 0\.300\s+100\s+0\.500/)
    expect(text).toContain("fibervisor ALU loop / v86 without JIT: 0.500 (target >= 0.6: NOT met)")
  })
})
