/**
 * Test harness for the IA-32 interpreter: assemble small NASM programs and
 * run them on a `Cpu` inside hand-built real-mode or protected-mode
 * environments (Intel SDM Vol. 3A ch. 3 GDT and descriptors, 4.3 32-bit
 * paging, 6.10-6.12 IDT and gates, 7.2.1 the 32-bit TSS; Vol. 1 19.5.2 the
 * I/O permission bitmap).
 *
 * Guest-physical memory map of a protected-mode guest (8 MiB of flat RAM):
 *
 *   0x000000  real-mode IVT (unused in protected mode)
 *   0x001000  GDT (16 entries: KCODE KDATA UCODE UDATA TSS_SEL NP_DATA NP_CODE, 0x40.. free)
 *   0x001800  IDT (256 gates)
 *   0x002000  32-bit TSS (0x68 bytes), then the I/O bitmap (0x2000 bytes + 0xFF)
 *   0x005000  trap record: what the last exception handler saw (see `trap()`)
 *   0x006000  handler stubs, 16 bytes per vector; 0x007000 their common tail
 *   0x00a000  ring-0 stack top (TSS ESP0)
 *   0x00c000  ring-3 stack top
 *   0x010000  the test program (org CODE)
 *   0x020000  free data (DATA)
 *   0x100000  page directory, then page tables (allocated upward)
 *
 * Every handler stub records the vector, its own EFLAGS/CS/SS, the ESP at
 * entry and the first 8 dwords of the frame the CPU pushed into the trap
 * record, then HLTs: `run` returns RunExit.Halt and the test reads
 * `guest.trap()`. The record is the guest's own view, written by guest code.
 *
 * Programs are assembled with `nasm -f bin`; the output and symbol map are
 * cached by source hash in the OS temp dir, so re-runs do not re-assemble.
 */
import { execFileSync } from "node:child_process"
import { createHash } from "node:crypto"
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { flatMemory, type IoPorts, type PhysicalMemory } from "../../../hw/cpu/bus.ts"
import { Cpu } from "../../../hw/cpu/cpu.ts"
import type { CpuState, RunExit, SegmentState } from "../../../hw/cpu/state.ts"

// ---------------------------------------------------------------------------
// NASM

export interface Assembled {
  readonly bytes: Uint8Array
  /** Label (and `equ`) values from the NASM map file, e.g. `start`, `fault`, `outer.inner`. */
  readonly symbols: ReadonlyMap<string, number>
}

const cacheDir = join(tmpdir(), "fibervisor-nasm-cache")
const memo = new Map<string, Assembled>()

const parseMap = (map: string): Map<string, number> => {
  const symbols = new Map<string, number>()
  for (const line of map.split("\n")) {
    const section = /^\s+([0-9A-F]+)\s+([0-9A-F]+)\s+(\S+)\s*$/i.exec(line) // Real Virtual Name
    const absolute = /^([0-9A-F]{8})\s+(\S+)\s*$/i.exec(line) // Value Name (equ)
    if (section) symbols.set(section[3]!, Number.parseInt(section[2]!, 16))
    else if (absolute) symbols.set(absolute[2]!, Number.parseInt(absolute[1]!, 16))
  }
  return symbols
}

/** Assemble a complete NASM source (with its own `bits`/`org`) as a flat binary. */
export function assemble(source: string): Assembled {
  const hash = createHash("sha256").update(source).digest("hex").slice(0, 32)
  const hit = memo.get(hash)
  if (hit) return hit
  const bin = join(cacheDir, `${hash}.bin`)
  const syms = join(cacheDir, `${hash}.json`)
  let result: Assembled
  if (existsSync(bin) && existsSync(syms)) {
    const table = JSON.parse(readFileSync(syms, "utf8")) as Array<[string, number]>
    result = { bytes: new Uint8Array(readFileSync(bin)), symbols: new Map(table) }
  } else {
    mkdirSync(cacheDir, { recursive: true })
    // a private work dir per attempt (test files run in parallel workers); results are renamed into place
    const work = join(cacheDir, `${hash}.${Math.random().toString(36).slice(2)}.tmp`)
    mkdirSync(work)
    try {
      const src = join(work, "prog.asm")
      const out = join(work, "prog.bin")
      const map = join(work, "prog.map")
      writeFileSync(src, `${source}\n[map symbols ${map}]\n`)
      try {
        execFileSync("nasm", ["-f", "bin", "-w-all", "-o", out, src], { stdio: "pipe" })
      } catch (e) {
        const stderr = (e as { stderr?: Buffer }).stderr?.toString() ?? String(e)
        throw new Error(`nasm failed:\n${stderr}\n--- source ---\n${source}`)
      }
      const symbols = parseMap(readFileSync(map, "utf8"))
      result = { bytes: new Uint8Array(readFileSync(out)), symbols }
      writeFileSync(join(work, "syms.json"), JSON.stringify([...symbols]))
      renameSync(out, bin)
      renameSync(join(work, "syms.json"), syms)
    } finally {
      rmSync(work, { recursive: true, force: true })
    }
  }
  memo.set(hash, result)
  return result
}

