/**
 * The opcode table (SDM Vol. 2 Appendix A) and the disassembler built from it:
 * table invariants, known encodings, NASM as the oracle for text (assemble,
 * disassemble, reassemble: same bytes), objdump as the oracle for instruction
 * lengths on random encodings, and random bytes that must never throw.
 */
import { execFileSync } from "node:child_process"
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { afterAll, describe, expect, it } from "@effect/vitest"
import fc from "fast-check"
import { CostClass, costClassCount } from "../../../hw/cpu/cost-class.ts"
import { disassemble, disassembleAll } from "../../../hw/cpu/disasm.ts"
import {
  costClassTable,
  entryFor,
  isEntry,
  isEscape,
  isGroup,
  isPrefix,
  type OpcodeEntry,
  oneByte,
  twoByte
} from "../../../hw/cpu/opcodes.ts"

const bytesOf = (hex: string): Uint8Array =>
  Uint8Array.from((hex.replace(/\s+/g, "").match(/../g) ?? []).map((h) => Number.parseInt(h, 16)))
const text = (hex: string, mode32 = true, address = 0) => disassemble(bytesOf(hex), 0, address, mode32)

const allEntries = (): Array<OpcodeEntry> =>
  [...oneByte, ...twoByte].flatMap((slot) => {
    if (isGroup(slot)) return slot.group.filter((e) => e !== undefined)
    return isEntry(slot) ? [slot] : []
  })

describe("opcode table", () => {
  it("has 256 slots per map, prefixes at the SDM bytes and 0F as the escape", () => {
    expect(oneByte).toHaveLength(256)
    expect(twoByte).toHaveLength(256)
    const prefixes = oneByte.flatMap((slot, opcode) => (isPrefix(slot) ? [opcode] : []))
    expect(prefixes).toEqual([0x26, 0x2e, 0x36, 0x3e, 0x64, 0x65, 0x66, 0x67, 0xf0, 0xf2, 0xf3])
    expect(oneByte.findIndex(isEscape)).toBe(0x0f)
    for (const slot of [...oneByte, ...twoByte]) if (isGroup(slot)) expect(slot.group).toHaveLength(8)
  })

  it("spells every entry in the Appendix A notation, with modrm iff a ModRM operand", () => {
    const fixed = /^(AL|CL|DL|BL|AH|CH|DH|BH|DX|1|ES|CS|SS|DS|FS|GS|e(AX|CX|DX|BX|SP|BP|SI|DI))$/
    const coded = /^([EGI][bwvz]|[EG]d|Ew|Gw|Gz|J[bz]|Ap|M[apqsb]?|Sw|O[bv]|Cd|Dd|Rd|Rv\/Mw|Mw\/Rv|[XY][bvz]|Fv)$/
    for (const entry of allEntries()) {
      expect(entry.mnemonic).toMatch(/^[a-z][a-z0-9]*$/)
      for (const code of entry.operands) expect(code, entry.mnemonic).toMatch(fixed.test(code) ? /./ : coded)
      expect(entry.modrm).toBe(entry.operands.some((o) => /^[CDEGMRS][a-z]|^M$/.test(o)))
      expect(entry.cost).toBeLessThan(costClassCount)
    }
  })

  it("leaves x87 to esc and the SSE rows undefined", () => {
    for (let opcode = 0xd8; opcode <= 0xdf; opcode++) expect(entryFor(opcode, false, 0)?.mnemonic).toBe("esc")
    for (const opcode of [0x10, 0x17, 0x28, 0x2f, 0x50, 0x6f, 0x7f, 0xc2, 0xd0, 0xe7, 0xff])
      expect(twoByte[opcode]).toBeUndefined()
  })

  it("includes the undocumented aliases real CPUs accept", () => {
    const mnemonics = (opcode: number) => [0, 1, 2, 3, 4, 5, 6, 7].map((reg) => entryFor(opcode, false, reg)?.mnemonic)
    expect(mnemonics(0x82)).toEqual(mnemonics(0x80))
    expect(entryFor(0xd6, false, 0)?.mnemonic).toBe("salc")
    expect(entryFor(0xf1, false, 0)?.mnemonic).toBe("int1")
    expect(entryFor(0xf7, false, 1)?.mnemonic).toBe("test")
    for (const opcode of [0xc0, 0xc1, 0xd0, 0xd1, 0xd2, 0xd3]) expect(entryFor(opcode, false, 6)?.mnemonic).toBe("sal")
  })

  it("finds entries with entryFor: groups by ModRM.reg, nothing for prefixes, the escape or #UD", () => {
    expect(entryFor(0xf7, false, 6)).toMatchObject({ mnemonic: "div", cost: CostClass.Div, operands: ["Ev"] })
    expect(entryFor(0x01, true, 7)).toMatchObject({ mnemonic: "invlpg", cost: CostClass.System })
    expect(entryFor(0xc7, true, 1)?.mnemonic).toBe("cmpxchg8b")
    expect(entryFor(0x98, false, 0)).toMatchObject({ mnemonic16: "cbw", mnemonic32: "cwde" })
    expect(entryFor(0xe3, false, 0)).toMatchObject({ mnemonic32: "jecxz", sizeFromAddress: true })
    for (const [opcode, twoByteMap, reg] of [
      [0x66, false, 0],
      [0x0f, false, 0],
      [0xff, false, 7],
      [0xff, true, 0]
    ] as const)
      expect(entryFor(opcode, twoByteMap, reg)).toBeUndefined()
  })

  it("gives a cost class per opcode: prefixes, #UD, and the most common class of a group", () => {
    const table = costClassTable()
    expect(table).toHaveLength(512)
    expect(Math.max(...table)).toBeLessThan(costClassCount)
    expect([table[0x66], table[0xf3], table[0x0f]]).toEqual([CostClass.Prefix, CostClass.Prefix, CostClass.Prefix])
    expect([table[256 + 0xff], table[256 + 0x04]]).toEqual([CostClass.Invalid, CostClass.Invalid])
    expect([table[0x01], table[0xa5], table[0xee], table[0x9a]]).toEqual([
      CostClass.Alu,
      CostClass.String,
      CostClass.Io,
      CostClass.Far
    ])
    expect([table[0xf7], table[0xff], table[256 + 0xba], table[256 + 0x01]]).toEqual([
      CostClass.Alu,
      CostClass.Alu,
      CostClass.Bit,
      CostClass.System
    ])
  })
})

