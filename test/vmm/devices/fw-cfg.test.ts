/**
 * The fw_cfg device (vmm/devices/fw-cfg) against QEMU's
 * docs/specs/fw_cfg.rst ("Selector (Control) Register", "Data Register",
 * "Firmware Configuration Items", "File Directory"), byte by byte, and
 * QEMU's fw_cfg.c corner cases (invalid access sizes, the write channel and
 * architecture bits, sorted file directory, reset).
 */
import { describe, expect, it } from "@effect/vitest"
import { FwCfg } from "../../../vmm/devices/fw-cfg/fw-cfg.ts"
import { DATA, SELECTOR } from "../../../vmm/devices/fw-cfg/registers.ts"

const select = (fw: FwCfg, key: number) => fw.write(SELECTOR, 2, key)
const bytes = (fw: FwCfg, n: number) => Array.from({ length: n }, () => fw.read(DATA, 1))
const ascii = (s: string) => Array.from(s, (c) => c.charCodeAt(0))

describe("fw_cfg.rst 'Signature (Key 0x0000)' and 'Data Register'", () => {
  it("key 0 reads 'QEMU' byte by byte, then 0 past the end; key 0 is selected from power-on", () => {
    const fw = new FwCfg()
    expect(bytes(fw, 6)).toEqual([...ascii("QEMU"), 0, 0])
    select(fw, 0x0000)
    expect(String.fromCharCode(...bytes(fw, 4))).toBe("QEMU")
  })

  it("selecting resets the data offset; either port of the 2-byte region works (QEMU comb region)", () => {
    const fw = new FwCfg()
    fw.read(DATA, 1)
    select(fw, 0)
    expect(fw.read(SELECTOR, 1)).toBe(0x51)
    fw.write(DATA, 2, 0x0000)
    expect(fw.read(DATA, 1)).toBe(0x51)
  })

  it("invalid sizes: wide reads return 0 without advancing; byte writes (the retired write channel) vanish", () => {
    const fw = new FwCfg()
    expect(fw.read(DATA, 2)).toBe(0)
    expect(fw.read(DATA, 4)).toBe(0)
    fw.write(DATA, 1, 0xff)
    fw.write(SELECTOR, 4, 0x0005)
    expect(fw.read(DATA, 1)).toBe(0x51)
    expect(fw.read(7, 1)).toBe(0xff)
  })
})

describe("fw_cfg.rst 'Revision / feature bitmap (Key 0x0001)' and the machine items", () => {
  it("FW_CFG_ID = 1: traditional interface only (no DMA)", () => {
    const fw = new FwCfg()
    select(fw, 0x0001)
    expect(bytes(fw, 5)).toEqual([0x01, 0x00, 0x00, 0x00, 0x00])
  })

  it("FW_CFG_NB_CPUS (0x05) and FW_CFG_MAX_CPUS (0x0F, default = cpus): u16 little-endian", () => {
    const fw = new FwCfg({ cpus: 4, maxCpus: 0x0102 })
    select(fw, 0x0005)
    expect(bytes(fw, 3)).toEqual([0x04, 0x00, 0x00])
    select(fw, 0x000f)
    expect(bytes(fw, 2)).toEqual([0x02, 0x01])
    const one = new FwCfg({ cpus: 3 })
    select(one, 0x000f)
    expect(bytes(one, 2)).toEqual([0x03, 0x00])
  })

  it("FW_CFG_RAM_SIZE (0x03): u64 little-endian, above 4 GiB too", () => {
    const fw = new FwCfg({ ramBytes: 6 * 2 ** 30 + 0x1234 })
    select(fw, 0x0003)
    expect(bytes(fw, 9)).toEqual([0x34, 0x12, 0x00, 0x80, 0x01, 0x00, 0x00, 0x00, 0x00])
    const small = new FwCfg({ ramBytes: 128 << 20 })
    select(small, 0x0003)
    expect(bytes(small, 8)).toEqual([0x00, 0x00, 0x00, 0x08, 0x00, 0x00, 0x00, 0x00])
  })

  it("unknown keys and the architecture space read 0; bit 14 (write channel) is not part of the key", () => {
    const fw = new FwCfg()
    for (const key of [0x0002, 0x0004, 0x1234, 0x3fff, 0x8000, 0x8003, 0xffff]) {
      select(fw, key)
      expect(bytes(fw, 3)).toEqual([0, 0, 0])
    }
    select(fw, 0x4000)
    expect(bytes(fw, 4)).toEqual(ascii("QEMU"))
  })
})

describe("fw_cfg.rst 'File Directory (Key 0x0019)'", () => {
  it("no files: a big-endian count of 0 and nothing else", () => {
    const fw = new FwCfg()
    select(fw, 0x0019)
    expect(bytes(fw, 6)).toEqual([0, 0, 0, 0, 0, 0])
  })

  it("files: sorted by name, 64-byte big-endian entries, keys from 0x0020 in directory order", () => {
    const fw = new FwCfg({ files: [{ name: "opt/z", data: Uint8Array.of(1, 2, 3) }] })
    fw.addFile("opt/a", new Uint8Array(0x1234))
    expect(fw.fileKey("opt/a")).toBe(0x20)
    expect(fw.fileKey("opt/z")).toBe(0x21)
    select(fw, 0x0019)
    const dir = bytes(fw, 4 + 2 * 64)
    expect(dir.slice(0, 4)).toEqual([0, 0, 0, 2])
    expect(dir.slice(4, 12)).toEqual([0x00, 0x00, 0x12, 0x34, 0x00, 0x20, 0x00, 0x00])
    expect(dir.slice(12, 12 + 6)).toEqual([...ascii("opt/a"), 0])
    expect(dir.slice(68, 76)).toEqual([0x00, 0x00, 0x00, 0x03, 0x00, 0x21, 0x00, 0x00])
    select(fw, 0x0021)
    expect(bytes(fw, 4)).toEqual([1, 2, 3, 0])
  })

  it("bad file names, duplicates and overflowing the 32 slots are configuration errors", () => {
    const fw = new FwCfg()
    expect(() => fw.addFile("", new Uint8Array())).toThrow(RangeError)
    expect(() => fw.addFile("x".repeat(56), new Uint8Array())).toThrow(RangeError)
    fw.addFile("opt/one", new Uint8Array())
    expect(() => fw.addFile("opt/one", new Uint8Array())).toThrow(RangeError)
    for (let i = 1; i < 32; i++) fw.addFile(`opt/f${i}`, new Uint8Array())
    expect(() => fw.addFile("opt/last", new Uint8Array())).toThrow(RangeError)
  })
})

describe("reset and snapshot", () => {
  it("reset selects key 0 (QEMU fw_cfg_reset); snapshot/restore keeps the selection and offset", () => {
    const fw = new FwCfg({ cpus: 2 })
    select(fw, 0x0005)
    const snap = fw.snapshot()
    const copy = new FwCfg({ cpus: 2 })
    copy.restore(snap)
    expect(copy.read(DATA, 1)).toBe(2)
    fw.reset()
    expect(fw.read(DATA, 1)).toBe(0x51)
  })
})
