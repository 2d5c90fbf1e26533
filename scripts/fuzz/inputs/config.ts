/**
 * VM config texts for fuzz suite `inputs`: a valid VmConfig (vmm/config.ts)
 * with random mutations (wrong types, missing keys, excess properties such as
 * "__proto__" or a misspelt "memoryMB", out-of-range and non-integer numbers,
 * huge strings, nested and deeply nested garbage, disks named "../x",
 * "/etc/passwd", "a/b", with NUL or control characters or very long) and
 * then text damage (truncation, a stray character, a duplicate key, a BOM,
 * a trailing NUL, 1e999, byte soup, 10^5 nested brackets).
 *
 * `checkConfigText` decodes it as `fibervisor boot` does (decodeVmConfig,
 * then the disk-name check of every disk) and compares with an independent
 * reading of the schema (`schemaProblems`):
 *
 *   - nothing but a VmConfigError ever comes out (no throw, no defect), and
 *     it names the source and has a message;
 *   - a config is accepted exactly when the JSON parses, every field
 *     satisfies the schema, there is no unknown key and the mode is built
 *     ("hw"); the accepted value is the parsed one, unchanged;
 *   - a refusal lists every wrong field: the message says `at ["field"]`
 *     for each (every problem at once);
 *   - every disk name passes the datastore's name check exactly when it is a
 *     plain name (datastore.ts `checkNameProblems`).
 */
import { Cause, Effect, Exit } from "effect"
import fc from "fast-check"
import { availableModes, decodeVmConfig, VmConfigError } from "../../../vmm/config.ts"
import { checkNameProblems, diskName } from "./datastore.ts"

const must = (condition: boolean, message: string): void => {
  if (!condition) throw new Error(message)
}

export const CONFIG_SOURCE = "fuzz/vm.json"

type Path = ReadonlyArray<string | number>

// ---------------------------------------------------------------------------
// the schema, read independently

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v)

type Check = (value: unknown, path: Path, out: Array<Path>) => void

const leaf =
  (ok: (v: unknown) => boolean): Check =>
  (v, path, out) => {
    if (!ok(v)) out.push(path)
  }
const int = (lo: number, hi: number) => (v: unknown) =>
  typeof v === "number" && Number.isInteger(v) && v >= lo && v <= hi
const num = (lo: number, hi: number) => (v: unknown) => typeof v === "number" && v >= lo && v <= hi
const str = (v: unknown) => typeof v === "string"
const nonEmpty = (v: unknown) => typeof v === "string" && v.length > 0
const nullOr = (ok: (v: unknown) => boolean) => (v: unknown) => v === null || ok(v)

const struct =
  (fields: Record<string, Check>): Check =>
  (v, path, out) => {
    if (!isRecord(v)) {
      out.push(path)
      return
    }
    for (const k of Object.keys(v)) if (!Object.hasOwn(fields, k)) out.push([...path, k])
    for (const [k, check] of Object.entries(fields)) {
      if (!Object.hasOwn(v, k)) out.push([...path, k])
      else check(v[k], [...path, k], out)
    }
  }
const array =
  (item: Check): Check =>
  (v, path, out) => {
    if (!Array.isArray(v)) out.push(path)
    else
      v.forEach((x, i) => {
        item(x, [...path, i], out)
      })
  }
/** A union is wrong as a whole: only its own path is certain to be named. */
const union =
  (...members: ReadonlyArray<Check>): Check =>
  (v, path, out) => {
    const fits = members.some((m) => {
      const o: Array<Path> = []
      m(v, path, o)
      return o.length === 0
    })
    if (!fits) out.push(path)
  }