describe("disassemble: known encodings", () => {
  const cases32: ReadonlyArray<readonly [string, string]> = [
    ["01 d8", "add eax, ebx"],
    ["83 e4 f0", "and esp, 0xfffffff0"],
    ["c7 00 01 00 00 00", "mov dword [eax], 0x1"],
    ["8b 44 8b 10", "mov eax, [ebx+ecx*4+0x10]"],
    ["8b 45 f8", "mov eax, [ebp-0x8]"],
    ["8b 04 8d 00 10 00 00", "mov eax, [ecx*4+0x1000]"],
    ["a1 78 56 34 12", "mov eax, [0x12345678]"],
    ["64 a1 30 00 00 00", "mov eax, [fs:0x30]"],
    ["0f b6 01", "movzx eax, byte [ecx]"],
    ["d3 20", "shl dword [eax], cl"],
    ["f3 a4", "rep movsb"],
    ["f3 a6", "repe cmpsb"],
    ["f2 ae", "repne scasb"],
    ["66 a5", "movsw"],
    ["f0 87 08", "lock xchg [eax], ecx"],
    ["9a 78 56 00 00 34 12", "call far 0x1234:0x5678"],
    ["ff 18", "call far [eax]"],
    ["66 9c", "o16 pushf"],
    ["67 a4", "a16 movsb"],
    ["64 ac", "fs lodsb"],
    ["f3 90", "pause"],
    ["0f 20 c0", "mov eax, cr0"],
    ["0f 23 f8", "mov dr7, eax"],
    ["0f 00 c0", "sldt eax"],
    ["0f 01 38", "invlpg [eax]"],
    ["0f 1f 44 00 00", "nop dword [eax+eax+0x0]"],
    ["8c 18", "mov [eax], ds"],
    ["66 6a ff", "push word 0xffff"],
    ["d9 c1", "esc 0x8, st1"],
    ["dd 45 08", "esc 0x28, [ebp+0x8]"]
  ]
  it.each(cases32)("32-bit %s is %s", (hex, expected) => {
    expect(text(hex)).toEqual({ text: expected, length: bytesOf(hex).length })
  })

  const cases16: ReadonlyArray<readonly [string, string]> = [
    ["c7 40 10 34 12", "mov word [bx+si+0x10], 0x1234"],
    ["8b 46 00", "mov ax, [bp+0x0]"],
    ["8a 43 fe", "mov al, [bp+di-0x2]"],
    ["26 88 00", "mov [es:bx+si], al"],
    ["9a 78 56 34 12", "call far 0x1234:0x5678"],
    ["66 9a 78 56 00 00 34 12", "o32 call far 0x1234:0x5678"],
    ["66 01 d8", "add eax, ebx"],
    ["67 8b 04 58", "mov ax, [eax+ebx*2]"],
    ["66 cf", "iretd"],
    ["e3 fe", "jcxz 0x0"],
    ["67 e3 fd", "jecxz 0x0"]
  ]
  it.each(cases16)("16-bit %s is %s", (hex, expected) => {
    expect(text(hex, false)).toEqual({ text: expected, length: bytesOf(hex).length })
  })

  it("shows branch targets as absolute addresses, wrapped to 16 bits at operand size 16", () => {
    expect(text("75 fe", true, 0x1000).text).toBe("jnz 0x1000")
    expect(text("0f 85 fa ef ff ff", true, 0x2000).text).toBe("jnz 0x1000")
    expect(text("e8 fb ff ff ff", true, 0).text).toBe("call 0x0")
    expect(text("eb 20", false, 0xfff0).text).toBe("jmp 0x12")
    expect(text("e9 00 80", false, 0x9000).text).toBe("jmp 0x1003")
    expect(text("66 e9 00 00 01 00", false, 0x9000).text).toBe("jmp dword 0x19006")
    expect(text("66 e9 00 80", true, 0x9000).text).toBe("jmp word 0x1004")
  })

  it("turns undefined, register-where-memory and cut-off encodings into db with length 1", () => {
    for (const hex of ["0f ff", "0f 04", "8d c0", "ff ff", "fe 10", "8c f0", "c4 c0", "0f 01 c8", "c7 c8 00 00 00 00"])
      expect(text(hex), hex).toEqual({ text: `db 0x${hex.slice(0, 2)}`, length: 1 })
    for (const hex of ["b8 01 02", "0f", "66", "e8 00", "8b 44", "8b 04 8d 00 10 00"])
      expect(text(hex), hex).toEqual({ text: `db 0x${hex.slice(0, 2)}`, length: 1 })
    expect(text(`${"26".repeat(14)} 90`)).toEqual({ text: "es nop", length: 15 })
    expect(text(`${"26".repeat(15)} 90`)).toEqual({ text: "db 0x26", length: 1 })
    expect(disassemble(new Uint8Array(0), 0, 0, true).length).toBe(1)
  })

  it("lists a byte stream with addresses for failure messages", () => {
    expect(disassembleAll(bytesOf("55 89 e5 0f ff c3"), 0x100, true)).toEqual([
      "00000100: 55                    push ebp",
      "00000101: 89 e5                 mov ebp, esp",
      "00000103: 0f                    db 0x0f",
      "00000104: ff c3                 inc ebx"
    ])
    expect(disassembleAll(bytesOf("90 90 90"), 0, false, 2)).toHaveLength(2)
  })
})

