/**
 * The Multiboot loader on real images (GNU Multiboot Specification 0.6.96):
 * an ELF32 kernel linked by ld at 1 MiB, the same kernel as an a.out-kludge
 * flat binary (3.1.3), and a higher-half ELF whose entry is translated to its
 * physical address. For each: the load plan (addresses, bss zeroing, entry),
 * the boot information bytes (3.3: flags, mem_lower/upper, the memory map,
 * strings, modules), the registers (3.2); then the image runs on a real
 * hw/cpu Cpu from the planned registers, reads EAX/EBX and the information
 * structure like a kernel does, and the test checks what it saw.
 */
import { describe, expect, it } from "@effect/vitest"
import { RunExit } from "../../../hw/cpu/state.ts"
import {
  BOOT_INFO_BASE,
  GDT_ADDRESS,
  InfoFlag,
  MBI_ADDRESS,
  MBI_SIZE,
  MemoryType,
  MMAP_ADDRESS,
  MMAP_ENTRY_SIZE,
  MODULE_LIST_ADDRESS
} from "../../../vmm/loader/boot-info.ts"
import { INITIAL_ESP, MULTIBOOT_BOOTLOADER_MAGIC } from "../../../vmm/loader/machine-state.ts"
import { applyLoad, PAGE_SIZE } from "../../../vmm/loader/multiboot.ts"
import {
  BSS_BYTES,
  bootOnCpu,
  DATA_VALUE,
  DONE,
  elfImage,
  flatImage,
  mustPlan,
  R,
  RESULT,
  readerElfSource,
  readerKludgeSource
} from "./images.ts"

const RAM = 8 << 20
const MIB = 0x100000

const readerElf = () => elfImage(readerElfSource(), { text: MIB })
const readerFlat = () => flatImage(readerKludgeSource())

const u32At = (bytes: Uint8Array, offset: number) =>
  new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getUint32(offset, true)

/** Guest memory after applying `load` to zeroed RAM (for reading the info block back). */
const memoryAfter = (load: ReturnType<typeof mustPlan>) => {
  const ram = new Uint8Array(RAM)
  applyLoad(load, (address, bytes) => ram.set(bytes, address))
  const dv = new DataView(ram.buffer)
  const cstr = (at: number) => new TextDecoder().decode(ram.subarray(at, ram.indexOf(0, at)))
  return { ram, u32: (at: number) => dv.getUint32(at, true), cstr }
}

describe("the boot-information area (boot-info.ts)", () => {
  it("is laid out without overlaps: mmap < MBI < GDT < module list, all below the initial stack's top", () => {
    expect(INITIAL_ESP).toBeLessThanOrEqual(BOOT_INFO_BASE)
    expect(MMAP_ADDRESS).toBe(BOOT_INFO_BASE)
    expect(MMAP_ADDRESS + 4 * MMAP_ENTRY_SIZE).toBeLessThanOrEqual(MBI_ADDRESS)
    expect(MBI_ADDRESS + MBI_SIZE).toBeLessThanOrEqual(GDT_ADDRESS)
    expect(GDT_ADDRESS + 5 * 8).toBeLessThanOrEqual(MODULE_LIST_ADDRESS)
  })
})

