/**
 * Test images for the Multiboot loader, built at test time with the same
 * tools a guest author uses (Debian nasm, binutils ld -m elf_i386) and
 * cached by source hash in the OS temp dir, like test/hw/cpu/harness.ts:
 *
 *   elfImage(source, link)   nasm -f elf32, then ld -m elf_i386 with either
 *                            `-Ttext ADDR` or a linker script; symbols from nm
 *   flatImage(source)        nasm -f bin (the a.out-kludge images), via the
 *                            CPU harness's assembler
 *
 * The guest sources live here too: `readerBody` is a kernel that records
 * what the loader handed it (registers, the information structure, the
 * memory map, strings, modules, its own bss and data) into RESULT, then
 * HLTs. The tests read RESULT back after running it on a real hw/cpu Cpu.
 */
import { execFileSync } from "node:child_process"
import { createHash } from "node:crypto"
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { Result } from "effect"
import { flatMemory, noPorts, type PhysicalMemory } from "../../../hw/cpu/bus.ts"
import { Cpu } from "../../../hw/cpu/cpu.ts"
import { RunExit } from "../../../hw/cpu/state.ts"
import {
  applyLoad,
  type MultibootLoad,
  type MultibootOptions,
  planMultibootLoad
} from "../../../vmm/loader/multiboot.ts"
import { assemble } from "../../hw/cpu/harness.ts"

export interface BuiltImage {
  readonly bytes: Uint8Array
  readonly symbols: ReadonlyMap<string, number>
}

const cacheDir = join(tmpdir(), "fibervisor-loader-cache")
const memo = new Map<string, BuiltImage>()

const run = (cmd: string, args: Array<string>, cwd: string, source: string): void => {
  try {
    execFileSync(cmd, args, { cwd, stdio: "pipe" })
  } catch (e) {
    const stderr = (e as { stderr?: Buffer }).stderr?.toString() ?? String(e)
    throw new Error(`${cmd} ${args.join(" ")} failed:\n${stderr}\n--- source ---\n${source}`)
  }
}

/** How to link: `-Ttext` at an address, or a full linker script. */
export type Link = { readonly text: number } | { readonly script: string }

/** Assemble `source` as ELF32 and link it into an i386 executable (cached by source + link hash). */
export function elfImage(source: string, link: Link): BuiltImage {
  const key = JSON.stringify({ source, link })
  const hash = createHash("sha256").update(key).digest("hex").slice(0, 32)
  const hit = memo.get(hash)
  if (hit) return hit
  const elf = join(cacheDir, `${hash}.elf`)
  const syms = join(cacheDir, `${hash}.syms.json`)
  let result: BuiltImage
  if (existsSync(elf) && existsSync(syms)) {
    const table = JSON.parse(readFileSync(syms, "utf8")) as Array<[string, number]>
    result = { bytes: new Uint8Array(readFileSync(elf)), symbols: new Map(table) }
  } else {
    mkdirSync(cacheDir, { recursive: true })
    // a private work dir per attempt (test files run in parallel workers); results are renamed into place
    const work = join(cacheDir, `${hash}.${Math.random().toString(36).slice(2)}.tmp`)
    mkdirSync(work)
    try {
      writeFileSync(join(work, "k.asm"), source)
      run("nasm", ["-f", "elf32", "-w-all", "-o", "k.o", "k.asm"], work, source)
      if ("script" in link) writeFileSync(join(work, "k.ld"), link.script)
      const linkArgs = "text" in link ? ["-Ttext", `0x${link.text.toString(16)}`] : ["-T", "k.ld"]
      run("ld", ["-m", "elf_i386", "-e", "_start", ...linkArgs, "-o", "k.elf", "k.o"], work, source)
      const nm = execFileSync("nm", ["k.elf"], { cwd: work, encoding: "utf8" })
      const symbols = new Map<string, number>()
      for (const line of nm.split("\n")) {
        const m = /^([0-9a-f]{8}) \w (\S+)$/i.exec(line)
        if (m) symbols.set(m[2]!, Number.parseInt(m[1]!, 16))
      }
      result = { bytes: new Uint8Array(readFileSync(join(work, "k.elf"))), symbols }
      writeFileSync(join(work, "syms.json"), JSON.stringify([...symbols]))
      renameSync(join(work, "k.elf"), elf)
      renameSync(join(work, "syms.json"), syms)
    } finally {
      rmSync(work, { recursive: true, force: true })
    }
  }
  memo.set(hash, result)
  return result
}