describe("disassemble: random bytes", () => {
  it("never throws, consumes 1..15 bytes and reads nothing past what it consumed", () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 0, maxLength: 20 }), fc.boolean(), fc.nat(), (bytes, mode32, address) => {
        const result = disassemble(bytes, 0, address, mode32)
        expect(result.length).toBeGreaterThanOrEqual(1)
        expect(result.length).toBeLessThanOrEqual(15)
        if (result.text.startsWith("db ")) return
        expect(disassemble(bytes.subarray(0, result.length), 0, address, mode32)).toEqual(result)
        expect(disassemble(bytes.subarray(0, result.length - 1), 0, address, mode32).text).toMatch(/^db |^\(no/)
      }),
      { numRuns: 5000 }
    )
  })
})

// ---- oracles: nasm for the text, objdump for the lengths ----

const work = mkdtempSync(join(tmpdir(), "fibervisor-disasm-"))
afterAll(() => rmSync(work, { recursive: true, force: true }))

const nasm = (name: string, bits: 16 | 32, lines: ReadonlyArray<string>): Uint8Array => {
  const source = join(work, `${name}.asm`)
  writeFileSync(source, [`bits ${bits}`, ...lines, ""].join("\n"))
  execFileSync("nasm", ["-f", "bin", "-o", join(work, `${name}.bin`), source], { stdio: "pipe" })
  return new Uint8Array(readFileSync(join(work, `${name}.bin`)))
}