describe("planning an ELF32 kernel (ld -Ttext 0x100000)", () => {
  it("copies each PT_LOAD to p_paddr, zeroes p_memsz - p_filesz, and enters at e_entry", () => {
    const { bytes, symbols } = readerElf()
    const load = mustPlan(bytes, { ramBytes: RAM })
    expect(load.format).toBe("elf32")
    expect(load.entry).toBe(symbols.get("_start"))
    // ld's default layout: a headers-only segment just below 1 MiB, text at 1 MiB, data + bss after
    expect(load.kernel.segments.map((s) => s.address)).toEqual([0xff000, MIB, symbols.get("data_value")])
    const text = load.writes.find((w) => w.address === MIB)!
    expect(u32At(text.bytes, 0)).toBe(0x1badb002) // the header is the first thing in .text
    expect(load.header.offset).toBe(0x1000)
    // the bss: one zero range right after .data's file bytes, as long as the guest's .bss
    expect(load.zero).toEqual([{ address: symbols.get("data_value")! + 4, length: BSS_BYTES + 4096 }])
    expect(load.kernel.end).toBe(symbols.get("stack_top"))
    // the plan owns copies, not views into the caller's image (a Node Buffer's slice() would be a view)
    const buffer = Buffer.from(bytes)
    for (const w of mustPlan(buffer, { ramBytes: RAM }).writes) expect(w.bytes.buffer).not.toBe(buffer.buffer)
    for (const w of load.writes) expect(w.bytes.buffer).not.toBe(bytes.buffer)
  })

  it("sets up the registers of spec 3.2", () => {
    const load = mustPlan(readerElf().bytes, { ramBytes: RAM })
    const r = load.registers
    expect(r.eax).toBe(MULTIBOOT_BOOTLOADER_MAGIC)
    expect(r.ebx).toBe(MBI_ADDRESS)
    expect(r.eip).toBe(load.entry)
    expect(r.esp).toBe(INITIAL_ESP)
    expect(r.cr0 & 1).toBe(1) // PE
    expect(r.cr0 >>> 31).toBe(0) // PG
    expect(r.eflags & ((1 << 9) | (1 << 17))).toBe(0) // IF, VM
    expect(r.cs).toEqual({ selector: 0x08, base: 0, limit: 0xffffffff, access: 0xc09b })
    for (const seg of [r.ds, r.es, r.fs, r.gs, r.ss])
      expect(seg).toEqual({ selector: 0x10, base: 0, limit: 0xffffffff, access: 0xc093 })
    expect(r.a20).toBe(true)
    expect(r.gdtr).toEqual({ base: GDT_ADDRESS, limit: 0x27 })
    expect(r.idtr.limit).toBe(0)
  })

  it("builds the information structure, memory map and strings of spec 3.3 at QEMU's addresses", () => {
    const load = mustPlan(readerElf().bytes, { ramBytes: RAM, cmdline: "console=ttyS0 quiet" })
    const m = memoryAfter(load)
    const mbi = (offset: number) => m.u32(MBI_ADDRESS + offset)
    expect(load.info.address).toBe(0x9500)
    const flags = mbi(0)
    expect(flags).toBe(0x24f)
    for (const bit of [InfoFlag.Memory, InfoFlag.BootDevice, InfoFlag.Cmdline, InfoFlag.Modules, InfoFlag.MemoryMap])
      expect(flags & bit).toBe(bit)
    expect(flags & InfoFlag.BootLoaderName).toBe(InfoFlag.BootLoaderName)
    expect(mbi(4)).toBe(639) // mem_lower: 640 KiB less QEMU's 1 KiB EBDA
    expect(mbi(8)).toBe((RAM - MIB) / 1024) // mem_upper
    expect(mbi(12)).toBe(0x8000ffff) // boot_device, QEMU's constant
    expect(m.cstr(mbi(16))).toBe("console=ttyS0 quiet")
    expect(mbi(20)).toBe(0) // mods_count
    expect(mbi(24)).toBe(MODULE_LIST_ADDRESS)
    expect(mbi(44)).toBe(4 * 24) // mmap_length
    expect(mbi(48)).toBe(MMAP_ADDRESS)
    expect(m.cstr(mbi(64))).toBe("fibervisor")
    for (const off of [28, 32, 36, 40, 52, 56, 60, 68, 72, 76, 80, 84, 88, 92, 96, 100, 104, 108, 112])
      expect(mbi(off)).toBe(0)

    // the memory map, each entry {size = 20, base_addr, length, type}, walked as the spec says
    const entries: Array<[number, number, number]> = []
    for (let at = mbi(48); at < mbi(48) + mbi(44); at += m.u32(at) + 4) {
      expect(m.u32(at)).toBe(20)
      expect(m.u32(at + 8)).toBe(0) // base_addr high
      expect(m.u32(at + 16)).toBe(0) // length high
      entries.push([m.u32(at + 4), m.u32(at + 12), m.u32(at + 20)])
    }
    expect(entries).toEqual([
      [0, 0x9fc00, MemoryType.Available],
      [0x9fc00, 0x400, MemoryType.Reserved],
      [0xf0000, 0x10000, MemoryType.Reserved],
      [MIB, RAM - MIB, MemoryType.Available]
    ])
    expect(load.info.mmap.entries.map((e) => [e.base, e.length, e.type])).toEqual(entries)

    // the GDT: QEMU's table (with the accessed bit set), null / code32 / data32 / code16 / data16
    const gdt = Array.from({ length: 10 }, (_, i) => m.u32(GDT_ADDRESS + i * 4))
    expect(gdt).toEqual([
      0, 0, 0x0000ffff, 0x00cf9b00, 0x0000ffff, 0x00cf9300, 0x0000ffff, 0x00009f00, 0x0000ffff, 0x9300
    ])
    // everything lives in [0x9000, end) and end is what the plan says
    expect(load.info.area.start).toBe(BOOT_INFO_BASE)
    expect(load.writes.find((w) => w.address === BOOT_INFO_BASE)!.bytes.length).toBe(
      load.info.area.end - BOOT_INFO_BASE
    )
  })

  it("loads modules page-aligned after the kernel, with their strings in the module list", () => {
    const image = readerElf()
    const a = new Uint8Array(5000).map((_, i) => i & 0xff)
    const b = new Uint8Array([1, 2, 3])
    const empty = new Uint8Array(0)
    const load = mustPlan(image.bytes, {
      ramBytes: RAM,
      modules: [
        { bytes: a, cmdline: "initrd.img root=/dev/ram0" },
        { bytes: b, cmdline: "b" },
        { bytes: empty, cmdline: "" }
      ]
    })
    const kernelEndPage = Math.ceil(load.kernel.end / PAGE_SIZE) * PAGE_SIZE
    expect(load.modules.map((x) => [x.start, x.end])).toEqual([
      [kernelEndPage, kernelEndPage + 5000],
      [kernelEndPage + 2 * PAGE_SIZE, kernelEndPage + 2 * PAGE_SIZE + 3],
      [kernelEndPage + 3 * PAGE_SIZE, kernelEndPage + 3 * PAGE_SIZE]
    ])
    const m = memoryAfter(load)
    expect(m.u32(MBI_ADDRESS + 20)).toBe(3)
    const list = m.u32(MBI_ADDRESS + 24)
    const mods = [0, 1, 2].map((i) => ({
      start: m.u32(list + i * 16),
      end: m.u32(list + i * 16 + 4),
      cmdline: m.cstr(m.u32(list + i * 16 + 8)),
      reserved: m.u32(list + i * 16 + 12)
    }))
    expect(mods).toEqual([
      { start: kernelEndPage, end: kernelEndPage + 5000, cmdline: "initrd.img root=/dev/ram0", reserved: 0 },
      { start: kernelEndPage + 0x2000, end: kernelEndPage + 0x2003, cmdline: "b", reserved: 0 },
      { start: kernelEndPage + 0x3000, end: kernelEndPage + 0x3000, cmdline: "", reserved: 0 }
    ])
    expect([...m.ram.subarray(mods[0]!.start, mods[0]!.end)]).toEqual([...a])
    expect([...m.ram.subarray(mods[1]!.start, mods[1]!.end)]).toEqual([1, 2, 3])
  })

  it("a kernel below the boot information: modules step over it and over the EBDA/VGA/BIOS range", () => {
    const low = flatImage(`bits 32
org 0x1000
start:
  dd 0x1BADB002, 0x10001, -(0x1BADB002 + 0x10001)
  dd start, start, end, 0, entry
entry:
  hlt
end:
`).bytes
    const load = mustPlan(low, {
      ramBytes: RAM,
      modules: [
        { bytes: new Uint8Array(0x1000), cmdline: "fits below 0x9000" },
        { bytes: new Uint8Array(0x8000), cmdline: "would cover 0x9000" },
        { bytes: new Uint8Array(0x96000), cmdline: "would cover 0x9fc00" }
      ]
    })
    expect(load.kernel).toMatchObject({ start: 0x1000, end: 0x1021 })
    expect(load.modules.map((m) => m.start)).toEqual([0x2000, 0xa000, 0x100000])
  })

  it("accepts a UTF-8 command line and stores it NUL-terminated", () => {
    const load = mustPlan(readerElf().bytes, { ramBytes: RAM, cmdline: "name=café" })
    const m = memoryAfter(load)
    expect(m.cstr(m.u32(MBI_ADDRESS + 16))).toBe("name=café")
    expect(load.info.cmdline.value).toBe("name=café")
  })
})

