/**
 * The machine: wiring (overlaps rejected, unmapped accesses all-ones and
 * counted), the firmware table in ROM, virtual time with the idle jump, and
 * the determinism property of DESIGN.md "Virtual time": the same config,
 * code, seed and inputs give bit-identical runs (equal state hashes).
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { RunExit } from "../../../hw/cpu/state.ts"
import { decodeFirmwareTable } from "../../../hw/firmware/table.ts"
import { WiringError } from "../../../hw/machine/buses.ts"
import { decodeMachineConfig, defaultMachineConfig, type MachineConfig } from "../../../hw/machine/config.ts"
import { Machine, ROM_BASE } from "../../../hw/machine/machine.ts"
import { assemble } from "../cpu/harness.ts"

const config = (overrides: Record<string, unknown> = {}): MachineConfig =>
  Effect.runSync(decodeMachineConfig("test", JSON.stringify({ ...defaultMachineConfig, ramMiB: 4, ...overrides })))

/**
 * Real-mode guest for pCPU 0: programs the 8259A pair, the 8254 (channel 0,
 * mode 2, ~1 kHz) and counts IRQ0s in a handler that prints "." on COM1;
 * the main loop HLTs between ticks, so the machine idles between them.
 */
const tickerSource = (ticks: number) => `
bits 16
org 0x7c00
start:
  cli
  xor ax, ax
  mov ds, ax
  mov ss, ax
  mov sp, 0x7000
  mov word [8*4], irq0      ; IVT vector 8 = IRQ0 after ICW2
  mov word [8*4+2], 0
  mov al, 0x11              ; ICW1: edge, cascade, ICW4 needed
  out 0x20, al
  out 0xa0, al
  mov al, 0x08              ; ICW2: master vectors 8-15
  out 0x21, al
  mov al, 0x70
  out 0xa1, al
  mov al, 0x04              ; ICW3
  out 0x21, al
  mov al, 0x02
  out 0xa1, al
  mov al, 0x01              ; ICW4: 8086 mode
  out 0x21, al
  out 0xa1, al
  mov al, 0xfe              ; unmask IRQ0 only
  out 0x21, al
  mov al, 0xff
  out 0xa1, al
  mov al, 0x34              ; PIT channel 0, lobyte/hibyte, mode 2
  out 0x43, al
  mov ax, 1193              ; ~1 kHz
  out 0x40, al
  mov al, ah
  out 0x40, al
  sti
idle:
  hlt
  cmp word [ticks], ${ticks}
  jb idle
  cli
  mov si, done
print:
  lodsb
  or al, al
  jz stop
  mov dx, 0x3f8
  out dx, al
  jmp print
stop:
  hlt
  jmp stop
irq0:
  push ax
  push dx
  inc word [ticks]
  mov dx, 0x3f8
  mov al, '.'
  out dx, al
  mov al, 0x20              ; non-specific EOI
  out 0x20, al
  pop dx
  pop ax
  iret
ticks: dw 0
done: db "done", 0
`

/** pCPU 1 spins on arithmetic: it never halts, so the machine cannot idle-jump while it runs. */
const spinnerSource = `
bits 16
org 0x9000
spin:
  add ax, bx
  xor bx, ax
  rol bx, 3
  jmp spin
`

const bootReal = (machine: Machine, cpuIndex: number, code: Uint8Array, at: number): void => {
  machine.ram.set(code, at)
  const cpu = machine.cpus[cpuIndex]!
  const s = cpu.getState()
  s.cs = { selector: 0, base: 0, limit: 0xffff, access: 0x9b }
  s.eip = at
  cpu.setState(s)
}

/**
 * Boot the ticker on pCPU 0 (and the spinner on pCPU 1) and run for `untilNs`
 * of virtual time. A spinning pCPU executes every cycle of that time
 * (3 GHz * 10 ms = 30 M instructions), so multi-pCPU runs are kept short.
 */
const runTicker = (pcpus: number, seed = 1, ticks = 50, untilNs = 200_000_000) => {
  let console = ""
  const machine = new Machine(config({ pcpus, seed }), {
    console: { transmit: (b) => (console += String.fromCharCode(b)) }
  })
  bootReal(machine, 0, assemble(tickerSource(ticks)).bytes, 0x7c00)
  if (pcpus > 1) bootReal(machine, 1, assemble(spinnerSource).bytes, 0x9000)
  machine.runUntil(untilNs)
  return { machine, console }
}