/** Assemble, disassemble, reassemble: same bytes and one line per source instruction. */
const roundTrip = (bits: 16 | 32, lines: ReadonlyArray<string>) => {
  const original = nasm(`source${bits}`, bits, lines)
  const listing = disassembleAll(original, 0, bits === 32)
  const texts: Array<string> = []
  for (let offset = 0; offset < original.length; ) {
    const { text, length } = disassemble(original, offset, offset, bits === 32)
    // NASM spells a direct far pointer without "far"; everything else is NASM syntax as printed.
    texts.push(text.replace(/ far (0x[0-9a-f]+:)/, " $1"))
    offset += length
  }
  const again = nasm(`again${bits}`, bits, texts)
  expect(Buffer.from(again).toString("hex"), listing.join("\n")).toBe(Buffer.from(original).toString("hex"))
  expect(listing, listing.join("\n")).toHaveLength(lines.length)
}

const source32 = `
add eax, ebx|add al, 0x12|add eax, 0x12345678|add byte [eax], 0x12|add dword [ebx+0x10], 0x12345678
add dword [esi], 0xffffff80|or cx, dx|adc [ecx+edx*2], bl|sbb esi, [edi-0x4]|and esp, 0xfffffff0
sub word [eax], 0x1|xor ah, ch|cmp byte [0x1234], 0x5|test eax, ecx|test byte [eax], 0x80|add ax, 0xfff0
inc ecx|dec word [ebx]|inc dx|push eax|pop ebp|push 0x12345678|push 0x12|push dword [eax+0x8]|pop dword [ecx]
push word 0x1234|push es|pop ds|push fs|pop gs|push cs|push ss|pop ss|pushad|popad|pushfd|popfd|pushaw|pushfw
imul eax, ecx, 0x12|imul eax, [ebx], 0x12345|imul ecx, edx|imul byte [eax]|mul ecx|div dword [esp+0x4]
idiv bl|neg eax|not byte [eax]|mov eax, [ebx+esi*4+0x100]|mov [ebp-0x8], eax|mov al, [0x12345678]
mov [0x1000], eax|mov ax, [es:0x10]|mov byte [eax], 0x1|mov word [ebx], 0x1234|mov ecx, 0x12345678
mov dl, 0x7f|mov es, ax|mov ax, ds|mov [eax], fs|mov eax, cs|mov ss, [ebx]|lea esi, [ebx+ecx*8+0x10]
lea eax, [ecx*4]|mov eax, [esp+0x4]|mov eax, [gs:esi+edi]|xchg eax, edx|xchg [eax], cl|xchg ecx, [ebx]
cbw|cwde|cwd|cdq|movsb|movsd|cmpsw|stosb|lodsd|scasb|rep movsd|repe cmpsb|repne scasb|rep stosw|fs lodsb
a16 movsb|insb|outsd|rep insw|shl eax, 1|shr byte [eax], cl|sar ecx, 0x5|rol word [ebx], 0x3|rcr edx, 1
rcl al, cl|ror eax, 0x10|ret|ret 0x4|retf|retf 0x8|o16 retf|leave|enter 0x8, 0x0|int 0x80|int3|into|iretd
int1|hlt|cmc|clc|stc|cli|sti|cld|std|nop|pause|wait|sahf|lahf|salc|xlatb|daa|das|aaa|aas|aam 0xa|aad 0x10
call 0x0|jmp 0x0|jz 0x0|jnz 0x300|jmp 0x2|jl 0x1000|loop 0x0|loope 0x0|loopne 0x0|jecxz 0x0|jcxz 0x0
call eax|jmp dword [eax]|call far [eax]|jmp far [ebx+0x4]|call 0x10:0x12345678|jmp 0x8:0x100|call word 0x20
in al, 0x60|in eax, dx|out dx, al|out 0x80, eax|bound eax, [ebx]|arpl [eax], cx|arpl ax, bx
les eax, [ebx]|lds esi, [ebp+0x8]|lss esp, [eax]|lfs eax, [ecx]|lgs bx, [edx]
lock add [eax], ecx|lock xchg [eax], ecx|lock cmpxchg [ebx], ecx|lock xadd [eax], eax|lock inc dword [eax]
sldt eax|str word [eax]|lldt ax|ltr word [eax]|verr ax|verw word [eax]|sgdt [eax]|sidt [eax]|lgdt [eax]
lidt [ebx+0x8]|smsw eax|smsw word [eax]|lmsw ax|invlpg [eax]|lar eax, cx|lsl eax, word [ebx]
clts|invd|wbinvd|ud2|wrmsr|rdtsc|rdmsr|rdpmc|cpuid|sysenter|sysexit
mov eax, cr0|mov cr3, eax|mov cr4, ecx|mov eax, dr6|mov dr7, eax|mov eax, cr2
cmovz eax, ecx|cmovnle ebx, [eax]|cmovb ax, [ecx]|setz al|setnbe byte [eax]
bt eax, ecx|bts [eax], ecx|btr dword [eax], 0x3|btc eax, 0x1f|bsf eax, ecx|bsr eax, [ebx]
shld eax, ebx, 0x4|shld [eax], ebx, cl|shrd eax, ebx, cl|shrd word [eax], bx, 0x2
movzx eax, byte [ebx]|movzx ecx, dx|movsx eax, bl|movsx ax, byte [ebx]|movsx eax, word [ecx]
cmpxchg8b [esi]|bswap eax|bswap edi|nop dword [eax]|es mov [ebp], eax|cs nop`