describe("running the loaded image on a hw/cpu Cpu", () => {
  const check = (image: Uint8Array, ramBytes: number) => {
    const mod = new Uint8Array([0x11, 0x22, 0x33, 0x44, 0x55])
    const g = bootOnCpu(image, {
      ramBytes,
      cmdline: "hello from the loader",
      modules: [{ bytes: mod, cmdline: "mod0 arg=1" }]
    })
    expect(g.exit).toBe(RunExit.Halt)
    const r = (field: keyof typeof R) => g.u32(RESULT + R[field])
    expect(r("done")).toBe(DONE)
    // the handoff (3.2), as the kernel saw it
    expect(r("eax")).toBe(0x2badb002)
    expect(r("ebx")).toBe(0x9500)
    expect(r("esp")).toBe(INITIAL_ESP)
    expect(r("eflags") & ((1 << 9) | (1 << 17))).toBe(0)
    expect(r("cr0") & 0x80000001).toBe(1)
    expect(r("cs")).toBe(0x08)
    expect(r("ds")).toBe(0x10)
    expect(r("gdtrLimit")).toBe(0x27)
    // what it read from the information structure (3.3)
    expect(r("flags")).toBe(0x24f)
    expect(r("memLower")).toBe(639)
    expect(r("memUpper")).toBe((ramBytes - MIB) / 1024)
    expect(r("bootDevice")).toBe(0x8000ffff)
    expect(r("mmapCount")).toBe(4)
    expect(r("mmapAvailable")).toBe(0x9fc00 + ramBytes - MIB)
    expect(g.string(RESULT + R.cmdline)).toBe("hello from the loader")
    expect(g.string(RESULT + R.loaderName)).toBe("fibervisor")
    expect(r("modsCount")).toBe(1)
    expect(r("mod0Start")).toBe(g.load.modules[0]!.start)
    expect(r("mod0Start") % PAGE_SIZE).toBe(0)
    expect(r("mod0End")).toBe(g.load.modules[0]!.start + 5)
    expect(r("mod0First")).toBe(0x44332211)
    expect(g.string(RESULT + R.mod0Cmdline)).toBe("mod0 arg=1")
    // the loader zeroed the bss over garbage and loaded the data
    expect(r("bssOr")).toBe(0)
    expect(r("data")).toBe(DATA_VALUE)
  }

  it("an ELF32 kernel", () => check(readerElf().bytes, RAM))
  it("an a.out-kludge flat binary", () => check(readerFlat().bytes, RAM))
  it("an ELF32 kernel in 64 MiB", () => check(readerElf().bytes, 64 << 20))
})

