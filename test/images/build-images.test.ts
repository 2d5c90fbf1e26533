/**
 * The committed guest images are exactly what their sources build to with
 * Debian's nasm and ld (issue 7: `npm run build-images` fails otherwise).
 */
import { fileURLToPath } from "node:url"
import { describe, expect, it } from "@effect/vitest"
import { buildImage, listImageSources, sameBytes, staleGeneratedSources } from "../../scripts/images/build.ts"

const root = fileURLToPath(new URL("../..", import.meta.url))

describe("guest images", () => {
  const sources = listImageSources(root)
  it("there are images", () => expect(sources.map((s) => s.name)).toContain("hello"))
  it("generated sources (the cpu-selftest vectors) match their generator", () =>
    expect(staleGeneratedSources(root).map((g) => g.path)).toEqual([]))
  for (const source of sources) {
    it(`${source.name}: the committed ELF matches its source`, () => {
      const build = buildImage(root, source)
      expect(sameBytes(build.built, build.committed)).toBe(true)
    })
  }
})