const source16 = `
add ax, bx|add eax, ebx|mov word [bx+si+0x10], 0x1234|mov al, [bp+di-0x2]|mov [0x1234], ax|mov ax, [bp]
mov dx, [si]|lea si, [bx+di+0x1234]|mov ecx, [eax+ebx*2]|mov [es:di], al|push ax|push 0x1234|push 0x12
push dword 0x12345678|pushf|pushfd|pusha|pushad|popa|iret|iretd|cbw|cwde|cwd|movsw|movsd|rep stosw|a32 lodsb
call 0x100|jmp 0x1234|jz 0x0|jnz 0x2000|call 0x1234:0x5678|jmp 0xf000:0xfff0|call far [bx]|jmp word [bx+0x2]
call dword 0x10|int 0x10|out dx, al|in ax, dx|retf|ret 0x2|loop 0x0|jcxz 0x0|jecxz 0x0|o32 retf
mov es, ax|mov ax, cs|lds si, [bx]|les di, [bp+0x4]|mov eax, cr0|mov cr0, eax|lgdt [0x1000]|lidt [bx]
shl ax, 1|shr byte [bx], cl|imul ax, bx, 0x12|movzx ax, byte [bx]|movzx eax, word [bx]|xchg ax, bx
enter 0x4, 0x0|leave|hlt|cli|sti|xlatb|es lodsb|test byte [bx+si], 0x1|sub sp, 0x10|add sp, 0xfff0
inc word [di]|dec cl|not word [bx+0x7f]|neg byte [bp+si-0x80]|push word [bx]|pop word [bx]|push cs|pop es`

