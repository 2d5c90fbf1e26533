/**
 * The PC system-control devices (vmm/devices/pc-misc) against the IBM PC/AT
 * Technical Reference ("Keyboard Controller", "System Control Port B"),
 * the PS/2 reference ("System Control Port A") and QEMU's pckbd.c,
 * port92.c and pcspk.c: 8042 status, reset and A20 through the controller
 * and through port 0x92, the minimal keyboard and mouse replies, IRQ 1 /
 * 12, port 0x61 wired to a real 8254's counter 2, reset and snapshot.
 */
import { describe, expect, it } from "@effect/vitest"
import { Pit8254 } from "../../../hw/devices/pit8254/pit8254.ts"
import { pitTickTime } from "../../../hw/devices/pit8254/registers.ts"
import { recordingIrq } from "../../../hw/machine/device.ts"
import { I8042 } from "../../../vmm/devices/pc-misc/i8042.ts"
import { I8042_COMMAND, I8042_DATA } from "../../../vmm/devices/pc-misc/registers.ts"
import { PortA, PortB } from "../../../vmm/devices/pc-misc/system-control.ts"

const makeKbc = () => {
  const events: string[] = []
  const irq1 = recordingIrq()
  const irq12 = recordingIrq()
  const kbc = new I8042({
    onReset: () => events.push("reset"),
    onA20: (on) => events.push(on ? "a20 on" : "a20 off"),
    irq1,
    irq12
  })
  const status = () => kbc.read(I8042_COMMAND, 1)
  const command = (cmd: number) => kbc.write(I8042_COMMAND, 1, cmd)
  const data = (byte: number) => kbc.write(I8042_DATA, 1, byte)
  /** Read every queued byte. */
  const drain = () => {
    const out: number[] = []
    while (status() & 0x01) out.push(kbc.read(I8042_DATA, 1))
    return out
  }
  return { kbc, events, irq1, irq12, status, command, data, drain }
}

describe("8042 status register (port 0x64 read)", () => {
  it("power-on: command + unlocked (0x18, QEMU); input buffer always empty; OBF follows the queue", () => {
    const m = makeKbc()
    expect(m.status()).toBe(0x18)
    m.command(0xaa) // self-test: sets the system flag, replies 0x55
    expect(m.status()).toBe(0x1d)
    expect(m.kbc.read(I8042_DATA, 1)).toBe(0x55)
    expect(m.status()).toBe(0x1c)
    expect(m.kbc.read(I8042_DATA, 1)).toBe(0x55) // empty queue: the last byte again (QEMU)
  })
})

describe("8042 reset line: command 0xFE and the 0xF0-0xFF pulse commands", () => {
  it("0xFE pulses the CPU reset line -> onReset; pulses that leave bit 0 alone do not", () => {
    const m = makeKbc()
    m.command(0xfe)
    expect(m.events).toEqual(["reset"])
    m.command(0xff)
    m.command(0xf1)
    m.command(0xfd)
    expect(m.events).toEqual(["reset"])
    m.command(0xf0)
    expect(m.events).toEqual(["reset", "reset"])
  })
})

describe("8042 output port: 0xD1 + data (bit 1 A20, bit 0 reset line), 0xD0, 0xDD/0xDF", () => {
  it("0xD1 drives A20 from data bit 1 and resets when bit 0 is 0 (QEMU outport_write)", () => {
    const m = makeKbc()
    m.command(0xd1)
    m.data(0xdd) // bit 1 = 0, bit 0 = 1
    expect(m.events).toEqual(["a20 off"])
    expect(m.kbc.a20).toBe(false)
    m.command(0xd1)
    m.data(0xdf)
    expect(m.events).toEqual(["a20 off", "a20 on"])
    m.command(0xd1)
    m.data(0x02) // A20 on, reset line low
    expect(m.events).toEqual(["a20 off", "a20 on", "a20 on", "reset"])
  })

  it("0xD0 reads the output port (power-on 0xCF: reset high, A20 on); 0xDD / 0xDF switch A20", () => {
    const m = makeKbc()
    m.command(0xd0)
    expect(m.drain()).toEqual([0xcf]) // the port as it was when the command ran (OBF mirrors in bit 4 later)
    m.command(0xdd)
    m.command(0xd0)
    expect(m.drain()).toEqual([0xcd])
    m.command(0xdf)
    expect(m.events).toEqual(["a20 off", "a20 on"])
  })
})