const vmConfig = struct({
  name: leaf((v) => typeof v === "string" && /^[A-Za-z0-9][A-Za-z0-9._-]{0,31}$/.test(v)),
  memoryMiB: leaf(int(1, 3072)),
  vcpus: leaf(int(1, 16)),
  mode: leaf((v) => v === "hw" || v === "bt" || v === "pv" || v === "emu" || v === "trap"),
  cpu: struct({
    shares: leaf((v) => v === "high" || v === "normal" || v === "low" || int(1, 1_000_000)(v)),
    reservation: leaf(num(0, 64)),
    limit: leaf(nullOr(num(0.001, 64)))
  }),
  memory: struct({ reservationMiB: leaf(int(0, 3072)), limitMiB: leaf(nullOr(int(1, 4096))) }),
  boot: union(struct({ kernel: leaf(nonEmpty), cmdline: leaf(str) }), struct({ bios: leaf(nonEmpty) })),
  disks: array(struct({ file: leaf(nonEmpty) })),
  nics: array(struct({ portGroup: leaf(nonEmpty) }))
})

/** Every path the schema refuses in `value` (empty: it is a VmConfig). */
export const schemaProblems = (value: unknown): Array<Path> => {
  const out: Array<Path> = []
  vmConfig(value, [], out)
  return out
}

/** A path as Effect's messages print it: `["cpu"]["limit"]`, `["disks"][0]`. */
const formatPath = (path: Path): string =>
  path.map((k) => `[${typeof k === "string" ? JSON.stringify(k) : k}]`).join("")

/** JSON with sorted keys: equality of two JSON values regardless of key order. */
const canonical = (v: unknown): string =>
  JSON.stringify(v, (_, x) =>
    isRecord(x)
      ? Object.fromEntries(
          Object.keys(x)
            .sort()
            .map((k) => [k, x[k]])
        )
      : (x as unknown)
  )

// ---------------------------------------------------------------------------
// generation

const validConfig = fc.record({
  name: fc.stringMatching(/^[A-Za-z0-9][A-Za-z0-9._-]{0,31}$/),
  memoryMiB: fc.integer({ min: 1, max: 3072 }),
  vcpus: fc.integer({ min: 1, max: 16 }),
  mode: fc.oneof({ weight: 4, arbitrary: fc.constant("hw") }, fc.constantFrom("bt", "pv", "emu", "trap")),
  cpu: fc.record({
    shares: fc.oneof(fc.constantFrom("high", "normal", "low"), fc.integer({ min: 1, max: 1_000_000 })),
    reservation: fc.oneof(fc.constantFrom(0, 64, 0.5), fc.double({ min: 0, max: 64, noNaN: true })),
    limit: fc.oneof(fc.constant(null), fc.double({ min: 0.001, max: 64, noNaN: true }))
  }),
  memory: fc.record({
    reservationMiB: fc.integer({ min: 0, max: 3072 }),
    limitMiB: fc.oneof(fc.constant(null), fc.integer({ min: 1, max: 4096 }))
  }),
  boot: fc.oneof(
    fc.record({ kernel: fc.string({ minLength: 1, maxLength: 30 }), cmdline: fc.string({ maxLength: 30 }) }),
    fc.record({ bios: fc.string({ minLength: 1, maxLength: 30 }) })
  ),
  disks: fc.array(fc.record({ file: diskName }), { maxLength: 3 }),
  nics: fc.array(fc.record({ portGroup: fc.string({ minLength: 1, maxLength: 20 }) }), { maxLength: 2 })
})

const deeplyNested = (depth: number): unknown => {
  let v: unknown = 1
  for (let i = 0; i < depth; i++) v = i % 2 === 0 ? [v] : { x: v }
  return v
}

