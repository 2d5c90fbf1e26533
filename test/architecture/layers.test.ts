/**
 * The architecture guard: the layer rule and "no host OS layer" (DESIGN.md,
 * "Layers ... and the one rule between them"). The fixtures prove the checker
 * can fail; the last test holds the real tree to it.
 */
import { fileURLToPath } from "node:url"
import { describe, expect, it } from "@effect/vitest"
import { checkLayers, importsOf, stripCommentsAndStrings } from "./layer-rules.ts"

const fixture = (name: string) => fileURLToPath(new URL(`../fixtures/arch/${name}`, import.meta.url))
const projectRoot = fileURLToPath(new URL("../..", import.meta.url))

describe("architecture guard", () => {
  it("accepts a tree that follows the rule (scripts/ may touch the host, headers may mention it)", () => {
    expect(checkLayers(fixture("clean"))).toEqual([])
  })

  it("fails when a file in hw/ imports from kernel/", () => {
    expect(checkLayers(fixture("hw-imports-kernel"))).toEqual([
      {
        file: "hw/cpu.ts",
        message: "hw may not import kernel/scheduler.ts (allowed: hw/)"
      }
    ])
  })

  it("fails on node built-ins, platform-node, the wall clock and host timers outside hw/backends and scripts", () => {
    const found = checkLayers(fixture("host-access")).map((v) => `${v.file}: ${v.message}`)
    expect(found).toEqual([
      "kernel/clock.ts: imports fs: only hw/backends/ and scripts/ may touch the host",
      "kernel/clock.ts: reads the wall clock (Date.now)",
      "vmm/timer.ts: imports @effect/platform-node: only hw/backends/ and scripts/ may touch the host",
      "vmm/timer.ts: uses host timers"
    ])
  })

  it("reads every import form and ignores comments", () => {
    const code = stripCommentsAndStrings(
      `import a from "./a.ts"\nimport type { B } from "./b.ts"\nexport * from "./c.ts"\nimport "./d.ts"\nconst e = await import("./e.ts")\n// import x from "./x.ts"\n/* import y from "./y.ts" */`
    )
    expect(importsOf(code)).toEqual(["./a.ts", "./b.ts", "./c.ts", "./d.ts", "./e.ts"])
  })

  it("holds for fibervisor itself", () => {
    expect(checkLayers(projectRoot)).toEqual([])
  })
})
