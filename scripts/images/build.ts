/**
 * Building the guest images (issue 7): each images/<name>/<name>.asm is
 * assembled with Debian's nasm (`-f elf32`, the shared guest library in
 * images/lib on the include path) and linked with `ld -m elf_i386` and
 * images/lib/link.ld into a Multiboot v1 ELF32. The built ELF is committed
 * next to its source so booting needs no toolchain; `check` rebuilds and
 * reports every image whose committed binary differs from its source.
 */
import { execFileSync } from "node:child_process"
import { existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { selftestInclude, selftestVectors } from "./selftest-vectors.ts"

export interface ImageBuild {
  readonly name: string
  readonly source: string
  readonly elf: string
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

export const listImageSources = (root: string): Array<{ name: string; source: string; elf: string }> =>
  readdirSync(imagesDir(root), { withFileTypes: true })
    .filter((d) => d.isDirectory() && d.name !== "lib")
    .map((d) => ({
      name: d.name,
      source: join(imagesDir(root), d.name, `${d.name}.asm`),
      elf: join(imagesDir(root), d.name, `${d.name}.elf`)
    }))
    .filter((i) => existsSync(i.source))

/** Assemble and link one image; throws with the tool's message if nasm or ld fails. */
export const buildImage = (root: string, image: { name: string; source: string; elf: string }): ImageBuild => {
  const work = mkdtempSync(join(tmpdir(), `fibervisor-image-${image.name}-`))
  const object = join(work, `${image.name}.o`)
  const output = join(work, `${image.name}.elf`)
  const lib = join(imagesDir(root), "lib")
  // relative paths from the image's folder: nasm records the source name in the ELF, so builds match on any machine
  execFileSync("nasm", ["-f", "elf32", "-I", "../lib/", "-o", object, `${image.name}.asm`], {
    cwd: join(imagesDir(root), image.name),
    stdio: ["ignore", "ignore", "pipe"]
  })
  execFileSync(
    "ld",
    [
      "-m",
      "elf_i386",
      "-T",
      join(lib, "link.ld"),
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