// ---------------------------------------------------------------------------
// layout

export const MEM_SIZE = 8 << 20
export const GDT = 0x1000
export const IDT = 0x1800
export const TSS = 0x2000
export const IOMAP = TSS + 0x68
export const REC = 0x5000
export const HANDLERS = 0x6000
export const KSTACK = 0xa000
export const USTACK = 0xc000
export const CODE = 0x10000
export const DATA = 0x20000
export const PAGE_DIR = 0x100000

/** GDT slots (selector = index * 8 | RPL). */
export const KCODE = 0x08
export const KDATA = 0x10
export const UCODE = 0x1b
export const UDATA = 0x23
export const TSS_SEL = 0x28
/** A DPL-3 writable data segment with P = 0. */
export const NP_DATA = 0x30
/** A DPL-0 code segment with P = 0. */
export const NP_CODE = 0x38
/** Slots 8..15 (selectors 0x40..0x78) are free for per-test descriptors. */
export const GDT_ENTRIES = 16

/** Page-table entry bits (SDM Vol. 3A tables 4-5 and 4-6). */
export const PTE = { P: 1, RW: 2, US: 4, A: 0x20, D: 0x40, PS: 0x80, G: 0x100 } as const
/** Page-fault error code bits (SDM Vol. 3A 4.7). */
export const PFEC = { P: 1, W: 2, U: 4 } as const
/** Control-register bits used by the tests (SDM Vol. 3A 2.5). */
export const CR0 = { PE: 1, ET: 0x10, WP: 1 << 16, PG: 1 << 31 } as const
export const CR4 = { TSD: 1 << 2, PSE: 1 << 4, PGE: 1 << 7 } as const
export const EFLAGS = { IF: 1 << 9, IOPL3: 3 << 12 } as const

/** `%define`s every program sees. */
const prelude = Object.entries({ KCODE, KDATA, UCODE, UDATA, TSS_SEL, NP_DATA, NP_CODE, REC, KSTACK, USTACK, DATA })
  .map(([name, value]) => `%define ${name} 0x${value.toString(16)}`)
  .join("\n")

// ---------------------------------------------------------------------------
// descriptors

/** Segment descriptor (SDM Vol. 3A 3.4.5 figure 3-8): `access` is byte 5 (P DPL S type), `flags` the G/DB nibble. */
export function segmentDescriptor(base: number, limit: number, access: number, flags = 0xc): [number, number] {
  const lo = ((base & 0xffff) << 16) | (limit & 0xffff)
  const hi =
    (base & 0xff000000) | ((flags & 0xf) << 20) | (limit & 0xf0000) | ((access & 0xff) << 8) | ((base >>> 16) & 0xff)
  return [lo >>> 0, hi >>> 0]
}

/** Interrupt/trap/call gate (SDM Vol. 3A figure 6-2, figure 5-8). */
export function gateDescriptor(
  type: number,
  selector: number,
  offset: number,
  dpl: number,
  present = true,
  params = 0
): [number, number] {
  const lo = ((selector & 0xffff) << 16) | (offset & 0xffff)
  const hi = (offset & 0xffff0000) | (present ? 0x8000 : 0) | ((dpl & 3) << 13) | ((type & 0xf) << 8) | (params & 0x1f)
  return [lo >>> 0, hi >>> 0]
}

export const GateType = { Interrupt32: 14, Trap32: 15, Call32: 12 } as const