describe("the a.out kludge (spec 3.1.3)", () => {
  it("loads [load_addr, load_end_addr) from the file and zeroes up to bss_end_addr", () => {
    const { bytes, symbols } = readerFlat()
    const load = mustPlan(bytes, { ramBytes: RAM })
    expect(load.format).toBe("aout-kludge")
    expect(load.header).toEqual({ offset: 0, flags: 0x10003 })
    expect(load.entry).toBe(symbols.get("_start"))
    const loadEnd = symbols.get("load_end")!
    expect(load.writes[0]).toMatchObject({ address: MIB })
    expect(load.writes[0]!.bytes.length).toBe(loadEnd - MIB)
    expect([...load.writes[0]!.bytes]).toEqual([...bytes.subarray(0, loadEnd - MIB)])
    expect(load.zero).toEqual([{ address: loadEnd, length: symbols.get("bss_end")! - loadEnd }])
  })

  it("takes the text offset from header_addr - load_addr, and load_end_addr = 0 means the whole file", () => {
    // 64 bytes of file before the text that must not be loaded; the header sits 16 bytes into the text
    const source = `bits 32
org 0x200000 - 64
  times 64 db 0xEE
text:
  dd 0x55AA55AA, 0, 0, 0
align 4
header:
  dd 0x1BADB002, 0x10000, -(0x1BADB002 + 0x10000)
  dd header, text, 0, 0, entry
entry:
  hlt
`
    const { bytes, symbols } = flatImage(source)
    const load = mustPlan(bytes, { ramBytes: RAM })
    expect(load.header.offset).toBe(64 + 16)
    expect(load.writes[0]!.address).toBe(0x200000)
    expect([...load.writes[0]!.bytes]).toEqual([...bytes.subarray(64)])
    expect(load.zero).toEqual([])
    expect(load.entry).toBe(symbols.get("entry"))
  })
})

