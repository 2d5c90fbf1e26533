/**
 * The binary translator at the level of its output (vmm/engines/bt/decode.ts,
 * translator.ts, translation-cache.ts), without a VM: guest code assembled
 * with NASM (`bits 32`), read through a fake CodeReader, translated into a
 * TranslationCache over a MonitorRegion built from plain memory.
 *
 *   - every sensitive, privileged, indirect or far instruction (the list of
 *     issue 10 and a few more) decodes as `emulate` with its full length,
 *     and its translation is `int 0xF1` (CD F1) registered as an `emulate`
 *     callout for that instruction's guest EIP, whether it starts the block
 *     or follows IDENT code;
 *   - IDENT instructions are copied byte for byte, each TC instruction start
 *     standing for its guest EIP;
 *   - direct control flow (jmp, jcc rel8/rel32, call rel32, loop/loope/
 *     loopne/jecxz) is rewritten exactly as translator.ts's header says,
 *     with exit stubs that are `jump` callouts and the TC -> guest EIP map
 *     (`guestEipAt`) at every TC instruction start;
 *   - a block ends at its page's end (an instruction straddling it is still
 *     translated, its second frame recorded), before an instruction cut off
 *     by an unmapped page, and after MAX_INSTRUCTIONS; "unfetchable" and
 *     "full" results.
 */
import { describe, expect, it } from "@effect/vitest"
import { decodeInstruction } from "../../../vmm/engines/bt/decode.ts"
import { TC_LINEAR } from "../../../vmm/engines/bt/monitor-region.ts"
import { type Block, CALLOUT_VECTOR, TranslationCache } from "../../../vmm/engines/bt/translation-cache.ts"
import { MAX_BLOCK_BYTES, MAX_INSTRUCTIONS, translateBlock } from "../../../vmm/engines/bt/translator.ts"
import { assemble } from "../../hw/cpu/harness.ts"
import { codeReader, fakeCache, fakeRegion, tcBytes } from "./harness.ts"

/** Where the code under translation sits (guest linear = guest physical in the fake reader). */
const AT = 0x401230

const asm = (source: string, org = AT): Uint8Array => assemble(`bits 32\norg 0x${org.toString(16)}\n${source}`).bytes

/** Translate `bytes` placed at `at` (the rest of memory reads as NOPs). */
const translate = (bytes: ArrayLike<number>, at = AT, unmapped: ReadonlyArray<number> = []) => {
  const { region, tc } = fakeCache()
  const result = translateBlock(tc, at, codeReader(at, bytes, unmapped))
  if (typeof result === "string") throw new Error(`translateBlock: ${result}`)
  return { region, tc, block: result, bytes: tcBytes(region, result.tcStart, result.tcEnd) }
}

const le32 = (v: number): Array<number> => [v & 0xff, (v >>> 8) & 0xff, (v >>> 16) & 0xff, (v >>> 24) & 0xff]
const rel32 = (bytes: ReadonlyArray<number>, at: number): number =>
  bytes[at]! | (bytes[at + 1]! << 8) | (bytes[at + 2]! << 16) | (bytes[at + 3]! << 24)

/** Every TC instruction start of the block -> the guest EIP it stands for. */
const eipMap = (tc: TranslationCache, block: Block): Array<[number, number | undefined]> =>
  block.tcAddrs.map((a) => [a - block.tcStart, tc.guestEipAt(a)])

// ---------------------------------------------------------------------------
// the sensitive instructions