export interface GateOptions {
  readonly type?: number
  readonly dpl?: number
  readonly selector?: number
  /** Handler offset; default: the recording stub for this vector. */
  readonly offset?: number
  readonly present?: boolean
}

// ---------------------------------------------------------------------------
// I/O

export interface PortWrite {
  readonly port: number
  readonly size: number
  readonly value: number
}

export type RecordingPorts = IoPorts & { readonly writes: Array<PortWrite>; readonly reads: Array<number> }

/** Port space that logs every access and answers IN with the low byte of the port number, repeated. */
export function recordingPorts(): RecordingPorts {
  const writes: Array<PortWrite> = []
  const reads: Array<number> = []
  return {
    writes,
    reads,
    in: (port, size) => {
      reads.push(port)
      const b = port & 0xff
      return size === 1 ? b : size === 2 ? b * 0x101 : (b * 0x01010101) >>> 0
    },
    out: (port, size, value) => {
      writes.push({ port, size, value })
    }
  }
}

// ---------------------------------------------------------------------------
// the guest

/** What the recording stub saw: vector, its own EFLAGS/CS/SS, ESP at entry, and the frame. */
export interface Trap {
  readonly vector: number
  /** How many exceptions/interrupts reached a stub. */
  readonly count: number
  readonly handlerEflags: number
  readonly handlerCs: number
  readonly handlerSs: number
  /** ESP when the handler started: the address of frame[0]. */
  readonly handlerEsp: number
  /** Eight dwords from the handler's ESP upward: [error] EIP CS EFLAGS [ESP SS]. */
  readonly frame: ReadonlyArray<number>
}

/** The frame words of a trap, named (SDM Vol. 3A figure 6-4). */
export interface Frame {
  readonly error: number | undefined
  readonly eip: number
  readonly cs: number
  readonly eflags: number
  /** Meaningful only after a privilege change. */
  readonly esp: number
  readonly ss: number
}

export const frameOf = (t: Trap, hasError: boolean): Frame => {
  const f = hasError ? t.frame : [0, ...t.frame]
  return {
    error: hasError ? f[0]! : undefined,
    eip: f[1]!,
    cs: f[2]! & 0xffff,
    eflags: f[3]!,
    esp: f[4]!,
    ss: f[5]! & 0xffff
  }
}

export interface ProtectedOptions {
  /** CPL to start at: 0 (KCODE/KDATA everywhere) or 3 (UCODE/UDATA). */
  readonly cpl?: 0 | 3
  /** Starting EIP (label or address); default: the `start` label, else CODE. */
  readonly entry?: string | number
  readonly esp?: number
  /** EFLAGS at start (bit 1 is forced on); default 0x2. */
  readonly eflags?: number
  /** Identity-map the low 4 MiB with 4 KiB pages (P RW US) and set CR0.PG. */
  readonly paging?: boolean
  /** Extra CR0 bits (e.g. CR0.WP) and the CR4 value. */
  readonly cr0?: number
  readonly cr4?: number
  /** Give the TSS an I/O bitmap allowing just these ports (else the map base is past the TSS limit: all denied). */
  readonly ioAllow?: ReadonlyArray<number>
  /** Initial general registers. */
  readonly regs?: Partial<Pick<CpuState, "eax" | "ebx" | "ecx" | "edx" | "esi" | "edi" | "ebp">>
}

const baseState = (): CpuState => {
  const seg = (): SegmentState => ({ selector: 0, base: 0, limit: 0xffff, access: 0x93 })
  return {
    eax: 0,
    ecx: 0,
    edx: 0,
    ebx: 0,
    esp: 0,
    ebp: 0,
    esi: 0,
    edi: 0,
    eip: 0,
    eflags: 2,
    es: seg(),
    cs: { selector: 0, base: 0, limit: 0xffff, access: 0x9b },
    ss: seg(),
    ds: seg(),
    fs: seg(),
    gs: seg(),
    ldtr: { selector: 0, base: 0, limit: 0xffff, access: 0x82 },
    tr: { selector: 0, base: 0, limit: 0xffff, access: 0x8b },
    gdtr: { base: 0, limit: 0xffff },
    idtr: { base: 0, limit: 0x3ff },
    cr0: CR0.ET,
    cr2: 0,
    cr3: 0,
    cr4: 0,
    dr: [0, 0, 0, 0, 0, 0, 0xffff0ff0, 0x400],
    tsc: 0,
    msr: { apicBase: 0xfee00900, sysenterCs: 0, sysenterEsp: 0, sysenterEip: 0 },
    halted: false,
    a20: true
  }
}