/** A flat binary (nasm -f bin, with its own `org`). */
export const flatImage = (source: string): BuiltImage => assemble(source)

// ---------------------------------------------------------------------------
// guests

/** Where the reader guest writes what it saw (below the boot information, free memory). */
export const RESULT = 0x2000

/** Offsets in the RESULT record. */
export const R = {
  eax: 0x00,
  ebx: 0x04,
  esp: 0x08,
  eflags: 0x0c,
  cr0: 0x10,
  cs: 0x14,
  ds: 0x18,
  flags: 0x1c,
  memLower: 0x20,
  memUpper: 0x24,
  mmapCount: 0x28,
  mmapAvailable: 0x2c,
  modsCount: 0x30,
  mod0Start: 0x34,
  mod0End: 0x38,
  mod0First: 0x3c,
  bssOr: 0x40,
  data: 0x44,
  gdtrLimit: 0x48,
  gdtrBase: 0x4c,
  bootDevice: 0x50,
  done: 0x54,
  /** NUL-terminated copies (up to 63 bytes each) */
  cmdline: 0x100,
  loaderName: 0x140,
  mod0Cmdline: 0x180
} as const

export const DONE = 0x600df00d
export const DATA_VALUE = 0xc0ffee42
export const BSS_BYTES = 0x3000

/** The 12-byte Multiboot header (plus the kludge fields when given, spec 3.1). */
export const multibootHeader = (flags: number, kludge = "") => `
align 4
mb_header:
  dd 0x1BADB002
  dd ${flags}
  dd -(0x1BADB002 + ${flags})
${kludge}
`

/**
 * The reader kernel's code (32-bit, no header): `data` and `bss` open the
 * data and bss parts (ELF sections, or for a flat binary nothing and an
 * `absolute` block).
 */
export const readerBody = (parts: {
  readonly data: string
  readonly bss: string
  readonly end?: string
  /** code run after the record is complete, before the final HLT */
  readonly tail?: string
}) => `
RESULT equ ${RESULT}
global _start
_start:
  ; exactly what the loader handed over, before anything changes it (spec 3.2)
  mov [RESULT + ${R.eax}], eax
  mov [RESULT + ${R.ebx}], ebx
  mov [RESULT + ${R.esp}], esp
  mov esp, stack_top
  pushfd
  pop dword [RESULT + ${R.eflags}]
  mov eax, cr0
  mov [RESULT + ${R.cr0}], eax
  xor eax, eax
  mov ax, cs
  mov [RESULT + ${R.cs}], eax
  mov ax, ds
  mov [RESULT + ${R.ds}], eax
  sgdt [RESULT + ${R.gdtrLimit} + 2]
  movzx eax, word [RESULT + ${R.gdtrLimit} + 2]
  mov [RESULT + ${R.gdtrLimit}], eax
  ; reload every segment from the loader's GDT: proves GDTR and its descriptors
  jmp 0x08:.reloaded
.reloaded:
  mov ax, 0x10
  mov ds, ax
  mov es, ax
  mov fs, ax
  mov gs, ax
  mov ss, ax

  ; the information structure (spec 3.3)
  mov esi, [RESULT + ${R.ebx}]
  mov eax, [esi]
  mov [RESULT + ${R.flags}], eax
  mov eax, [esi + 4]
  mov [RESULT + ${R.memLower}], eax
  mov eax, [esi + 8]
  mov [RESULT + ${R.memUpper}], eax
  mov eax, [esi + 12]
  mov [RESULT + ${R.bootDevice}], eax

  ; walk the memory map as the spec says: next = this + size + 4
  mov edi, [esi + 48]
  mov edx, edi
  add edx, [esi + 44]
  xor ecx, ecx
  xor ebp, ebp
.mmap:
  cmp edi, edx
  jae .mmap_done
  inc ecx
  cmp dword [edi + 20], 1
  jne .mmap_next
  add ebp, [edi + 12]
.mmap_next:
  mov eax, [edi]
  lea edi, [edi + eax + 4]
  jmp .mmap
.mmap_done:
  mov [RESULT + ${R.mmapCount}], ecx
  mov [RESULT + ${R.mmapAvailable}], ebp

  ; strings
  push esi
  mov esi, [esi + 16]
  mov edi, RESULT + ${R.cmdline}
  call copy_string
  mov esi, [esp]
  mov esi, [esi + 64]
  mov edi, RESULT + ${R.loaderName}
  call copy_string
  pop esi

  ; modules
  mov ecx, [esi + 20]
  mov [RESULT + ${R.modsCount}], ecx
  test ecx, ecx
  jz .no_modules
  mov ebx, [esi + 24]
  mov eax, [ebx]
  mov [RESULT + ${R.mod0Start}], eax
  mov edx, [eax]
  mov [RESULT + ${R.mod0First}], edx
  mov eax, [ebx + 4]
  mov [RESULT + ${R.mod0End}], eax
  mov esi, [ebx + 8]
  mov edi, RESULT + ${R.mod0Cmdline}
  call copy_string
.no_modules:

  ; the loader zeroed the bss (RAM was garbage before the load) and loaded the data
  xor eax, eax
  mov esi, bss_area
  mov ecx, ${BSS_BYTES / 4}
.bss:
  or eax, [esi]
  add esi, 4
  loop .bss
  mov [RESULT + ${R.bssOr}], eax
  mov eax, [data_value]
  mov [RESULT + ${R.data}], eax

  mov dword [RESULT + ${R.done}], ${DONE}
${parts.tail ?? ""}
.halt:
  hlt
  jmp .halt

; copy the NUL-terminated string at esi to edi, at most 63 bytes + NUL
copy_string:
  mov ecx, 63
.next:
  lodsb
  stosb
  test al, al
  jz .out
  loop .next
  mov byte [edi], 0
.out:
  ret

${parts.data}
data_value: dd ${DATA_VALUE}
${parts.end ?? ""}
${parts.bss}
bss_area: resb ${BSS_BYTES}
  resb 4096
stack_top:
`