/** [NASM source, mnemonic of the callout]. */
const sensitive: ReadonlyArray<readonly [string, string]> = [
  ["pushf", "pushf"],
  ["popf", "popf"],
  ["o16 pushf", "pushf"],
  ["cli", "cli"],
  ["sti", "sti"],
  ["sgdt [eax]", "sgdt"],
  ["sgdt [SCRATCH]", "sgdt"],
  ["sidt [ebx + 8]", "sidt"],
  ["sldt ax", "sldt"],
  ["sldt [eax]", "sldt"],
  ["smsw eax", "smsw"],
  ["smsw [eax + ecx * 4 + 0x10]", "smsw"],
  ["str ax", "str"],
  ["str [esi]", "str"],
  ["lar eax, ecx", "lar"],
  ["lar eax, [ebx]", "lar"],
  ["lsl edx, ecx", "lsl"],
  ["lsl eax, [ebx]", "lsl"],
  ["verr ax", "verr"],
  ["verr [eax]", "verr"],
  ["verw cx", "verw"],
  ["verw [eax]", "verw"],
  ["push cs", "push"],
  ["push ss", "push"],
  ["mov eax, cs", "mov"],
  ["mov ax, ss", "mov"],
  ["mov [ebx], ds", "mov"],
  ["mov [SCRATCH], es", "mov"],
  ["mov ecx, fs", "mov"],
  ["mov edx, gs", "mov"],
  ["mov ds, ax", "mov"],
  ["mov es, cx", "mov"],
  ["mov ss, [eax]", "mov"],
  ["mov fs, dx", "mov"],
  ["mov gs, [SCRATCH]", "mov"],
  ["pop ss", "pop"],
  ["pop ds", "pop"],
  ["pop es", "pop"],
  ["pop fs", "pop"],
  ["pop gs", "pop"],
  ["iret", "iret"],
  ["iretw", "iret"],
  ["mov cr0, eax", "mov"],
  ["mov eax, cr0", "mov"],
  ["mov cr3, ebx", "mov"],
  ["mov esi, cr3", "mov"],
  ["mov cr4, ecx", "mov"],
  ["mov edx, cr4", "mov"],
  ["mov eax, cr2", "mov"],
  ["mov dr0, eax", "mov"],
  ["mov dr7, ebx", "mov"],
  ["mov eax, dr6", "mov"],
  ["lgdt [eax]", "lgdt"],
  ["lgdt [SCRATCH]", "lgdt"],
  ["lidt [eax]", "lidt"],
  ["lldt ax", "lldt"],
  ["lldt [eax]", "lldt"],
  ["ltr ax", "ltr"],
  ["in al, 0x60", "in"],
  ["in ax, 0x60", "in"],
  ["in eax, 0x60", "in"],
  ["out 0x80, al", "out"],
  ["out 0x80, eax", "out"],
  ["in al, dx", "in"],
  ["in ax, dx", "in"],
  ["in eax, dx", "in"],
  ["out dx, al", "out"],
  ["out dx, ax", "out"],
  ["out dx, eax", "out"],
  ["insb", "insb"],
  ["insw", "ins"],
  ["insd", "ins"],
  ["outsb", "outsb"],
  ["outsd", "outs"],
  ["rep insb", "insb"],
  ["rep outsd", "outs"],
  ["es outsb", "outsb"],
  ["hlt", "hlt"],
  ["invlpg [eax]", "invlpg"],
  ["invlpg [SCRATCH]", "invlpg"],
  ["wrmsr", "wrmsr"],
  ["rdmsr", "rdmsr"],
  ["cpuid", "cpuid"],
  ["int 0x80", "int"],
  ["int 0", "int"],
  ["int3", "int3"],
  ["into", "into"],
  ["int1", "int1"],
  ["o16 ret", "ret"],
  ["call eax", "call"],
  ["call [eax]", "call"],
  ["call [SCRATCH]", "call"],
  ["jmp ebx", "jmp"],
  ["jmp [ebx + 4]", "jmp"],
  ["jmp [esi * 4 + SCRATCH]", "jmp"],
  ["call 0x18:0x12345678", "callf"],
  ["call far [eax]", "callf"],
  ["jmp 0x18:0x12345678", "jmpf"],
  ["jmp far [eax]", "jmpf"],
  ["retf", "retf"],
  ["retf 4", "retf"],
  ["mov eax, [cs:ebx]", "mov"],
  ["mov eax, [cs:SCRATCH]", "mov"],
  ["cs lodsb", "lodsb"],
  ["cs rep movsd", "movs"],
  ["add eax, [cs:ebx + 4 * ecx + 8]", "add"],
  // the other segment loads, privileged and CPL-sensitive instructions
  ["les eax, [ebx]", "les"],
  ["lds eax, [ebx]", "lds"],
  ["lss esp, [ebx]", "lss"],
  ["lfs eax, [ebx]", "lfs"],
  ["lgs eax, [ebx]", "lgs"],
  ["arpl ax, bx", "arpl"],
  ["clts", "clts"],
  ["lmsw ax", "lmsw"],
  ["sysenter", "sysenter"],
  ["sysexit", "sysexit"],
  ["invd", "invd"],
  ["wbinvd", "wbinvd"],
  ["rdpmc", "rdpmc"],
  ["ud2", "ud2"],
  // direct branches the translation would change: 16-bit operand size (EIP wraps), 16-bit address size (CX)
  // (NASM gives `o16 jmp near` a rel32, which the CPU does not read: the 16-bit forms are written out)
  ["db 0x66, 0xe9, 0x10, 0x00 ; jmp rel16", "jmp"],
  ["db 0x66, 0xeb, 0x10 ; jmp rel8, IP wraps at 64 KiB", "jmp"],
  ["db 0x66, 0x0f, 0x84, 0x10, 0x00 ; jz rel16", "jz"],
  ["db 0x66, 0x74, 0x10 ; jz rel8, operand size 16", "jz"],
  ["db 0x66, 0xe8, 0x10, 0x00 ; call rel16", "call"],
  ["a16 loop $ + 0x10", "loop"],
  ["a16 jcxz $ + 0x10", "jcxz"]
]