/** The recording stubs and their common tail, assembled at HANDLERS. */
const stubSource = `bits 32
org ${HANDLERS}
%assign v 0
%rep 256
  align 16, db 0xcc
  push eax
  mov eax, v
  jmp stub_tail
%assign v v+1
%endrep
  align 16, db 0xcc
stub_tail:                      ; [esp] = the interrupted EAX, the CPU's frame at esp+4
  push ds
  push eax
  mov ax, ${KDATA}
  mov ds, ax
  pop eax
  mov [${REC}], eax             ; vector
  inc dword [${REC + 4}]        ; count
  pushfd
  pop eax
  mov [${REC + 8}], eax         ; handler EFLAGS
  mov eax, cs
  mov [${REC + 12}], eax
  mov eax, ss
  mov [${REC + 16}], eax
  lea eax, [esp + 8]
  mov [${REC + 20}], eax        ; ESP at entry = &frame[0]
%assign i 0
%rep 8
  mov eax, [esp + 8 + i * 4]
  mov [${REC + 24} + i * 4], eax
%assign i i+1
%endrep
  pop ds
  pop eax
  hlt
  jmp $ - 1
`

export class Guest {
  readonly mem: PhysicalMemory
  readonly ports: RecordingPorts = recordingPorts()
  readonly cpu: Cpu
  readonly dv: DataView
  program: Assembled = { bytes: new Uint8Array(0), symbols: new Map() }
  private nextTable = PAGE_DIR + 0x2000

  constructor(memory: PhysicalMemory = flatMemory(MEM_SIZE)) {
    this.mem = memory
    this.cpu = new Cpu(memory, this.ports)
    this.dv = new DataView(memory.ram.buffer, memory.ram.byteOffset, memory.ram.byteLength)
  }

  read32(addr: number): number {
    return this.dv.getUint32(addr, true)
  }
  write32(addr: number, v: number): void {
    this.dv.setUint32(addr, v >>> 0, true)
  }
  read16(addr: number): number {
    return this.dv.getUint16(addr, true)
  }
  write16(addr: number, v: number): void {
    this.dv.setUint16(addr, v & 0xffff, true)
  }

  /** Copy bytes into guest-physical memory. */
  poke(addr: number, bytes: Uint8Array): void {
    this.mem.ram.set(bytes, addr)
  }

  /** Assemble `body` (after `bits`, `org` and the selector %defines) and load it at `org`. */
  load(body: string, org = CODE, bits: 16 | 32 = 32): Assembled {
    const asm = assemble(`bits ${bits}\norg 0x${org.toString(16)}\n${prelude}\n${body}`)
    this.poke(org, asm.bytes)
    this.program = asm
    return asm
  }

  /** Address of a label in the last loaded program. */
  sym(name: string): number {
    const v = this.program.symbols.get(name)
    if (v === undefined) throw new Error(`no symbol ${name} (have: ${[...this.program.symbols.keys()].join(" ")})`)
    return v
  }

  run(budget = 10_000): RunExit {
    return this.cpu.run(budget)
  }

  // ---- descriptor tables ----

  setDescriptor(selector: number, [lo, hi]: readonly [number, number]): void {
    const at = GDT + (selector & 0xfff8)
    this.write32(at, lo)
    this.write32(at + 4, hi)
  }

  descriptor(selector: number): [number, number] {
    const at = GDT + (selector & 0xfff8)
    return [this.read32(at), this.read32(at + 4)]
  }

  setGate(vector: number, options: GateOptions = {}): void {
    const [lo, hi] = gateDescriptor(
      options.type ?? GateType.Interrupt32,
      options.selector ?? KCODE,
      options.offset ?? HANDLERS + vector * 16,
      options.dpl ?? 0,
      options.present ?? true
    )
    this.write32(IDT + vector * 8, lo)
    this.write32(IDT + vector * 8 + 4, hi)
  }

  /** A 32-bit call gate in GDT slot `selector` (SDM Vol. 3A 5.8.3). */
  setCallGate(selector: number, target: number, offset: number, dpl: number, params: number): void {
    this.setDescriptor(selector, gateDescriptor(GateType.Call32, target, offset, dpl, true, params))
  }