const split = (source: string) =>
  source
    .trim()
    .split(/[|\n]/)
    .map((line) => line.trim())

describe("disassemble: NASM round trip", () => {
  it("32-bit: every listed instruction reassembles to the same bytes", () => roundTrip(32, split(source32)))
  it("16-bit: every listed instruction reassembles to the same bytes", () => roundTrip(16, split(source16)))
})

/** A deterministic xorshift32, so a failure reproduces. */
const random = (seed: number) => () => {
  seed ^= seed << 13
  seed ^= seed >>> 17
  seed ^= seed << 5
  return seed >>> 0
}

/** Random valid encodings from the table (at most one prefix per group), laid end to end. */
const randomStream = (mode32: boolean, count: number, next: () => number): Uint8Array => {
  const opcodes = [
    ...oneByte.flatMap((slot, op) => (isEntry(slot) || isGroup(slot) ? [[op]] : [])),
    ...twoByte.flatMap((slot, op) => (slot === undefined ? [] : [[0x0f, op]]))
  ].filter(([op]) => op !== undefined && (op < 0xd8 || op > 0xdf) && op !== 0x9b) // objdump merges x87 and FWAIT
  const prefixGroups = [[0x26, 0x2e, 0x36, 0x3e, 0x64, 0x65], [0x66], [0x67], [0xf0, 0xf2, 0xf3]]
  const out: Array<number> = []
  while (out.length < count * 8) {
    const opcode = opcodes[next() % opcodes.length] ?? []
    // objdump reads F2/F3 before 0F as SSE mandatory prefixes (a P6 ignores them on these opcodes).
    const groups = opcode[0] === 0x0f ? prefixGroups.slice(0, 3) : prefixGroups
    const prefixes = groups.flatMap((group) => (next() % 6 === 0 ? [group[next() % group.length] ?? 0] : []))
    const tail = Array.from({ length: 14 }, () => next() & 0xff)
    const candidate = Uint8Array.from([...prefixes, ...opcode, ...tail])
    const { text, length } = disassemble(candidate, 0, 0, mode32)
    if (!text.startsWith("db ")) out.push(...candidate.subarray(0, length))
  }
  return Uint8Array.from(out)
}

const objdumpStarts = (file: string, mode32: boolean): Array<number> => {
  const machine = mode32 ? ["-m", "i386"] : ["-m", "i8086"]
  const out = execFileSync("objdump", ["-D", "-b", "binary", ...machine, "--insn-width=16", file], { encoding: "utf8" })
  return out.split("\n").flatMap((line) => {
    const match = /^\s*([0-9a-f]+):\t/.exec(line)
    return match?.[1] === undefined ? [] : [Number.parseInt(match[1], 16)]
  })
}

describe("disassemble: instruction lengths against objdump", () => {
  it.each([true, false])("mode32=%s: random valid encodings split where objdump splits them", (mode32) => {
    const stream = randomStream(mode32, 3000, random(mode32 ? 0x1234567 : 0x7654321))
    const file = join(work, `random-${mode32 ? 32 : 16}.bin`)
    writeFileSync(file, stream)
    const ours: Array<number> = []
    for (let offset = 0; offset < stream.length; ) {
      ours.push(offset)
      offset += disassemble(stream, offset, offset, mode32).length
    }
    const theirs = objdumpStarts(file, mode32)
    const first = ours.findIndex((start, i) => theirs[i] !== start)
    const context = first < 0 ? "" : disassembleAll(stream.subarray(ours[first - 1] ?? 0), 0, mode32, 3).join("\n")
    expect(first, `first difference at instruction ${first}:\n${context}`).toBe(-1)
    expect(theirs).toHaveLength(ours.length)
  })
})