const SCRATCH_EQU = "SCRATCH equ 0x200000\n"

describe("near RET: a return-lookup callout (the return address is a guest EIP)", () => {
  for (const [source, release] of [
    ["ret", 0],
    ["ret 8", 8]
  ] as const) {
    it(source, () => {
      const bytes = asm(source)
      expect(decodeInstruction(bytes, AT)).toMatchObject({ kind: "ret", length: bytes.length, target: release })
      const alone = translate(bytes)
      expect(alone.bytes).toEqual([0xcd, CALLOUT_VECTOR])
      expect(alone.tc.callout(alone.block.tcStart + 2)).toEqual({ kind: "ret", guestEip: AT, release })
      expect(alone.tc.guestEipAt(alone.block.tcStart)).toBe(AT)
    })
  }
})

describe("sensitive instructions: decode as `emulate`, translate to an `int 0xF1` callout", () => {
  for (const [source, mnemonic] of sensitive) {
    it(source, () => {
      const bytes = asm(SCRATCH_EQU + source)
      expect(bytes.length).toBeGreaterThan(0)
      const decoded = decodeInstruction(bytes, AT)
      expect(decoded).toMatchObject({ kind: "emulate", length: bytes.length, mnemonic, endsBlock: true })

      // alone: the block is the callout
      const alone = translate(bytes)
      expect(alone.bytes).toEqual([0xcd, CALLOUT_VECTOR])
      expect(alone.block).toMatchObject({ guestEip: AT, guestInstructions: 1, gfns: [AT >>> 12], valid: true })
      expect(alone.tc.callout(alone.block.tcStart + 2)).toEqual({ kind: "emulate", guestEip: AT, mnemonic })
      expect(alone.tc.guestEipAt(alone.block.tcStart)).toBe(AT)
      // the guest bytes the block covers: the instruction, nothing after it
      expect(alone.block.ranges).toEqual([AT >>> 12, AT & 0xfff, (AT & 0xfff) + bytes.length])

      // after IDENT code: copied, then the callout for this instruction's own EIP
      const lead = asm("inc ebx\nadd eax, 0x12345678")
      const after = translate([...lead, ...bytes])
      const g = AT + lead.length
      expect(after.bytes).toEqual([...lead, 0xcd, CALLOUT_VECTOR])
      expect(after.tc.callout(after.block.tcStart + lead.length + 2)).toEqual({
        kind: "emulate",
        guestEip: g,
        mnemonic
      })
      expect(eipMap(after.tc, after.block)).toEqual([
        [0, AT],
        [1, AT + 1],
        [lead.length, g]
      ])
      expect(after.block.guestInstructions).toBe(3)
    })
  }
})