describe("Machine wiring", () => {
  it("builds from the default config and publishes a valid firmware table in ROM", () => {
    const machine = new Machine(config({ pcpus: 2 }))
    const decoded = decodeFirmwareTable(machine.firmware)
    expect(decoded.ok).toBe(true)
    if (!decoded.ok) return
    expect(decoded.table.cpus.map((c) => c.apicId)).toEqual([0, 1])
    expect(decoded.table.memory[0]).toEqual({ base: 0, length: 4 << 20, type: "usable" })
    expect(decoded.table.devices.map((d) => d.type)).toEqual(
      expect.arrayContaining(["uart16550", "pit8254", "pic8259", "lapic", "fvnic"])
    )
    // what a pCPU reads at the ROM address is the table
    expect(machine.mmio.read(ROM_BASE, 4)).toBe(0x57465646) // "FVFW" little-endian
  })

  it("rejects an overlapping mapping, naming both devices and ranges", () => {
    const machine = new Machine(config())
    const intruder = { name: "intruder", read: () => 0, write: () => {} }
    expect(() => machine.ports.map(0x3fc, 8, intruder)).toThrow(WiringError)
    expect(() => machine.ports.map(0x3fc, 8, intruder)).toThrow(
      /intruder at 0x3fc-0x403: overlaps uart16550 at 0x3f8-0x3ff/
    )
  })

  it("honours the timer choice: with kind lapic the PIT is not on the bus (its ports read all-ones)", () => {
    const machine = new Machine(config({ timer: { kind: "lapic" } }))
    expect(machine.cpus[0]!.io.in(0x40, 1)).toBe(0xff)
    expect(machine.firmwareDescription.devices.some((d) => d.type === "pit8254")).toBe(false)
  })

  it("refuses a datastore disk in the config without a disk back-end", () => {
    expect(() => new Machine(config({ block: { path: "/tmp/disk.img", sizeMiB: 1 } }))).toThrow(/no disk back-end/)
  })

  it("returns all-ones for unmapped ports and MMIO, and counts them (SDM: unclaimed reads float high)", () => {
    const machine = new Machine(config())
    const cpu = machine.cpus[0]!
    expect(cpu.io.in(0x1234, 2)).toBe(0xffff)
    expect(cpu.mem.read(0xfd000000, 4)).toBe(0xffffffff)
    cpu.io.out(0x1234, 1, 7)
    expect(machine.ports.unmappedReads).toBe(1)
    expect(machine.ports.unmappedWrites).toBe(1)
    expect(machine.mmio.unmappedReads).toBe(1)
  })
})

describe("virtual time", () => {
  it("delivers PIT interrupts at the programmed rate and idles between them without executing instructions", () => {
    const { machine, console } = runTicker(1)
    expect(console).toBe(`${".".repeat(50)}done`)
    // 50 ticks of 1193 PIT periods at 1.193182 MHz = ~50 ms of virtual time before "done"
    expect(machine.now).toBe(200_000_000)
    const cpu = machine.cpus[0]!
    expect(cpu.halted).toBe(true)
    // ~150 million cycles of virtual time passed; only a few thousand instructions ran: the rest was an idle jump
    expect(cpu.cycles).toBeGreaterThanOrEqual(machine.cyclesOf(200_000_000))
    expect(cpu.instructions).toBeLessThan(5_000)
  })

  it("timer interrupts arrive on time even while another pCPU is busy", () => {
    const { machine, console } = runTicker(2, 1, 5, 10_000_000)
    expect(console).toBe(`${".".repeat(5)}done`)
    // pCPU 1 never halts: it executes through the whole 10 ms (30 M cycles at 3 GHz)
    expect(machine.cpus[1]!.cycles).toBeGreaterThanOrEqual(machine.cyclesOf(10_000_000))
    expect(machine.cpus[1]!.instructions).toBeGreaterThan(1_000_000)
  })
})

describe("determinism", () => {
  it("the same config, code and seed twice give identical state hashes (1 and 2 pCPUs)", () => {
    for (const [pcpus, ticks, until] of [
      [1, 50, 200_000_000],
      [2, 5, 10_000_000]
    ] as const) {
      const first = runTicker(pcpus, 1, ticks, until)
      const second = runTicker(pcpus, 1, ticks, until)
      expect(second.console).toBe(first.console)
      expect(second.machine.stateHash()).toBe(first.machine.stateHash())
    }
  })

  it("the hash sees a difference: another seed (NIC MAC) or one more byte of RAM changes it", () => {
    const a = runTicker(1, 1).machine
    const b = runTicker(1, 2).machine
    expect(b.stateHash()).not.toBe(a.stateHash())
    const before = a.stateHash()
    a.ram[0x100000] = a.ram[0x100000]! ^ 1
    expect(a.stateHash()).not.toBe(before)
  })

  it("runs root-mode code to HLT through the Cpu API the kernel will use", () => {
    const machine = new Machine(config())
    bootReal(machine, 0, Uint8Array.of(0xf4), 0x7c00)
    expect(machine.cpus[0]!.run(10)).toBe(RunExit.Halt)
  })
})