/** Values of the wrong type, out of range, huge or nested. */
const garbage: fc.Arbitrary<unknown> = fc.oneof(
  fc.constantFrom<unknown>(
    null,
    true,
    false,
    0,
    -1,
    -0,
    0.5,
    1.5,
    0.0005,
    17,
    65,
    3073,
    4097,
    1_000_001,
    2 ** 31,
    2 ** 32,
    2 ** 53 + 2,
    1e308,
    -1e308,
    "",
    "hw ",
    "HW",
    "high",
    "16",
    [],
    {},
    [null],
    { kernel: "k" },
    { kernel: "k", cmdline: "", bios: "b" },
    { file: "../x" }
  ),
  fc.string({ maxLength: 20 }),
  fc.integer(),
  fc.double(),
  fc.integer({ min: 1000, max: 100_000 }).map((n) => "x".repeat(n)),
  fc.jsonValue({ maxDepth: 4 }),
  fc.integer({ min: 100, max: 2000 }).map(deeplyNested),
  diskName,
  fc.array(fc.record({ file: diskName }), { maxLength: 3 })
)

const fieldPaths: ReadonlyArray<Path> = [
  ["name"],
  ["memoryMiB"],
  ["vcpus"],
  ["mode"],
  ["cpu"],
  ["cpu", "shares"],
  ["cpu", "reservation"],
  ["cpu", "limit"],
  ["memory"],
  ["memory", "reservationMiB"],
  ["memory", "limitMiB"],
  ["boot"],
  ["boot", "kernel"],
  ["boot", "cmdline"],
  ["boot", "bios"],
  ["disks"],
  ["disks", 0],
  ["disks", 0, "file"],
  ["disks", 1, "file"],
  ["nics"],
  ["nics", 0, "portGroup"]
]
const objectPaths: ReadonlyArray<Path> = [[], ["cpu"], ["memory"], ["boot"], ["disks", 0], ["nics", 0]]

/** Each bounded field at and just past its bounds (off-by-one in the schema shows here). */
const edges: ReadonlyArray<readonly [Path, ReadonlyArray<unknown>]> = [
  [["name"], ["", "a".repeat(32), "a".repeat(33), "-a", ".a", "a b", "a/b", "A.b_c-9"]],
  [["memoryMiB"], [0, 1, 3072, 3073, 1.5, -1]],
  [["vcpus"], [0, 1, 16, 17, 2.5]],
  [["mode"], ["hw", "bt", "pv", "emu", "HW", ""]],
  [
    ["cpu", "shares"],
    [0, 1, 1_000_000, 1_000_001, 1.5, "HIGH", "normal", "low", "high"]
  ],
  [
    ["cpu", "reservation"],
    [-0.001, 0, 64, 64.001]
  ],
  [
    ["cpu", "limit"],
    [0, 0.0009, 0.001, 64, 64.001, null]
  ],
  [
    ["memory", "reservationMiB"],
    [-1, 0, 3072, 3073, 0.5]
  ],
  [
    ["memory", "limitMiB"],
    [0, 1, 4096, 4097, null]
  ],
  [
    ["boot", "kernel"],
    ["", "k"]
  ],
  [
    ["boot", "bios"],
    ["", "b"]
  ],
  [
    ["nics", 0, "portGroup"],
    ["", "VM Network"]
  ]
]

type ConfigMutation =
  | { readonly op: "set"; readonly path: Path; readonly value: unknown }
  | { readonly op: "delete"; readonly path: Path }
  | { readonly op: "excess"; readonly path: Path; readonly key: string; readonly value: unknown }

const configMutation: fc.Arbitrary<ConfigMutation> = fc.oneof(
  {
    weight: 4,
    arbitrary: fc.record({ op: fc.constant("set" as const), path: fc.constantFrom(...fieldPaths), value: garbage })
  },
  {
    weight: 3,
    arbitrary: fc
      .constantFrom(...edges)
      .chain(([path, values]) =>
        fc.record({ op: fc.constant("set" as const), path: fc.constant(path), value: fc.constantFrom(...values) })
      )
  },
  { weight: 1, arbitrary: fc.record({ op: fc.constant("delete" as const), path: fc.constantFrom(...fieldPaths) }) },
  {
    weight: 2,
    arbitrary: fc.record({
      op: fc.constant("excess" as const),
      path: fc.constantFrom(...objectPaths),
      key: fc.oneof(
        fc.constantFrom("__proto__", "constructor", "toString", "memoryMB", "Name", "", "disks ", "kernel"),
        fc.string({ maxLength: 12 })
      ),
      value: garbage
    })
  }
)