  /** The cache a load of `selector` would produce (SDM 3.4.3), setting the accessed bit in the GDT as the load would. */
  cacheFor(selector: number): SegmentState {
    const at = GDT + (selector & 0xfff8)
    const [lo, hi] = this.descriptor(selector)
    const system = (hi & 0x1000) === 0
    const accessedHi = system ? hi : hi | 0x100
    this.write32(at + 4, accessedHi)
    const raw = (lo & 0xffff) | (hi & 0xf0000)
    const limit = (hi & (1 << 23)) !== 0 ? ((raw << 12) | 0xfff) >>> 0 : raw
    const base = ((lo >>> 16) | ((hi & 0xff) << 16) | (hi & 0xff000000)) >>> 0
    return { selector, base, limit, access: (accessedHi >>> 8) & 0xf0ff }
  }

  /** Fill the GDT, TSS and IDT (SDM Vol. 3A 3.5.1, 7.2.1, 6.10). */
  buildTables(ioAllow?: ReadonlyArray<number>): void {
    this.setDescriptor(KCODE, segmentDescriptor(0, 0xfffff, 0x9a))
    this.setDescriptor(KDATA, segmentDescriptor(0, 0xfffff, 0x92))
    this.setDescriptor(UCODE, segmentDescriptor(0, 0xfffff, 0xfa))
    this.setDescriptor(UDATA, segmentDescriptor(0, 0xfffff, 0xf2))
    const tssLimit = ioAllow ? 0x68 + 0x2000 : 0x67
    this.setDescriptor(TSS_SEL, segmentDescriptor(TSS, tssLimit, 0x89, 0)) // available 32-bit TSS
    this.setDescriptor(NP_DATA, segmentDescriptor(0, 0xfffff, 0x72)) // P = 0, DPL 3, data RW
    this.setDescriptor(NP_CODE, segmentDescriptor(0, 0xfffff, 0x1a)) // P = 0, DPL 0, code RX
    // TSS: ESP0/SS0 (figure 7-2) and the I/O map base (offset 0x66)
    this.write32(TSS + 4, KSTACK)
    this.write32(TSS + 8, KDATA)
    this.write16(TSS + 0x66, 0x68)
    if (ioAllow) {
      // one bit per port, 1 = denied, plus the 0xFF byte the SDM requires after the map (Vol. 1 19.5.2)
      this.mem.ram.fill(0xff, IOMAP, IOMAP + 0x2001)
      for (const port of ioAllow) this.mem.ram[IOMAP + (port >> 3)]! &= ~(1 << (port & 7))
    }
    // every vector: an interrupt gate (DPL 0) to its stub; 0x30 (interrupt) and 0x31 (trap) callable from ring 3
    this.poke(HANDLERS, assemble(stubSource).bytes)
    for (let v = 0; v < 256; v++) this.setGate(v)
    this.setGate(0x30, { dpl: 3 })
    this.setGate(0x31, { dpl: 3, type: GateType.Trap32 })
  }

  // ---- paging (SDM Vol. 3A 4.3) ----

  /** Identity-map 0..4 MiB with 4 KiB pages (P RW US). Returns CR3. */
  buildIdentityPaging(): number {
    this.mem.ram.fill(0, PAGE_DIR, PAGE_DIR + 0x2000)
    const pt = PAGE_DIR + 0x1000
    this.nextTable = PAGE_DIR + 0x2000
    this.write32(PAGE_DIR, pt | PTE.P | PTE.RW | PTE.US)
    for (let i = 0; i < 1024; i++) this.write32(pt + i * 4, (i << 12) | PTE.P | PTE.RW | PTE.US)
    return PAGE_DIR
  }

  pdeAddr(linear: number): number {
    return PAGE_DIR + (linear >>> 22) * 4
  }

  /** Address of the PTE for `linear`, allocating a page table (PDE: P RW US) if there is none. */
  pteAddr(linear: number): number {
    const pdeAt = this.pdeAddr(linear)
    let pde = this.read32(pdeAt)
    if ((pde & PTE.P) === 0) {
      const table = this.nextTable
      this.nextTable += 0x1000
      this.mem.ram.fill(0, table, table + 0x1000)
      pde = table | PTE.P | PTE.RW | PTE.US
      this.write32(pdeAt, pde)
    }
    return (pde & ~0xfff) + ((linear >>> 12) & 0x3ff) * 4
  }

