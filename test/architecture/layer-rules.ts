/**
 * The dependency rule of DESIGN.md, as code.
 *
 *   vmm -> kernel -> drivers -> hw        (vmm may also use hw/cpu and the hw/devices models)
 *
 * and "no host OS layer": only hw/backends/ (device back-ends) and scripts/
 * may touch the real world: `node:*` and Node built-ins, @effect/platform-node,
 * the wall clock, timers, process, console, host files.
 *
 * A plain scanner over source text (comments and strings stripped first, so a
 * header that *mentions* Date.now is not a violation). test/ is exempt: tests
 * read fixtures and vectors from disk.
 */
import { readdirSync, readFileSync, statSync } from "node:fs"
import { builtinModules } from "node:module"
import { dirname, join, normalize, relative, sep } from "node:path"

export type Layer = "hw" | "drivers" | "kernel" | "vmm" | "images" | "scripts"

/** Which folders each layer may import from (a path prefix, relative to the root). */
export const allowedImports: Record<Layer, ReadonlyArray<string>> = {
  hw: ["hw/"],
  drivers: ["drivers/", "hw/"],
  kernel: ["kernel/", "drivers/", "hw/"],
  // the VMM runs guests on hw/cpu and reuses hw's pure device models (and their contract) for its
  // virtual devices, as QEMU's device models serve both sides; it never touches the Machine itself
  vmm: ["vmm/", "kernel/", "hw/cpu/", "hw/devices/", "hw/machine/device.ts", "hw/machine/buses.ts"],
  images: ["images/"],
  scripts: ["scripts/", "vmm/", "kernel/", "drivers/", "hw/", "images/"]
}

/** Places allowed to touch the real world. */
export const realWorldAllowed = ["scripts/", "hw/backends/"]

/** Host access that is forbidden elsewhere, each with the reason printed on a violation. */
export const hostAccessPatterns: ReadonlyArray<readonly [RegExp, string]> = [
  [/\bDate\.now\s*\(/, "reads the wall clock (Date.now)"],
  [/\bnew\s+Date\s*\(/, "reads the wall clock (new Date)"],
  [/\bperformance\.now\s*\(/, "reads the wall clock (performance.now)"],
  [/\bprocess\s*\.\s*\w+/, "touches the host process (process.*)"],
  [/\b(setTimeout|setInterval|setImmediate)\s*\(/, "uses host timers"],
  [/\bconsole\s*\.\s*\w+/, "writes to the host console"],
  [/\bClock\s*\.\s*currentTime\w*/, "reads the wall clock (Clock.currentTime*)"],
  [/\bFileSystem\s*\.\s*FileSystem\b/, "uses the host file system"],
  [/\brequire\s*\(/, "loads host modules with require"]
]

export interface Violation {
  readonly file: string
  readonly message: string
}

const layers = Object.keys(allowedImports) as Array<Layer>
const nodeBuiltins = new Set(builtinModules)

const layerOf = (rel: string): Layer | undefined => layers.find((l) => rel.startsWith(`${l}/`))

/** Blank out comments and the contents of string/template literals, keeping import specifiers readable. */
export const stripCommentsAndStrings = (src: string): string => {
  let out = ""
  let i = 0
  while (i < src.length) {
    const c = src[i]!
    const next = src[i + 1]
    if (c === "/" && next === "/") {
      while (i < src.length && src[i] !== "\n") i++
    } else if (c === "/" && next === "*") {
      const end = src.indexOf("*/", i + 2)
      const stop = end < 0 ? src.length : end + 2
      out += src.slice(i, stop).replace(/[^\n]/g, " ")
      i = stop
    } else if (c === '"' || c === "'" || c === "`") {
      let j = i + 1
      while (j < src.length && src[j] !== c) j += src[j] === "\\" ? 2 : 1
      // keep import specifiers (after `from`, `import` or `import(`); blank every other literal
      const isSpecifier = c !== "`" && /(?:\bfrom|\bimport|\bimport\s*\()\s*$/.test(out)
      out += isSpecifier ? src.slice(i, j + 1) : `${c}${c}`
      i = j + 1
    } else {
      out += c
      i++
    }
  }
  return out
}

const importPattern =
  /(?:^|[\s;])(?:import|export)\s*(?:[\w*{}\s,$]*?\bfrom\s*)?["']([^"']+)["']|import\s*\(\s*["']([^"']+)["']\s*\)/g

export const importsOf = (code: string): Array<string> =>
  [...code.matchAll(importPattern)].map((m) => (m[1] ?? m[2])!).filter((s) => s !== undefined)

const listTs = (dir: string): Array<string> =>
  readdirSync(dir).flatMap((name) => {
    if (name === "node_modules" || name.startsWith(".")) return []
    const path = join(dir, name)
    if (statSync(path).isDirectory()) return listTs(path)
    return name.endsWith(".ts") ? [path] : []
  })

/** Check every .ts file of the layers under `root`; returns all violations found. */
export const checkLayers = (root: string): Array<Violation> => {
  const violations: Array<Violation> = []
  for (const layer of layers) {
    let files: Array<string>
    try {
      files = listTs(join(root, layer))
    } catch {
      continue
    }
    for (const path of files) {
      const rel = relative(root, path).split(sep).join("/")
      const code = stripCommentsAndStrings(readFileSync(path, "utf8"))
      const mayTouchHost = realWorldAllowed.some((p) => rel.startsWith(p))
      for (const spec of importsOf(code)) {
        const bare = spec.replace(/^node:/, "").split("/")[0]!
        if (spec.startsWith(".")) {
          const target = normalize(join(dirname(rel), spec))
            .split(sep)
            .join("/")
          const targetLayer = layerOf(target)
          if (targetLayer === undefined) {
            violations.push({ file: rel, message: `imports ${spec}, outside every layer` })
          } else if (!allowedImports[layer].some((p) => target.startsWith(p))) {
            violations.push({
              file: rel,
              message: `${layer} may not import ${target} (allowed: ${allowedImports[layer].join(", ")})`
            })
          }
        } else if (!mayTouchHost && (spec.startsWith("node:") || nodeBuiltins.has(bare))) {
          violations.push({ file: rel, message: `imports ${spec}: only hw/backends/ and scripts/ may touch the host` })
        } else if (!mayTouchHost && spec.startsWith("@effect/platform-node")) {
          violations.push({ file: rel, message: `imports ${spec}: only hw/backends/ and scripts/ may touch the host` })
        }
      }
      if (!mayTouchHost) {
        // host-access checks look at code only: import specifiers such as "./console.ts" are blanked too
        const codeOnly = code.replace(/(["'])(?:\\.|(?!\1).)*\1/g, '""')
        for (const [pattern, why] of hostAccessPatterns) {
          if (pattern.test(codeOnly)) violations.push({ file: rel, message: why })
        }
      }
    }
  }
  return violations
}
