/**
 * drivers/serial.ts on a real Machine: the UART is probed and programmed
 * (8N1, divisor, FIFOs, interrupts off) and text written through THR
 * reaches the UART's host back-end byte for byte.
 */
import { describe, expect, it } from "@effect/vitest"
import { COM1_BASE, LCR_8N1, SerialConsole } from "../../drivers/serial.ts"
import { makeHost, unwrap } from "./harness.ts"

const text = (bytes: ReadonlyArray<number>) => new TextDecoder().decode(Uint8Array.from(bytes))

describe("serial console driver", () => {
  it("programs 8N1 at the requested speed with FIFOs on", () => {
    const { machine } = makeHost()
    const serial = unwrap(SerialConsole.open(machine.ports, { baud: 9600 }))
    expect(serial.divisor).toBe(12)
    expect(machine.uart.baudRate()).toBe(9600)
    expect(machine.uart.bitsPerCharacter()).toBe(10) // start + 8 data + 1 stop
    expect(machine.ports.read(COM1_BASE + 3, 1)).toBe(LCR_8N1)
    expect(serial.fifoDepth).toBe(16)
    expect(machine.ports.read(COM1_BASE + 1, 1)).toBe(0) // IER: polled
  })

  it("writes reach the UART back-end, in order, as UTF-8", () => {
    const { machine, serial } = makeHost()
    const uart = unwrap(SerialConsole.open(machine.ports))
    const message = `fibervisor: ${"long line ".repeat(10)}héllo\n`
    expect(uart.writeString(message)).toBe(new TextEncoder().encode(message).length)
    expect(text(serial)).toBe(message)
    expect(uart.dropped).toBe(0)
  })

  it("translates newlines when asked", () => {
    const { machine, serial } = makeHost()
    const uart = unwrap(SerialConsole.open(machine.ports, { crlf: true }))
    uart.writeString("a\nb\r\nc")
    expect(text(serial)).toBe("a\r\nb\r\nc")
  })

  it("refuses an empty port range and an impossible speed", () => {
    const { machine } = makeHost()
    expect(SerialConsole.open(machine.ports, { base: 0x2f8 })).toEqual({
      ok: false,
      error: { _tag: "NoDevice", base: 0x2f8 }
    })
    expect(SerialConsole.open(machine.ports, { baud: 7 }).ok).toBe(false)
  })

  it("reads received bytes through LSR.DR and RBR", () => {
    const { machine } = makeHost()
    const uart = unwrap(SerialConsole.open(machine.ports))
    expect(uart.readByte()).toBeUndefined()
    machine.uart.receive([0x41, 0x42])
    expect([uart.readByte(), uart.readByte(), uart.readByte()]).toEqual([0x41, 0x42, undefined])
  })

  it("gives up on bytes when THRE never comes back", () => {
    let thr = 0
    let scratch = 0
    const stuck = {
      read: (address: number) => (address === COM1_BASE + 5 ? 0 : address === COM1_BASE + 2 ? 0xc1 : scratch),
      write: (address: number, _size: 1 | 2 | 4, value: number) => {
        if (address === COM1_BASE + 7) scratch = value
        if (address === COM1_BASE) thr++
      }
    }
    const uart = unwrap(SerialConsole.open(stuck, { spinLimit: 10 }))
    thr = 0
    expect(uart.writeString("abc")).toBe(0)
    expect(uart.dropped).toBe(3)
    expect(thr).toBe(0)
  })
})