  /** Map one 4 KiB page: PTE = phys | flags. */
  mapPage(linear: number, phys: number, flags: number): void {
    this.write32(this.pteAddr(linear), (phys & ~0xfff) | flags)
  }

  /** Map one 4 MiB page (needs CR4.PSE): PDE = phys | PS | flags. */
  mapLarge(linear: number, phys: number, flags: number): void {
    this.write32(this.pdeAddr(linear), (phys & 0xffc00000) | PTE.PS | flags)
  }

  pte(linear: number): number {
    return this.read32(this.pteAddr(linear))
  }

  pde(linear: number): number {
    return this.read32(this.pdeAddr(linear))
  }

  // ---- entering a mode ----

  /**
   * Enter 32-bit protected mode by loading the state record directly: CR0.PE
   * (and PG), GDTR/IDTR/TR, and segment caches matching the GDT entries
   * (SDM Vol. 3A 3.4.3: the hidden part is what a load of that selector makes).
   */
  enterProtected(options: ProtectedOptions = {}): void {
    this.buildTables(options.ioAllow)
    const cpl = options.cpl ?? 0
    const code = cpl === 3 ? UCODE : KCODE
    const data = cpl === 3 ? UDATA : KDATA
    const s = baseState()
    s.cs = this.cacheFor(code)
    s.ss = this.cacheFor(data)
    s.ds = this.cacheFor(data)
    s.es = this.cacheFor(data)
    s.fs = this.cacheFor(data)
    s.gs = this.cacheFor(data)
    // TR as after LTR: the descriptor marked busy (type 11)
    const [tlo, thi] = this.descriptor(TSS_SEL)
    this.setDescriptor(TSS_SEL, [tlo, thi | 0x200])
    s.tr = this.cacheFor(TSS_SEL)
    s.ldtr = { selector: 0, base: 0, limit: 0, access: 1 << 16 }
    s.gdtr = { base: GDT, limit: GDT_ENTRIES * 8 - 1 }
    s.idtr = { base: IDT, limit: 256 * 8 - 1 }
    const entry = options.entry ?? (this.program.symbols.has("start") ? "start" : CODE)
    s.eip = typeof entry === "string" ? this.sym(entry) : entry
    s.esp = options.esp ?? (cpl === 3 ? USTACK : KSTACK)
    s.eflags = (options.eflags ?? 0) | 2
    s.cr0 = CR0.ET | CR0.PE | (options.cr0 ?? 0)
    s.cr4 = options.cr4 ?? 0
    if (options.paging) {
      s.cr3 = this.buildIdentityPaging()
      s.cr0 = (s.cr0 | CR0.PG) >>> 0
    }
    Object.assign(s, options.regs ?? {})
    this.cpu.setState(s)
  }

  /** Real mode at 0000:`ip` with SS:SP = 0000:`sp` and the IVT at 0 (SDM Vol. 3A 20.1). */
  enterReal(ip: number, sp = 0x7000): void {
    const s = baseState()
    s.eip = ip
    s.esp = sp
    this.cpu.setState(s)
  }

  // ---- results ----

  /** The trap record, or undefined when no handler stub has run. */
  trap(): Trap | undefined {
    const count = this.read32(REC + 4)
    if (count === 0) return undefined
    return {
      vector: this.read32(REC),
      count,
      handlerEflags: this.read32(REC + 8),
      handlerCs: this.read32(REC + 12) & 0xffff,
      handlerSs: this.read32(REC + 16) & 0xffff,
      handlerEsp: this.read32(REC + 20),
      frame: Array.from({ length: 8 }, (_, i) => this.read32(REC + 24 + i * 4))
    }
  }
}

/** Load `body` as a 32-bit program at CODE and enter protected mode. */
export function protectedGuest(body: string, options: ProtectedOptions = {}): Guest {
  const g = new Guest()
  g.load(body)
  g.enterProtected(options)
  return g
}

/** Load `body` as a 16-bit program at 0000:`org` and enter real mode there. */
export function realGuest(body: string, org = 0x7c00): Guest {
  const g = new Guest()
  g.load(body, org, 16)
  g.enterReal(org)
  return g
}