// ---------------------------------------------------------------------------
// IDENT

describe("IDENT: instructions safe at ring 1 are copied unchanged", () => {
  const ident = [
    "add eax, [ebx + 4 * ecx + 8]",
    "rep movsd",
    "rep stosb",
    "push ds",
    "push es",
    "push fs",
    "push gs",
    "mov eax, [fs:ebx]",
    "mov [ss:esp + 4], ecx",
    "lea esi, [edi + eax * 2 - 0x100]",
    "imul eax, ebx, 0x1234",
    "lock xadd [eax], ecx",
    "cmovz eax, [SCRATCH]",
    "setc al",
    "bswap edx",
    "pushad",
    "popad",
    "push dword [eax]",
    "pop dword [SCRATCH]",
    "enter 8, 0",
    "leave",
    "xchg eax, [ebx]",
    "movzx eax, byte [esi]",
    "bts dword [eax], 5",
    "shld eax, ebx, 3",
    "cmpxchg8b [edi]",
    "rdtsc",
    "lahf",
    "sahf",
    "cld",
    "std",
    "cmc",
    "push 0x12345678",
    "pop eax"
  ]
  for (const source of ident) {
    it(source, () => {
      const bytes = asm(SCRATCH_EQU + source)
      expect(decodeInstruction(bytes, AT)).toMatchObject({ kind: "ident", length: bytes.length, endsBlock: false })
    })
  }

  it("a run of IDENT instructions is copied byte for byte up to the callout that ends it", () => {
    const source = `${SCRATCH_EQU}${ident.join("\n")}\nhlt`
    const bytes = asm(source)
    const { tc, block, bytes: out } = translate(bytes)
    expect(out).toEqual([...bytes.subarray(0, bytes.length - 1), 0xcd, CALLOUT_VECTOR])
    expect(block.guestInstructions).toBe(ident.length + 1)
    // each TC instruction start stands for the same offset in the guest: the sizes are unchanged
    const starts: Array<number> = []
    for (let offset = 0; offset < bytes.length; ) {
      starts.push(offset)
      offset += decodeInstruction(bytes.subarray(offset, offset + 15), AT + offset).length
    }
    expect(eipMap(tc, block)).toEqual(starts.map((o) => [o, AT + o]))
    expect(tc.callout(block.tcEnd)).toEqual({ kind: "emulate", guestEip: AT + bytes.length - 1, mnemonic: "hlt" })
    // and offsets that are not instruction starts map to nothing
    expect(tc.guestEipAt(block.tcStart + 1)).toBe(starts.includes(1) ? AT + 1 : undefined)
  })
})

// ---------------------------------------------------------------------------
// direct control flow