describe("a higher-half ELF (p_vaddr != p_paddr, linked with AT())", () => {
  const source = `bits 32
section .text
align 4
  dd 0x1BADB002, 3, -(0x1BADB002 + 3)
global _start
_start:
  mov [0x2000], eax
  mov dword [0x2004], 0x600df00d
  hlt
section .data
  dd 0x12345678
`
  const script = `ENTRY(_start)
SECTIONS {
  . = 0xC0100000;
  .text : AT(0x100000) { *(.text) }
  .data ALIGN(4096) : AT(ADDR(.data) - 0xC0000000) { *(.data) }
}
`
  it("loads at the physical addresses and translates the entry point as QEMU does", () => {
    const { bytes, symbols } = elfImage(source, { script })
    expect(symbols.get("_start")! >>> 0).toBeGreaterThanOrEqual(0xc0100000)
    const load = mustPlan(bytes, { ramBytes: RAM })
    expect(load.kernel.segments.map((s) => s.address)).toEqual([0x100000, 0x101000])
    expect(load.entry).toBe(symbols.get("_start")! - 0xc0000000)
    const g = bootOnCpu(bytes, { ramBytes: RAM })
    expect(g.exit).toBe(RunExit.Halt)
    expect([g.u32(0x2000), g.u32(0x2004)]).toEqual([0x2badb002, 0x600df00d])
  })
})

describe("applyLoad", () => {
  it("writes through any backing: a sparse page map sees exactly the planned bytes, bss in 64 KiB chunks", () => {
    const source = `bits 32
org 0x100000
start:
  dd 0x1BADB002, 0x10000, -(0x1BADB002 + 0x10000)
  dd start, start, end, start + 0x30000, entry
entry:
  hlt
end:
`
    const load = mustPlan(flatImage(source).bytes, { ramBytes: RAM })
    const pages = new Map<number, Uint8Array>()
    const calls: Array<[number, number]> = []
    applyLoad(load, (address, bytes) => {
      calls.push([address, bytes.length])
      for (let i = 0; i < bytes.length; i++) {
        const a = address + i
        const page = pages.get(a >>> 12) ?? new Uint8Array(4096).fill(0xcc)
        pages.set(a >>> 12, page)
        page[a & 0xfff] = bytes[i]!
      }
    })
    const end = 0x100000 + 33
    expect(calls.slice(0, 4)).toEqual([
      [end, 0x10000],
      [end + 0x10000, 0x10000],
      [end + 0x20000, 0x30000 - 33 - 0x20000],
      [0x100000, 33]
    ])
    expect(calls[4]![0]).toBe(BOOT_INFO_BASE)
    const byte = (a: number) => pages.get(a >>> 12)![a & 0xfff]
    expect(byte(0x100000 + 32)).toBe(0xf4) // hlt
    expect(byte(0x100000 + 0x2ffff)).toBe(0)
  })
})