/** Apply a mutation to a JSON value in place (a path that does not lead anywhere is left alone). */
const mutate = (root: Record<string, unknown>, m: ConfigMutation): void => {
  const parentPath = m.op === "excess" ? m.path : m.path.slice(0, -1)
  let parent: unknown = root
  for (const k of parentPath)
    parent = isRecord(parent) || Array.isArray(parent) ? (parent as Record<string | number, unknown>)[k] : undefined
  if (!(isRecord(parent) || Array.isArray(parent))) return
  const target = parent as Record<string | number, unknown>
  if (m.op === "excess") {
    // defineProperty: an own "__proto__" key, as JSON.parse makes one
    Object.defineProperty(target, m.key, { value: m.value, enumerable: true, writable: true, configurable: true })
    return
  }
  const key = m.path[m.path.length - 1]!
  if (m.op === "delete") delete target[key]
  else if (!Array.isArray(target) || (typeof key === "number" && key <= target.length)) target[key] = m.value
}

type TextDamage =
  | { readonly kind: "none" | "pretty" | "bom" | "nul" | "big-number" }
  | { readonly kind: "truncate"; readonly at: number }
  | { readonly kind: "insert"; readonly at: number; readonly char: string }
  | { readonly kind: "duplicate-key"; readonly key: string; readonly value: unknown }
  | { readonly kind: "soup"; readonly text: string }
  | { readonly kind: "deep"; readonly depth: number }

const textDamage: fc.Arbitrary<TextDamage> = fc.oneof(
  { weight: 12, arbitrary: fc.record({ kind: fc.constant("none" as const) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constantFrom("pretty" as const, "bom" as const, "nul" as const) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("big-number" as const) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("truncate" as const), at: fc.nat() }) },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant("insert" as const),
      at: fc.nat(),
      char: fc.constantFrom("{", "}", "[", "]", ",", ":", '"', "\\", "0", "x", "\u0000", "\n", "\u2028", "\ud800")
    })
  },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant("duplicate-key" as const),
      key: fc.constantFrom("name", "vcpus", "disks", "mode"),
      value: garbage
    })
  },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant("soup" as const),
      text: fc.oneof(
        fc.string({ maxLength: 60 }),
        fc.string({ unit: "binary", maxLength: 60 }),
        fc.jsonValue({ maxDepth: 3 }).map((v) => JSON.stringify(v) ?? "")
      )
    })
  },
  {
    weight: 1,
    arbitrary: fc.record({ kind: fc.constant("deep" as const), depth: fc.integer({ min: 1000, max: 100_000 }) })
  }
)

export interface ConfigCase {
  readonly config: unknown
  readonly mutations: ReadonlyArray<ConfigMutation>
  readonly damage: TextDamage
}

export const configCase: fc.Arbitrary<ConfigCase> = fc.record({
  config: validConfig,
  mutations: fc.array(configMutation, { maxLength: 4 }),
  damage: textDamage
})

/** The JSON text a case stands for. */
export function configText(c: ConfigCase): string {
  const value = JSON.parse(JSON.stringify(c.config)) as Record<string, unknown>
  for (const m of c.mutations) mutate(value, m)
  const text = JSON.stringify(value)
  const d = c.damage
  switch (d.kind) {
    case "none":
      return text
    case "pretty":
      return JSON.stringify(value, null, 2)
    case "bom":
      return `\ufeff${text}`
    case "nul":
      return `${text}\u0000`
    case "big-number":
      return text.replace(/:(-?\d+)/, ":1e999")
    case "truncate":
      return text.slice(0, d.at % (text.length + 1))
    case "insert": {
      const at = d.at % (text.length + 1)
      return text.slice(0, at) + d.char + text.slice(at)
    }
    case "duplicate-key":
      // JSON.parse keeps the last of two equal keys: the first one is shadowed
      return `{${JSON.stringify(d.key)}:${JSON.stringify(d.value) ?? "null"},${text.slice(1)}`
    case "soup":
      return d.text
    case "deep":
      return `${"[".repeat(d.depth)}${"]".repeat(d.depth)}`
  }
}