describe("direct control flow is rewritten as the translator's header says", () => {
  const jumpCallout = (tc: TranslationCache, block: Block, after: number) => tc.callout(block.tcStart + after)

  for (const [source, length] of [
    ["jmp short target", 2],
    ["jmp near target", 5]
  ] as const) {
    it(`${source}: jmp rel32 -> exit(T)`, () => {
      const bytes = asm(`${source}\ntimes 0x20 nop\ntarget: nop`)
      const T = AT + length + 0x20
      expect(decodeInstruction(bytes, AT)).toMatchObject({ kind: "jmp", length, target: T })
      const { tc, block, bytes: out } = translate(bytes)
      // E9 rel32 to the stub right after it; the stub is `int 0xF1` -> jump(T) patching the rel32
      expect(out).toEqual([0xe9, ...le32(0), 0xcd, CALLOUT_VECTOR])
      expect(jumpCallout(tc, block, 7)).toEqual({ kind: "jump", target: T, patchSite: block.tcStart + 1, block })
      expect(eipMap(tc, block)).toEqual([
        [0, AT],
        [5, T]
      ])
      expect(block.guestInstructions).toBe(1)
    })
  }

  it("jmp backwards (rel8 and rel32): the target is below the block", () => {
    const bytes = asm("jmp short $ - 0x10\njmp near $ - 0x1000", AT)
    expect(decodeInstruction(bytes, AT)).toMatchObject({ kind: "jmp", target: AT + 2 - 0x12 })
    expect(decodeInstruction(bytes.subarray(2), AT + 2)).toMatchObject({ kind: "jmp", target: AT + 2 - 0x1000 })
    const { tc, block } = translate(bytes)
    expect(jumpCallout(tc, block, 7)).toMatchObject({ kind: "jump", target: AT - 0x10 })
  })

  for (const [source, length, condition] of [
    ["jz short target", 2, 0x4],
    ["jnz near target", 6, 0x5],
    ["jo short target", 2, 0x0],
    ["jg near target", 6, 0xf],
    ["ds jc short target", 3, 0x2] // a branch hint prefix: dropped, the condition kept
  ] as const) {
    it(`${source}: jcc rel32 -> exit(T), jmp rel32 -> exit(n)`, () => {
      const bytes = asm(`${source}\ntimes 0x40 nop\ntarget: nop`)
      const n = AT + length
      const T = n + 0x40
      expect(decodeInstruction(bytes, AT)).toMatchObject({ kind: "jcc", length, target: T, condition })
      const { tc, block, bytes: out } = translate(bytes)
      // 0F 8x rel32 (-> stub T at +11), E9 rel32 (-> stub n at +13), stub T, stub n
      expect(out).toEqual([
        0x0f,
        0x80 | condition,
        ...le32(5),
        0xe9,
        ...le32(2),
        0xcd,
        CALLOUT_VECTOR,
        0xcd,
        CALLOUT_VECTOR
      ])
      expect(jumpCallout(tc, block, 13)).toEqual({ kind: "jump", target: T, patchSite: block.tcStart + 2, block })
      expect(jumpCallout(tc, block, 15)).toEqual({ kind: "jump", target: n, patchSite: block.tcStart + 7, block })
      expect(eipMap(tc, block)).toEqual([
        [0, AT],
        [6, n],
        [11, T],
        [13, n]
      ])
    })
  }

  it("call rel32: push n, jmp rel32 -> exit(T)", () => {
    const bytes = asm("call target\ntimes 0x30 nop\ntarget: ret")
    const n = AT + 5
    const T = n + 0x30
    expect(decodeInstruction(bytes, AT)).toMatchObject({ kind: "call", length: 5, target: T })
    const { tc, block, bytes: out } = translate(bytes)
    expect(out).toEqual([0x68, ...le32(n), 0xe9, ...le32(0), 0xcd, CALLOUT_VECTOR])
    expect(jumpCallout(tc, block, 12)).toEqual({ kind: "jump", target: T, patchSite: block.tcStart + 6, block })
    // after the push the state is "at T, the call done"
    expect(eipMap(tc, block)).toEqual([
      [0, AT],
      [5, T],
      [10, T]
    ])
  })

  for (const [source, opcode] of [
    ["loop target", 0xe2],
    ["loope target", 0xe1],
    ["loopne target", 0xe0],
    ["jecxz target", 0xe3]
  ] as const) {
    it(`${source}: loopcc +5, jmp -> exit(n), jmp -> exit(T)`, () => {
      const bytes = asm(`target: nop\nnop\n${source}`, AT - 2)
      // translate from the loop instruction itself
      const loopBytes = bytes.subarray(2)
      const n = AT + 2
      const T = AT - 2
      expect(decodeInstruction(loopBytes, AT)).toMatchObject({ kind: "loop", length: 2, target: T, condition: opcode })
      const { tc, block, bytes: out } = translate(loopBytes)
      expect(out).toEqual([opcode, 5, 0xe9, ...le32(5), 0xe9, ...le32(2), 0xcd, CALLOUT_VECTOR, 0xcd, CALLOUT_VECTOR])
      expect(jumpCallout(tc, block, 14)).toEqual({ kind: "jump", target: n, patchSite: block.tcStart + 3, block })
      expect(jumpCallout(tc, block, 16)).toEqual({ kind: "jump", target: T, patchSite: block.tcStart + 8, block })
      expect(eipMap(tc, block)).toEqual([
        [0, AT],
        [2, n],
        [7, T],
        [12, n],
        [14, T]
      ])
    })
  }

  it("a branch after IDENT code: the copied bytes, then the rewrite, TC addresses shifted", () => {
    const bytes = asm("mov eax, 1\nadd ebx, eax\njz target\nnop\ntarget: nop")
    const { tc, block, bytes: out } = translate(bytes)
    expect(out.slice(0, 7)).toEqual([...bytes.subarray(0, 7)])
    expect(out.slice(7, 9)).toEqual([0x0f, 0x84])
    expect(eipMap(tc, block)).toEqual([
      [0, AT],
      [5, AT + 5],
      [7, AT + 7],
      [13, AT + 9],
      [18, AT + 10],
      [20, AT + 9]
    ])
  })

  it("chaining patches an exit's rel32 to the target block's start", () => {
    const { region, tc } = fakeCache()
    const bytes = asm("jmp target\ntimes 0x10 nop\ntarget: hlt")
    const reader = codeReader(AT, bytes)
    const first = translateBlock(tc, AT, reader) as Block
    const callout = tc.callout(first.tcStart + 7)
    expect(callout?.kind).toBe("jump")
    if (callout?.kind !== "jump") return
    const second = translateBlock(tc, callout.target, reader) as Block
    expect(second.tcStart).toBe(first.tcEnd)
    tc.chain(callout.patchSite, second)
    const out = tcBytes(region, first.tcStart, first.tcEnd)
    expect(rel32(out, 1)).toBe(second.tcStart - (first.tcStart + 5))
    expect(tc.guestEipAt(second.tcStart)).toBe(callout.target)
  })
})