/** The reader as an ELF kernel: header first in .text, then code; .data and .bss after. */
export const readerElfSource = (flags = 0x3, tail = "") => `bits 32
section .text
${multibootHeader(flags)}
${readerBody({ data: "section .data", bss: "section .bss", tail })}
`

/** The reader as a flat a.out-kludge binary at `org` (flags bit 16: the header's address fields). */
export const readerKludgeSource = (org = 0x100000, flags = 0x10003) => `bits 32
org 0x${org.toString(16)}
load_start:
${multibootHeader(
  flags,
  `  dd mb_header        ; header_addr
  dd load_start       ; load_addr
  dd load_end         ; load_end_addr
  dd bss_end          ; bss_end_addr
  dd _start           ; entry_addr`
)}
${readerBody({ data: "", end: "load_end:", bss: "absolute load_end\nalignb 4" })}
bss_end:
`

// ---------------------------------------------------------------------------
// running a loaded image

/** Plan a load that must succeed (the test fails with the loader's message otherwise). */
export function mustPlan(image: Uint8Array, options: MultibootOptions): MultibootLoad {
  const plan = planMultibootLoad(image, options)
  if (Result.isFailure(plan)) throw new Error(`expected the image to load: ${plan.failure.message}`)
  return plan.success
}

export interface Booted {
  readonly load: MultibootLoad
  readonly mem: PhysicalMemory
  readonly cpu: Cpu
  readonly exit: RunExit
  u32(address: number): number
  /** The NUL-terminated string at `address`. */
  string(address: number): string
}

/**
 * Load `image` into fresh flat RAM that is first filled with garbage (0xCC),
 * through applyLoad with a plain copying writer, put the planned registers
 * on a real hw/cpu Cpu and run until it halts.
 */
export function bootOnCpu(image: Uint8Array, options: MultibootOptions): Booted {
  const load = mustPlan(image, options)
  const mem = flatMemory(options.ramBytes)
  mem.ram.fill(0xcc)
  mem.ram.fill(0, RESULT, RESULT + 0x200)
  applyLoad(load, (address, bytes) => mem.ram.set(bytes, address))
  const cpu = new Cpu(mem, noPorts)
  cpu.setState(load.registers)
  let exit: RunExit = RunExit.Budget
  for (let i = 0; i < 100 && exit === RunExit.Budget; i++) exit = cpu.run(10_000)
  const dv = new DataView(mem.ram.buffer)
  return {
    load,
    mem,
    cpu,
    exit,
    u32: (address) => dv.getUint32(address, true),
    string: (address) => {
      const end = mem.ram.indexOf(0, address)
      return new TextDecoder().decode(mem.ram.subarray(address, end))
    }
  }
}
