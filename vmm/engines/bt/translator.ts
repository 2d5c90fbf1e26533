/**
 * The binary translator: guest kernel code (32-bit, virtual CPL 0) to code
 * the pCPU runs at ring 1, one basic block at a time (Adams & Agesen 2006
 * section 3.1, "binary translation": x86 to x86, "IDENT" for most
 * instructions, rewrites for PC-relative control flow, callouts for the
 * rest). A block starts at a guest EIP, never leaves the guest page it
 * started on, and ends at the first control transfer or callout (or after
 * MAX_INSTRUCTIONS). Translations, with `g` = guest EIP of the instruction
 * and `n` = g + length:
 *
 *   IDENT            the same bytes                     (stands for g)
 *   jmp T            jmp rel32 -> exit(T)                (g)
 *   jcc T            jcc rel32 -> exit(T)                (g)
 *                    jmp rel32 -> exit(n)                (n: not taken)
 *   call T           push n                              (g)
 *                    jmp rel32 -> exit(T)                (T: the call done)
 *   ret              int CALLOUT -> return lookup         (g)
 *   loop/jecxz T     loopcc +5                           (g)
 *                    jmp rel32 -> exit(n)                (n)
 *                    jmp rel32 -> exit(T)                (T)
 *   anything else    int CALLOUT -> emulate(g)           (g)
 *   (block cut)      jmp rel32 -> exit(n)                (n)
 *
 * exit(X) is a 2-byte stub `int CALLOUT` whose callout looks X up
 * (translating it if needed) and, when X is on the same guest page as the
 * block, patches the jmp/jcc's rel32 to go straight to X's translation
 * (chaining), so the monitor is not entered again on that edge.
 */
import { type DecodedInstruction, decodeInstruction } from "./decode.ts"
import { type Block, CALLOUT_VECTOR, type TranslationCache } from "./translation-cache.ts"

export const MAX_INSTRUCTIONS = 64
/** TC bytes a block can take at most (every instruction 15 bytes, the tail, three stubs). */
export const MAX_BLOCK_BYTES = MAX_INSTRUCTIONS * 15 + 32

/** Guest code as the translator reads it (the guest's own mapping, supervisor fetch). */
export interface CodeReader {
  /** The guest frame linear page `linear` maps to for an instruction fetch, or undefined (not present, not RAM). */
  frameOf(linear: number): number | undefined
  /** The byte at guest-physical `gpa`. */
  byte(gpa: number): number
}

export type TranslateResult = Block | "full" | "unfetchable"

const buffer = new Uint8Array(15)

/** Translate the block at guest linear `eip` into `tc`. */
export function translateBlock(tc: TranslationCache, eip: number, code: CodeReader): TranslateResult {
  if (tc.free < MAX_BLOCK_BYTES) return "full"
  const page = eip & ~0xfff
  const firstGfn = code.frameOf(eip)
  if (firstGfn === undefined) return "unfetchable"
  const gfns = [firstGfn]
  const block = tc.begin(eip, gfns)
  const exits: Array<{ readonly patchSite: number; readonly target: number }> = []
  const jumpTo = (target: number): void => {
    tc.emit8(block, 0xe9)
    exits.push({ patchSite: block.tcEnd, target: target >>> 0 })
    tc.emit32(block, 0)
  }
  let g = eip >>> 0
  for (let count = 0; ; count++) {
    if (count === MAX_INSTRUCTIONS || (g & ~0xfff) !== page) {
      tc.mark(block, g)
      jumpTo(g)
      break
    }
    const fetched = fetch(code, g)
    if (fetched === 0) {
      if (count === 0) return "unfetchable"
      tc.mark(block, g)
      jumpTo(g)
      break
    }
    const insn: DecodedInstruction =
      fetched < 15 ? decodeInstruction(buffer.subarray(0, fetched), g) : decodeInstruction(buffer, g)
    if (insn.length > fetched) {
      // cut off by an unmapped page: let the monitor run it (the fault is the guest's)
      if (count === 0) return "unfetchable"
      tc.mark(block, g)
      jumpTo(g)
      break
    }
    block.guestInstructions++
    const offset = g & 0xfff
    block.ranges.push(firstGfn, offset, Math.min(4096, offset + insn.length))
    if (offset + insn.length > 4096) {
      if (!gfns.includes(secondGfn)) gfns.push(secondGfn)
      block.ranges.push(secondGfn, 0, offset + insn.length - 4096)
    }
    const n = (g + insn.length) >>> 0
    switch (insn.kind) {
      case "ident":
        tc.mark(block, g)
        for (let i = 0; i < insn.length; i++) tc.emit8(block, buffer[i]!)
        g = n
        continue
      case "jmp":
        tc.mark(block, g)
        jumpTo(insn.target)
        break
      case "jcc":
        tc.mark(block, g)
        tc.emit8(block, 0x0f)
        tc.emit8(block, 0x80 | insn.condition)
        exits.push({ patchSite: block.tcEnd, target: insn.target })
        tc.emit32(block, 0)
        tc.mark(block, n)
        jumpTo(n)
        break
      case "call":
        tc.mark(block, g)
        tc.emit8(block, 0x68)
        tc.emit32(block, n)
        tc.mark(block, insn.target)
        jumpTo(insn.target)
        break
      case "loop":
        tc.mark(block, g)
        tc.emit8(block, insn.condition)
        tc.emit8(block, 5)
        tc.mark(block, n)
        jumpTo(n)
        tc.mark(block, insn.target)
        jumpTo(insn.target)
        break
      case "ret":
        tc.mark(block, g)
        tc.emit8(block, 0xcd)
        tc.emit8(block, CALLOUT_VECTOR)
        tc.addCallout(block.tcEnd, { kind: "ret", guestEip: g, release: insn.target })
        break
      case "emulate":
        tc.mark(block, g)
        tc.emit8(block, 0xcd)
        tc.emit8(block, CALLOUT_VECTOR)
        tc.addCallout(block.tcEnd, { kind: "emulate", guestEip: g, mnemonic: insn.mnemonic })
        break
    }
    break
  }
  // the exit stubs: each rel32 first points at its own `int CALLOUT`
  for (const exit of exits) {
    const stub = block.tcEnd
    tc.mark(block, exit.target)
    tc.emit8(block, 0xcd)
    tc.emit8(block, CALLOUT_VECTOR)
    tc.addCallout(block.tcEnd, { kind: "jump", target: exit.target, patchSite: exit.patchSite, block })
    const rel = (stub - (exit.patchSite + 4)) | 0
    patch32(tc, block, exit.patchSite, rel)
  }
  tc.commit(block)
  return block
}

/** Write a rel32 inside a block being built (before commit). */
function patch32(tc: TranslationCache, block: Block, site: number, value: number): void {
  const end = block.tcEnd
  block.tcEnd = site
  tc.emit32(block, value)
  block.tcEnd = end
}

/** The frame of the page after the instruction's first, when `fetch` read into it. */
let secondGfn = -1

/** Read up to 15 code bytes at `g` into `buffer` (the second page's frame in `secondGfn`). Returns bytes read. */
function fetch(code: CodeReader, g: number): number {
  let gfn = code.frameOf(g)
  if (gfn === undefined) return 0
  let page = g & ~0xfff
  for (let i = 0; i < 15; i++) {
    const linear = (g + i) >>> 0
    if ((linear & ~0xfff) !== page) {
      page = linear & ~0xfff
      gfn = code.frameOf(linear)
      if (gfn === undefined) return i
      secondGfn = gfn
    }
    buffer[i] = code.byte(gfn * 4096 + (linear & 0xfff))
  }
  return 15
}