// ---------------------------------------------------------------------------
// the check

/** Decode as `fibervisor boot` does and compare with the independent reading (see the header). */
export function checkConfigText(text: string): void {
  let parsed: { ok: true; value: unknown } | { ok: false }
  try {
    parsed = { ok: true, value: JSON.parse(text) }
  } catch {
    parsed = { ok: false }
  }
  let exit: Exit.Exit<unknown, unknown>
  try {
    exit = Effect.runSyncExit(decodeVmConfig(CONFIG_SOURCE, text))
  } catch (e) {
    throw new Error(`decodeVmConfig threw: ${e instanceof Error ? `${e.name}: ${e.message}` : String(e)}`)
  }
  const problems = parsed.ok ? schemaProblems(parsed.value) : [[]]
  const config = parsed.ok && isRecord(parsed.value) ? parsed.value : undefined
  const unbuilt = problems.length === 0 && !availableModes.includes(config?.mode as never)

  if (Exit.isSuccess(exit)) {
    must(parsed.ok, "accepted a text that is not JSON")
    must(
      problems.length === 0,
      `accepted a config the schema refuses at ${problems.map(formatPath).join(", ") || "the top"}`
    )
    must(!unbuilt, `accepted mode ${JSON.stringify(config?.mode)}, which is not built`)
    must(canonical(exit.value) === canonical(config), "the decoded config is not the parsed JSON")
  } else {
    const reason = exit.cause.reasons[0]
    must(
      exit.cause.reasons.length === 1 && reason !== undefined && Cause.isFailReason(reason),
      `decodeVmConfig did not fail with one typed error: ${Cause.pretty(exit.cause)}`
    )
    const e = (reason as Cause.Fail<unknown>).error
    must(e instanceof VmConfigError, `decodeVmConfig failed with something other than a VmConfigError: ${String(e)}`)
    const error = e as VmConfigError
    must(error.source === CONFIG_SOURCE, `the VmConfigError names source ${JSON.stringify(error.source)}`)
    must(error.message.trim().length > 0, "the VmConfigError has an empty message")
    must(
      problems.length > 0 || unbuilt,
      `refused a valid config with a built mode: ${JSON.stringify(error.message.slice(0, 300))}`
    )
    if (unbuilt)
      must(
        error.message.includes(`mode ${JSON.stringify(config?.mode)} is not built yet`),
        `a config with mode ${JSON.stringify(config?.mode)} refused with ${JSON.stringify(error.message.slice(0, 300))}`
      )
    for (const path of problems)
      if (path.length > 0)
        must(
          error.message.includes(`at ${formatPath(path)}`),
          `the refusal does not name ${formatPath(path)} (every problem is listed): ${JSON.stringify(error.message.slice(0, 500))}`
        )
  }
  // fibervisor boot then checks every disk's datastore name
  const disks = config?.disks
  if (Array.isArray(disks))
    for (const d of disks) if (isRecord(d) && typeof d.file === "string") checkNameProblems(d.file)
}

export const renderConfigCase = (c: ConfigCase): string => {
  const text = configText(c)
  const shown = text.length > 2000 ? `${text.slice(0, 2000)}... (${text.length} characters)` : text
  return `mutations: ${JSON.stringify(c.mutations, (_, v) => (typeof v === "string" && v.length > 80 ? `${v.slice(0, 80)}... (${v.length})` : v)).slice(0, 1500)}\ndamage: ${c.damage.kind}\ntext: ${JSON.stringify(shown)}`
}
