/**
 * Building the guest images (issue 7): each images/<name>/<name>.asm is
 * assembled with Debian's nasm (`-f elf32`, the shared guest library in
 * images/lib on the include path) and linked with `ld -m elf_i386` and
 * images/lib/link.ld into a Multiboot v1 ELF32, <name>.elf. A source with a
 * line `%ifdef PV` is also built paravirtualized (docs/pv.md): nasm -DPV
 * (images/lib/pv.inc instead of the Multiboot header and COM1) linked with
 * images/lib/link-pv.ld into a Xen PV ELF32, <name>-pv.elf, for `boot --mode
 * pv`. The built ELFs are committed next to their source so booting needs no
 * toolchain; `check` rebuilds and reports every image whose committed binary
 * differs from its source.
 */
import { execFileSync } from "node:child_process"
import { existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { basename, dirname, join } from "node:path"
import { selftestInclude, selftestVectors } from "./selftest-vectors.ts"

/** One image to build: `pv` builds the paravirtualized variant of the source (nasm -DPV, link-pv.ld). */
export interface ImageSource {
  readonly name: string
  readonly source: string
  readonly elf: string
  readonly pv?: boolean
}

export interface ImageBuild extends ImageSource {
  readonly built: Uint8Array
  readonly committed: Uint8Array | undefined
}

export const imagesDir = (root: string) => join(root, "images")

/** Sources generated at build time (committed like the ELFs, checked the same way). */
export const generatedSources = (root: string): Array<{ path: string; content: string }> => [
  { path: join(imagesDir(root), "cpu-selftest", "vectors.inc"), content: selftestInclude(selftestVectors()) }
]

/** The generated sources whose committed copy is missing or stale. */
export const staleGeneratedSources = (root: string): Array<{ path: string; content: string }> =>
  generatedSources(root).filter((g) => !existsSync(g.path) || readFileSync(g.path, "utf8") !== g.content)

export const writeGeneratedSources = (root: string): void => {
  for (const g of generatedSources(root)) writeFileSync(g.path, g.content)
}

/** A source that also builds as a PV image has a line `%ifdef PV`. */
export const hasPvVariant = (source: string): boolean => /^%ifdef PV[ \t]*\r?$/m.test(readFileSync(source, "utf8"))

/** Every image: images/<name>/<name>.elf, and images/<name>/<name>-pv.elf when its source has a PV variant. */
export const listImageSources = (root: string): Array<ImageSource> =>
  readdirSync(imagesDir(root), { withFileTypes: true })
    .filter((d) => d.isDirectory() && d.name !== "lib")
    .map((d) => ({
      name: d.name,
      source: join(imagesDir(root), d.name, `${d.name}.asm`),
      elf: join(imagesDir(root), d.name, `${d.name}.elf`)
    }))
    .filter((i) => existsSync(i.source))
    .flatMap(
      (i): Array<ImageSource> =>
        hasPvVariant(i.source)
          ? [i, { name: `${i.name}-pv`, source: i.source, elf: join(dirname(i.elf), `${i.name}-pv.elf`), pv: true }]
          : [i]
    )

/** Assemble and link one image; throws with the tool's message if nasm or ld fails. */
export const buildImage = (root: string, image: ImageSource): ImageBuild => {
  const work = mkdtempSync(join(tmpdir(), `fibervisor-image-${image.name}-`))
  const object = join(work, `${image.name}.o`)
  const output = join(work, `${image.name}.elf`)
  const lib = join(imagesDir(root), "lib")
  const defines = image.pv === true ? ["-D", "PV"] : []
  // relative paths from the image's folder: nasm records the source name in the ELF, so builds match on any machine
  execFileSync("nasm", ["-f", "elf32", ...defines, "-I", "../lib/", "-o", object, basename(image.source)], {
    cwd: dirname(image.source),
    stdio: ["ignore", "ignore", "pipe"]
  })
  execFileSync(
    "ld",
    [
      "-m",
      "elf_i386",
      "-T",
      join(lib, image.pv === true ? "link-pv.ld" : "link.ld"),
      "--build-id=none",
      "--no-warn-rwx-segments",
      "-nostdlib",
      "-o",
      output,
      object
    ],
    { stdio: ["ignore", "ignore", "pipe"] }
  )
  return {
    ...image,
    built: readFileSync(output),
    committed: existsSync(image.elf) ? readFileSync(image.elf) : undefined
  }
}

export const sameBytes = (a: Uint8Array, b: Uint8Array | undefined): boolean =>
  b !== undefined && a.length === b.length && a.every((x, i) => x === b[i])

export const writeImage = (build: ImageBuild): void => writeFileSync(build.elf, build.built)
