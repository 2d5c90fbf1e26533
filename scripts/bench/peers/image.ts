/**
 * The `bench cpu` guest image (images/bench/bench.elf) and how the peers are
 * told what to run: the image holds a 16-byte block "FVBENCH\0", u32 kind,
 * u32 iterations; a run patches a copy. The guest prints "[" on COM1 right
 * before its loop and "]" right after it, then " eax=XXXXXXXX\r\n", and
 * exits through isa-debug-exit (port 0xF4) with 0. Every engine therefore
 * runs the same bytes, and the loop's own time is the time between the two
 * markers as each engine delivers them.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { fileURLToPath } from "node:url"

export const benchImagePath = fileURLToPath(new URL("../../../images/bench/bench.elf", import.meta.url))

export type LoopKind = "alu" | "memory"

export const loopKinds: ReadonlyArray<LoopKind> = ["alu", "memory"]

/** The value of the kind field, and instructions retired per loop iteration. */
export const loopInfo: Record<LoopKind, { readonly code: number; readonly perIteration: number }> = {
  alu: { code: 0, perIteration: 5 },
  memory: { code: 1, perIteration: 6 }
}

export const START_MARKER = 0x5b // "["
export const END_MARKER = 0x5d // "]"

const MAGIC = "FVBENCH\0"

export const readBenchImage = (): Uint8Array => readFileSync(benchImagePath)

/** Offset of the parameter block in `elf`; throws when the image has none (or two). */
export const paramsOffset = (elf: Uint8Array): number => {
  const magic = Buffer.from(MAGIC, "latin1")
  const bytes = Buffer.from(elf.buffer, elf.byteOffset, elf.byteLength)
  const at = bytes.indexOf(magic)
  if (at < 0) throw new Error("bench image: no FVBENCH parameter block")
  if (bytes.indexOf(magic, at + 1) >= 0) throw new Error("bench image: two FVBENCH parameter blocks")
  return at
}

/** A copy of `elf` set to run `kind` for `iterations` (1 .. 2^32 - 1) iterations. */
export const patchBenchImage = (elf: Uint8Array, kind: LoopKind, iterations: number): Uint8Array => {
  if (!Number.isInteger(iterations) || iterations < 1 || iterations > 0xffffffff)
    throw new Error(`bench image: iterations must be an integer in 1 .. 2^32-1, got ${iterations}`)
  const copy = Uint8Array.from(elf)
  const view = new DataView(copy.buffer)
  const at = paramsOffset(copy)
  view.setUint32(at + 8, loopInfo[kind].code, true)
  view.setUint32(at + 12, iterations, true)
  return copy
}

/** Write `bytes` to a fresh temp file (for engines that take a path); returns the path. */
export const writeTempImage = (bytes: Uint8Array, name = "bench.elf"): string => {
  const path = join(mkdtempSync(join(tmpdir(), "fibervisor-bench-")), name)
  writeFileSync(path, bytes)
  return path
}

/** Run `use` on a temp file holding `bytes`, then remove it. */
export const withTempImage = async <A>(bytes: Uint8Array, use: (path: string) => Promise<A>): Promise<A> => {
  const path = writeTempImage(bytes)
  try {
    return await use(path)
  } finally {
    rmSync(join(path, ".."), { recursive: true, force: true })
  }
}

/** The global symbols of an ELF32 little-endian image (its .symtab), by name. */
export const elfSymbols = (elf: Uint8Array): Map<string, number> => {
  const view = new DataView(elf.buffer, elf.byteOffset, elf.byteLength)
  const shoff = view.getUint32(0x20, true)
  const shentsize = view.getUint16(0x2e, true)
  const shnum = view.getUint16(0x30, true)
  const section = (i: number) => {
    const at = shoff + i * shentsize
    return {
      type: view.getUint32(at + 4, true),
      offset: view.getUint32(at + 16, true),
      size: view.getUint32(at + 20, true),
      link: view.getUint32(at + 24, true),
      entsize: view.getUint32(at + 36, true)
    }
  }
  const symbols = new Map<string, number>()
  for (let i = 0; i < shnum; i++) {
    const symtab = section(i)
    if (symtab.type !== 2) continue // SHT_SYMTAB
    const strtab = section(symtab.link)
    for (let at = symtab.offset; at + 16 <= symtab.offset + symtab.size; at += symtab.entsize || 16) {
      const nameAt = strtab.offset + view.getUint32(at, true)
      let end = nameAt
      while (elf[end] !== 0) end++
      const name = Buffer.from(elf.subarray(nameAt, end)).toString("latin1")
      if (name !== "") symbols.set(name, view.getUint32(at + 4, true))
    }
  }
  return symbols
}

/** The `length` bytes an ELF32 image loads at virtual address `address` (from its program headers). */
export const bytesAt = (elf: Uint8Array, address: number, length: number): Uint8Array => {
  const view = new DataView(elf.buffer, elf.byteOffset, elf.byteLength)
  const phoff = view.getUint32(0x1c, true)
  const phentsize = view.getUint16(0x2a, true)
  const phnum = view.getUint16(0x2c, true)
  for (let i = 0; i < phnum; i++) {
    const at = phoff + i * phentsize
    if (view.getUint32(at, true) !== 1) continue // PT_LOAD
    const offset = view.getUint32(at + 4, true)
    const vaddr = view.getUint32(at + 8, true)
    const filesz = view.getUint32(at + 16, true)
    if (address >= vaddr && address + length <= vaddr + filesz)
      return elf.subarray(offset + address - vaddr, offset + address - vaddr + length)
  }
  throw new Error(`bench image: nothing loaded at 0x${address.toString(16)} (+${length})`)
}

/** The guest's COM1 output for a completed run: the markers, then the loop's result. */
export const expectedResultLine = /^\[\] eax=[0-9a-f]{8}\r\n$/