// ---------------------------------------------------------------------------
// where blocks end

describe("block ends", () => {
  it("at the end of the page: the last instruction on it, then jmp -> exit(next page)", () => {
    const at = 0x401ff0 // 16 NOPs to the page end
    const { tc, block, bytes: out } = translate([], at)
    expect(block.guestInstructions).toBe(16)
    expect(out).toEqual([...new Array(16).fill(0x90), 0xe9, ...le32(0), 0xcd, CALLOUT_VECTOR])
    expect(tc.guestEipAt(block.tcStart + 16)).toBe(0x402000)
    expect(tc.callout(block.tcStart + 23)).toMatchObject({ kind: "jump", target: 0x402000 })
    expect(block.gfns).toEqual([0x401])
    expect(block.ranges).toEqual(Array.from({ length: 16 }, (_, i) => [0x401, 0xff0 + i, 0xff1 + i]).flat())
  })

  it("an instruction straddling the page end is translated, its second frame recorded; the block ends after it", () => {
    const at = 0x401ffe
    const bytes = asm("mov eax, 0x12345678\nnop", at) // 5 bytes: 2 on the first page, 3 on the next
    const { tc, block, bytes: out } = translate(bytes, at)
    expect(out).toEqual([...bytes.subarray(0, 5), 0xe9, ...le32(0), 0xcd, CALLOUT_VECTOR])
    expect(block.gfns).toEqual([0x401, 0x402])
    expect(block.ranges).toEqual([0x401, 0xffe, 0x1000, 0x402, 0, 3])
    expect(tc.callout(block.tcEnd)).toMatchObject({ kind: "jump", target: 0x402003 })
    // the code bitmap covers both frames' bytes
    expect(tc.overlapsCode(0x402, 0x402002, 1)).toBe(true)
    expect(tc.overlapsCode(0x402, 0x402003, 1)).toBe(false)
    expect(tc.overlapsCode(0x401, 0x401ffd, 1)).toBe(false)
    expect(tc.overlapsCode(0x401, 0x401fff, 1)).toBe(true)
  })

  it("an instruction cut off by an unmapped page is never copied: the monitor runs it (its #PF is the guest's)", () => {
    const at = 0x401ffd
    const bytes = asm("nop\nmov eax, 0x12345678", at)
    const { tc, block, bytes: out } = translate(bytes, at, [0x402000])
    expect(out[0]).toBe(0x90)
    expect(block.gfns).toEqual([0x401])
    // the partial MOV (B8 78 on this page) is not in the TC: what stands for 0x401ffe is a callout to the
    // monitor, either an exit to it (the block cut before it) or an emulate callout for it
    expect(out.slice(1, 3)).not.toEqual([0xb8, 0x78])
    expect(tc.guestEipAt(block.tcStart + 1)).toBe(0x401ffe)
    const callouts = [...Array(out.length + 1).keys()].map((i) => tc.callout(block.tcStart + i)).filter((c) => c)
    expect(callouts).toHaveLength(1)
    const callout = callouts[0]!
    expect(callout.kind === "emulate" ? callout.guestEip : callout.kind === "jump" ? callout.target : -1).toBe(0x401ffe)
  })

  it("a first instruction that cannot be fetched: unfetchable (or, when only its tail is unmapped, emulated)", () => {
    const { region, tc } = fakeCache()
    expect(translateBlock(tc, 0x402000, codeReader(0x402000, [], [0x402000]))).toBe("unfetchable")
    // nothing was committed
    expect(tc.stats.blocks_translated).toBe(0)
    expect(tc.free).toBe(64 * 1024)
    const bytes = asm("mov eax, 0x12345678", 0x401ffe)
    const result = translateBlock(tc, 0x401ffe, codeReader(0x401ffe, bytes, [0x402000]))
    if (typeof result !== "string") {
      expect(tcBytes(region, result.tcStart, result.tcEnd)).toEqual([0xcd, CALLOUT_VECTOR])
      expect(tc.callout(result.tcStart + 2)).toMatchObject({ kind: "emulate", guestEip: 0x401ffe })
    }
  })

  it(`after MAX_INSTRUCTIONS (${MAX_INSTRUCTIONS}) instructions: jmp -> exit(the next one)`, () => {
    const at = 0x401000
    const { tc, block, bytes: out } = translate([], at)
    expect(block.guestInstructions).toBe(MAX_INSTRUCTIONS)
    expect(out).toEqual([...new Array(MAX_INSTRUCTIONS).fill(0x90), 0xe9, ...le32(0), 0xcd, CALLOUT_VECTOR])
    expect(tc.guestEipAt(block.tcStart + MAX_INSTRUCTIONS)).toBe(at + MAX_INSTRUCTIONS)
    expect(tc.callout(block.tcEnd)).toMatchObject({ kind: "jump", target: at + MAX_INSTRUCTIONS })
    expect(tc.stats).toMatchObject({ blocks_translated: 1, guest_instructions_translated: MAX_INSTRUCTIONS })
  })

  it("a TC with less than MAX_BLOCK_BYTES free is full; blocks are allocated upward from TC_LINEAR", () => {
    const region = fakeRegion(4096)
    const tc = new TranslationCache(region)
    const blocks: Array<Block> = []
    for (;;) {
      const at = 0x401000 + blocks.length * 0x1000
      const result = translateBlock(tc, at, codeReader(at, []))
      if (result === "full") break
      if (typeof result === "string") throw new Error(result)
      blocks.push(result)
    }
    expect(tc.free).toBeLessThan(MAX_BLOCK_BYTES)
    expect(blocks.length).toBe(Math.floor((4096 - MAX_BLOCK_BYTES) / 71) + 1) // 64 NOPs, jmp rel32, stub
    expect(blocks[0]!.tcStart).toBe(TC_LINEAR)
    for (let i = 1; i < blocks.length; i++) expect(blocks[i]!.tcStart).toBe(blocks[i - 1]!.tcEnd)
    for (const block of blocks) expect(tc.blockAt(block.tcEnd - 1)).toBe(block)
    // a flush empties it: the next block starts over at TC_LINEAR
    expect(tc.flush()).toEqual(blocks.map((b) => b.gfns[0]))
    const again = translateBlock(tc, AT, codeReader(AT, [0xf4])) as Block
    expect(again.tcStart).toBe(TC_LINEAR)
    expect(tc.guestEipAt(blocks[1]!.tcStart)).toBeUndefined()
  })
})
