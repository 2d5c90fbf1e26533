/**
 * Fuzz suite `inputs` (issue 8): what the hypervisor reads from outside —
 * kernel images, VM configs, datastore file names — is rejected with a
 * clear typed error when malformed, nothing started and nothing written.
 * Three kinds of input:
 *
 *   image      the Multiboot loader (scripts/fuzz/inputs/loader.ts): mutated
 *              and truncated real images (images/hello and images/hostile
 *              ELFs, hello as an a.out-kludge image), byte soup around a
 *              valid header, and structured ELFs with overlapping PT_LOAD
 *              segments, p_paddr outside RAM, huge or 4 GiB-wrapping
 *              p_memsz, p_filesz > p_memsz, the entry outside the image or
 *              the file cut short. planMultibootLoad fails with a documented
 *              LoaderError whose message starts with its reason (for the
 *              structured ELFs: exactly the fault's reason) or returns a plan
 *              that keeps every promise; it never throws;
 *   config     VM config JSON texts (inputs/config.ts): decodeVmConfig either
 *              accepts exactly the configs the schema allows, unchanged, or
 *              fails with one VmConfigError naming the source and listing
 *              every wrong field; every disk name passes the datastore's
 *              check exactly when it is a plain name;
 *   datastore  create / open+write / write / read / delete sequences with
 *              random and path-traversal names on an in-memory datastore
 *              (inputs/datastore.ts): a bad name fails with DatastorePathError
 *              listing exactly nameProblems, with no block request and the
 *              backing disk byte-for-byte unchanged; good names do what a
 *              model of the directory says and write only where they should.
 */
import fc from "fast-check"
import type { FuzzSuite } from "../campaign.ts"
import { type ConfigCase, checkConfigText, configCase, configText, renderConfigCase } from "../inputs/config.ts"
import { checkDatastoreOps, type DatastoreOp, datastoreOps, renderDatastoreOps } from "../inputs/datastore.ts"
import {
  aoutFromElf,
  applyMutations,
  checkLayout,
  committedElf,
  type ElfLayout,
  elfHotRanges,
  elfLayout,
  type LoaderOptions,
  layoutImage,
  loaderOptions,
  loaderOutcome,
  type MutationPlan,
  multibootHeaderOffset,
  mutationPlan,
  type SoupFields,
  soupFields,
  soupImage
} from "../inputs/loader.ts"

interface BaseImage {
  readonly name: string
  readonly bytes: Uint8Array
  readonly headerAt: number
  readonly hot: ReadonlyArray<readonly [number, number]>
}

const elfBase = (name: string): BaseImage => {
  const bytes = committedElf(name)
  return { name: `${name}.elf`, bytes, headerAt: multibootHeaderOffset(bytes), hot: elfHotRanges(bytes) }
}

const hello = elfBase("hello")
const bases: ReadonlyArray<BaseImage> = [
  hello,
  elfBase("hostile"),
  { name: "hello (a.out kludge)", bytes: aoutFromElf(hello.bytes), headerAt: 0, hot: [[0, 32]] }
]

export type ImageCase =
  | { readonly form: "mutated"; readonly base: number; readonly plan: MutationPlan; readonly options: LoaderOptions }
  | { readonly form: "soup"; readonly fields: SoupFields; readonly options: LoaderOptions }
  | { readonly form: "layout"; readonly layout: ElfLayout }

export type InputCase =
  | { readonly kind: "image"; readonly image: ImageCase }
  | { readonly kind: "config"; readonly config: ConfigCase }
  | { readonly kind: "datastore"; readonly ops: ReadonlyArray<DatastoreOp> }

const mutated: fc.Arbitrary<ImageCase> = fc.nat(bases.length - 1).chain((base) =>
  fc.record({
    form: fc.constant("mutated" as const),
    base: fc.constant(base),
    plan: mutationPlan(bases[base]!.bytes.length, bases[base]!.hot),
    options: loaderOptions
  })
)

const imageCase: fc.Arbitrary<ImageCase> = fc.oneof(
  { weight: 3, arbitrary: mutated },
  {
    weight: 1,
    arbitrary: fc.record({ form: fc.constant("soup" as const), fields: soupFields, options: loaderOptions })
  },
  { weight: 2, arbitrary: fc.record({ form: fc.constant("layout" as const), layout: elfLayout }) }
)

export const inputCase: fc.Arbitrary<InputCase> = fc.oneof(
  { weight: 3, arbitrary: fc.record({ kind: fc.constant("image" as const), image: imageCase }) },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant("config" as const), config: configCase }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant("datastore" as const), ops: datastoreOps }) }
)

/** Check an image case; its outcome ("ok" or the loader's reason). */
export const imageOutcome = (c: ImageCase): string => {
  if (c.form === "mutated") {
    const base = bases[c.base]!
    return loaderOutcome(applyMutations(base.bytes, base.headerAt, c.plan), c.options)
  }
  if (c.form === "soup") return loaderOutcome(soupImage(c.fields), c.options)
  return checkLayout(c.layout)
}

const hexdump = (bytes: Uint8Array, limit = 256): string => {
  const lines: Array<string> = []
  for (let at = 0; at < Math.min(bytes.length, limit); at += 16)
    lines.push(
      `${at.toString(16).padStart(6, "0")}  ${[...bytes.subarray(at, Math.min(at + 16, limit))].map((b) => b.toString(16).padStart(2, "0")).join(" ")}`
    )
  return lines.join("\n")
}

const describeOptions = (o: LoaderOptions): string =>
  `RAM ${o.ramBytes / 1048576} MiB, cmdline ${JSON.stringify(o.cmdline)}, modules ${JSON.stringify(o.modules.map((m) => ({ bytes: m.bytes.length, cmdline: m.cmdline })))}`

const renderImage = (c: ImageCase): string => {
  if (c.form === "mutated") {
    const base = bases[c.base]!
    const edits = c.plan.edits.map((e) => `${e.kind} @0x${e.at.toString(16)} = 0x${e.value.toString(16)}`).join(", ")
    return `${base.name} (${base.bytes.length} bytes) with ${edits}${c.plan.fixChecksum ? ", checksum repaired" : ""}${c.plan.cut === null ? "" : `, cut to ${c.plan.cut} bytes`}\n${describeOptions(c.options)}`
  }
  if (c.form === "soup") {
    const image = soupImage(c.fields)
    const { noise, ...fields } = c.fields
    return `byte soup, ${image.length} bytes, header at 0x${c.fields.before.toString(16)}: ${JSON.stringify({ ...fields, noise: noise.length })}\n${hexdump(image.subarray(c.fields.before, c.fields.before + 32))}\n${describeOptions(c.options)}`
  }
  const { options, ...layout } = c.layout
  return `ELF layout, fault ${c.layout.fault}, ${layoutImage(c.layout).length} bytes: ${JSON.stringify(layout)}\n${describeOptions(options)}`
}

export const inputsSuite: FuzzSuite<InputCase> = {
  name: "inputs",
  description:
    "malformed kernel images, VM configs and datastore names (path traversal): a typed error, nothing started, nothing written",
  arbitrary: inputCase,
  ciRuns: 800,
  check: async (c) => {
    if (c.kind === "image") imageOutcome(c.image)
    else if (c.kind === "config") checkConfigText(configText(c.config))
    else checkDatastoreOps(c.ops)
  },
  render: (c) =>
    c.kind === "image"
      ? `image: ${renderImage(c.image)}`
      : c.kind === "config"
        ? `config: ${renderConfigCase(c.config)}`
        : `datastore operations:\n${renderDatastoreOps(c.ops)}`
}
