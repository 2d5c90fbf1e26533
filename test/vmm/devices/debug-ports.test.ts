/**
 * The debug ports (vmm/devices/debug-ports) against QEMU's
 * hw/char/debugcon.c and hw/misc/debugexit.c: debugcon bytes and its 0xE9
 * read-back, isa-debug-exit values at every offset and size, and QEMU's
 * (v << 1) | 1 exit status next to fibervisor's "v itself, 0 = success".
 */
import { describe, expect, it } from "@effect/vitest"
import { Debugcon, DebugExit } from "../../../vmm/devices/debug-ports/debug-ports.ts"
import { qemuExitStatus } from "../../../vmm/devices/debug-ports/registers.ts"

describe("debugcon (0xE9)", () => {
  it("writes send the low byte to the sink; reads return 0xE9 (QEMU readback)", () => {
    const out: number[] = []
    const con = new Debugcon({ sink: (b) => out.push(b) })
    for (const c of "Hi\n") con.write(0, 1, c.charCodeAt(0))
    con.write(0, 2, 0x4142)
    expect(String.fromCharCode(...out)).toBe("Hi\nB")
    expect(con.read(0, 1)).toBe(0xe9)
    expect(con.read(0, 2)).toBe(0xe9)
    expect(con.bytesWritten).toBe(4)
    con.write(1, 1, 0x41)
    expect(con.read(1, 1)).toBe(0xff)
    expect(out.length).toBe(4)
  })
})

describe("isa-debug-exit (0xF4, iosize 4)", () => {
  it("a write of v at any offset and size requests exit with v (masked to the size); reads return 0", () => {
    const exits: number[] = []
    const dev = new DebugExit({ onExit: (v) => exits.push(v) })
    expect(dev.exitValue).toBe(null)
    dev.write(0, 1, 0)
    dev.write(0, 4, 0x31)
    dev.write(3, 1, 0x1ff)
    dev.write(2, 2, 0x12345)
    expect(exits).toEqual([0, 0x31, 0xff, 0x2345])
    expect(dev.exitValue).toBe(0x2345)
    expect(dev.read(0, 4)).toBe(0)
    dev.write(4, 1, 1)
    expect(exits.length).toBe(4)
    dev.reset()
    expect(dev.exitValue).toBe(null)
  })

  it("QEMU's host exit status is (v << 1) | 1, 8 bits: never 0; fibervisor reports v (0 = success)", () => {
    expect([0, 1, 0x10, 0x7f, 0x80].map(qemuExitStatus)).toEqual([1, 3, 0x21, 0xff, 0x01])
  })

  it("snapshot/restore", () => {
    const dev = new DebugExit()
    dev.write(0, 1, 7)
    const copy = new DebugExit()
    copy.restore(dev.snapshot())
    expect(copy.exitValue).toBe(7)
  })
})