describe("8042 command byte, interface tests, keyboard and mouse replies", () => {
  it("0x20 / 0x60 read and write the command byte; IRQ 1 follows keyboard data when enabled", () => {
    const m = makeKbc()
    m.command(0x20)
    expect(m.irq1.level).toBe(true)
    expect(m.drain()).toEqual([0x03])
    expect(m.irq1.level).toBe(false)
    m.command(0x60)
    m.data(0x00) // interrupts off
    m.command(0xab)
    expect(m.irq1.level).toBe(false)
    expect(m.drain()).toEqual([0x00])
    m.command(0xc0)
    expect(m.drain()).toEqual([0x80])
    m.command(0xa9)
    expect(m.drain()).toEqual([0x00])
  })

  it("keyboard: reset FA AA, identify FA AB 83 (41 translated), echo EE, scan-code set get/set, resend", () => {
    const m = makeKbc()
    m.data(0xff)
    expect(m.drain()).toEqual([0xfa, 0xaa])
    m.data(0xf2)
    expect(m.drain()).toEqual([0xfa, 0xab, 0x83])
    m.data(0xee)
    expect(m.drain()).toEqual([0xee])
    m.data(0xf0)
    m.data(0x01)
    m.data(0xf0)
    m.data(0x00)
    expect(m.drain()).toEqual([0xfa, 0xfa, 0xfa, 0xfa, 0x01])
    m.data(0xed)
    m.data(0x07)
    expect(m.drain()).toEqual([0xfa, 0xfa])
    m.data(0x42)
    expect(m.drain()).toEqual([0xfe])
    m.command(0x60)
    m.data(0x41) // translation on
    m.data(0xf2)
    expect(m.drain()).toEqual([0xfa, 0xab, 0x41])
  })

  it("mouse (0xD4 + byte): replies on the aux port (status bit 5, IRQ 12)", () => {
    const m = makeKbc()
    m.command(0xd4)
    m.data(0xff)
    expect(m.status() & 0x21).toBe(0x21)
    expect(m.irq12.level).toBe(true)
    expect(m.drain()).toEqual([0xfa, 0xaa, 0x00])
    expect(m.irq12.level).toBe(false)
    m.command(0xd4)
    m.data(0xf3)
    m.command(0xd4)
    m.data(100)
    expect(m.drain()).toEqual([0xfa, 0xfa])
  })

  it("the output queue holds 16 bytes; more are dropped", () => {
    const m = makeKbc()
    for (let i = 0; i < 20; i++) {
      m.command(0xd2)
      m.data(i)
    }
    expect(m.drain()).toEqual([...Array(16).keys()])
  })

  it("the 1-byte views map 0x60 and 0x64 separately around port 0x61", () => {
    const m = makeKbc()
    m.kbc.commandPort.write(0, 1, 0xaa)
    expect(m.kbc.commandPort.read(0, 1)).toBe(0x1d)
    expect(m.kbc.dataPort.read(0, 1)).toBe(0x55)
    expect(m.kbc.dataPort.read(1, 1)).toBe(0xff)
  })
})

describe("System Control Port A (0x92): fast A20 and fast reset", () => {
  it("bit 1 drives A20 on every write; a 0 -> 1 of bit 0 resets; reset clears bit 0 only", () => {
    const events: string[] = []
    const port = new PortA({
      onA20: (on) => events.push(on ? "a20 on" : "a20 off"),
      onReset: () => events.push("reset")
    })
    expect(port.read(0, 1)).toBe(0x00)
    port.write(0, 1, 0x02)
    expect(events).toEqual(["a20 on"])
    port.write(0, 1, 0x03)
    port.write(0, 1, 0x03)
    expect(events).toEqual(["a20 on", "a20 on", "reset", "a20 on"])
    expect(port.read(0, 1)).toBe(0x03)
    port.reset()
    expect(port.read(0, 1)).toBe(0x02)
    port.write(0, 1, 0x01)
    expect(events.slice(-2)).toEqual(["a20 off", "reset"])
    expect(port.a20).toBe(false)
  })
})

describe("System Control Port B (0x61) wired to the 8254's counter 2", () => {
  it("bit 0 gates counter 2, bit 5 reads its OUT, bit 4 toggles on every read, bit 1 is stored", () => {
    const time = { now: 0 }
    const pit = new Pit8254({ clock: () => time.now })
    const port = new PortB({ setGate2: (level) => pit.setGate(2, level), readOut2: () => pit.readOut(2) })
    port.reset() // the PC's counter 2 gate starts low
    pit.write(3, 1, 0xb0) // counter 2, LSB/MSB, mode 0
    pit.write(2, 1, 10)
    pit.write(2, 1, 0)
    time.now = pitTickTime(50)
    expect(port.read(0, 1)).toBe(0x10) // gate low: counting suspended, OUT low; refresh toggled
    expect(port.read(0, 1)).toBe(0x00)
    port.write(0, 1, 0x03)
    expect(port.speakerEnabled).toBe(true)
    time.now = pitTickTime(59)
    expect(port.read(0, 1) & 0x23).toBe(0x03) // loaded while gated off, counts 10 pulses from 50: OUT still low
    time.now = pitTickTime(60)
    expect(port.read(0, 1) & 0x23).toBe(0x23)
    expect(port.read(0, 1) & 0xcc).toBe(0) // parity bits and the error status read 0
  })

  it("snapshot/restore re-drives the gate", () => {
    const gates: boolean[] = []
    const port = new PortB({ setGate2: (level) => gates.push(level) })
    port.write(0, 1, 0x01)
    const snap = port.snapshot()
    const copy = new PortB({ setGate2: (level) => gates.push(level) })
    copy.restore(snap)
    expect(copy.snapshot()).toEqual(snap)
    expect(gates).toEqual([true, true])
  })
})

describe("8042 reset and snapshot", () => {
  it("reset returns to power-on without callbacks; snapshot/restore round-trips the queue", () => {
    const m = makeKbc()
    m.command(0xdd)
    m.data(0xf2)
    const snap = m.kbc.snapshot()
    const copy = makeKbc()
    copy.kbc.restore(snap)
    expect(copy.kbc.snapshot()).toEqual(snap)
    expect(copy.drain()).toEqual([0xfa, 0xab, 0x83])
    m.kbc.reset()
    expect(m.status()).toBe(0x18)
    expect(m.kbc.a20).toBe(true)
    expect(m.events).toEqual(["a20 off"])
  })
})
