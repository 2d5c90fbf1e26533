/**
 * QEMU's firmware configuration device (fw_cfg), traditional I/O-port
 * interface at 0x510/0x511 (QEMU docs/specs/fw_cfg.rst; hw/nvram/fw_cfg.c
 * for the corner cases; registers.ts has keys and layout). It lets guest
 * firmware and kernels that probe for QEMU find the same answers here.
 *
 * - Selector: a 16-bit write selects an item and resets the data offset to
 *   0. Bit 15 picks the architecture-specific item space, bit 14 (the
 *   write channel, ignored since QEMU 2.4) is not part of the item number.
 * - Data: each byte read returns the next byte of the selected item and
 *   advances the offset; past the end, or for a key with no item, reads
 *   return 0 and the offset stays (fw_cfg.rst "Data Register"). Writes to
 *   the data register are ignored (QEMU >= 2.4). As in QEMU's combined
 *   2-byte region, a 16-bit write at either port selects and a byte read at
 *   either port reads data; any other access size is invalid there: reads
 *   return 0 and writes are dropped (QEMU `fw_cfg_comb_valid`).
 * - Items: FW_CFG_SIGNATURE "QEMU"; FW_CFG_ID = 1 (traditional interface
 *   only: QEMU's pc machine reports 3 and adds the DMA register at 0x514,
 *   which is not modelled, so firmware falls back to the byte interface);
 *   FW_CFG_RAM_SIZE (u64 LE), FW_CFG_NB_CPUS and FW_CFG_MAX_CPUS (u16 LE);
 *   FW_CFG_FILE_DIR, the file directory (big-endian count and entries),
 *   with the files given in the options or added with `addFile`: as in
 *   QEMU the directory is kept sorted by name and file keys follow
 *   directory order from 0x0020. Everything else reads 0.
 *
 * Reset (`reset()`): selects key 0 (QEMU fw_cfg_reset). Never throws on
 * guest accesses; only configuration mistakes (a bad file name, too many
 * files) throw RangeError, at construction / `addFile`.
 */
import type { AccessSize, BusDevice } from "../../../hw/machine/device.ts"
import {
  ARCH_LOCAL,
  DATA,
  ENTRY_MASK,
  FEATURE_TRADITIONAL,
  FILE_ENTRY_SIZE,
  FILE_NAME_SIZE,
  FILE_SLOTS,
  FwCfgKey,
  SELECTOR,
  SIGNATURE
} from "./registers.ts"
import type { FwCfgState } from "./state.ts"

export type { FwCfgState }

/** A named blob in the fw_cfg file directory (e.g. "opt/org.fibervisor/config"). */
export interface FwCfgFile {
  readonly name: string
  readonly data: Uint8Array
}

export interface FwCfgOptions {
  readonly name?: string | undefined
  /** Guest RAM in bytes (FW_CFG_RAM_SIZE). Default 0. */
  readonly ramBytes?: number | undefined
  /** Boot CPUs (FW_CFG_NB_CPUS). Default 1. */
  readonly cpus?: number | undefined
  /** FW_CFG_MAX_CPUS (QEMU: the APIC ID limit). Default: `cpus`. */
  readonly maxCpus?: number | undefined
  readonly files?: ReadonlyArray<FwCfgFile> | undefined
}

const u16le = (v: number) => Uint8Array.of(v & 0xff, (v >>> 8) & 0xff)
const u32le = (v: number) => Uint8Array.of(v & 0xff, (v >>> 8) & 0xff, (v >>> 16) & 0xff, (v >>> 24) & 0xff)
const u64le = (v: number) => {
  const b = new Uint8Array(8)
  b.set(u32le(v % 2 ** 32), 0)
  b.set(u32le(Math.floor(v / 2 ** 32)), 4)
  return b
}

const ascii = (s: string): Uint8Array => Uint8Array.from(s, (c) => c.charCodeAt(0))

/** strcmp order on ASCII names (QEMU sorts the directory with strcmp). */
const byName = (a: { name: string }, b: { name: string }) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0)

export class FwCfg implements BusDevice {
  readonly name: string
  private readonly items = new Map<number, Uint8Array>()
  private files: Array<FwCfgFile> = []
  private selector = 0
  private offset = 0

  constructor(options: FwCfgOptions = {}) {
    const ram = options.ramBytes ?? 0
    if (!Number.isSafeInteger(ram) || ram < 0) throw new RangeError("fw_cfg ramBytes must be a non-negative integer")
    const cpus = options.cpus ?? 1
    if (!Number.isInteger(cpus) || cpus < 1 || cpus > 0xffff) throw new RangeError("fw_cfg cpus must be 1..65535")
    const maxCpus = options.maxCpus ?? cpus
    if (!Number.isInteger(maxCpus) || maxCpus < cpus || maxCpus > 0xffff) {
      throw new RangeError("fw_cfg maxCpus must be cpus..65535")
    }
    this.name = options.name ?? "fw-cfg"
    this.items.set(FwCfgKey.Signature, ascii(SIGNATURE))
    this.items.set(FwCfgKey.Id, u32le(FEATURE_TRADITIONAL))
    this.items.set(FwCfgKey.RamSize, u64le(ram))
    this.items.set(FwCfgKey.NbCpus, u16le(cpus))
    this.items.set(FwCfgKey.MaxCpus, u16le(maxCpus))
    for (const file of options.files ?? []) this.addFile(file.name, file.data)
    this.rebuildDirectory()
  }

  // ---------------------------------------------------------------- bus

  read(offset: number, size: AccessSize): number {
    if (offset !== SELECTOR && offset !== DATA) return size === 4 ? 0xffffffff : size === 2 ? 0xffff : 0xff
    if (size !== 1) return 0 // an invalid access in QEMU's region: reads 0, offset unchanged
    const item = this.items.get(this.itemKey(this.selector))
    if (item === undefined || this.offset >= item.length) return 0
    return item[this.offset++]!
  }

  write(offset: number, size: AccessSize, value: number): void {
    if (offset !== SELECTOR && offset !== DATA) return
    if (size !== 2) return // byte writes hit the retired write channel; other sizes are invalid
    this.selector = Number.isFinite(value) ? value & 0xffff : 0
    this.offset = 0
  }

  /** The item a selector value reads: architecture bit + item number (the write-channel bit dropped). */
  private itemKey(selector: number): number {
    return (selector & ARCH_LOCAL) | (selector & ENTRY_MASK)
  }

  // ------------------------------------------------------------- items

  /** Add a file to the directory (kept sorted by name, as QEMU); returns its key now (later adds may move it). */
  addFile(name: string, data: Uint8Array): number {
    if (name.length === 0 || name.length >= FILE_NAME_SIZE || !/^[\x20-\x7e]+$/.test(name)) {
      throw new RangeError(`fw_cfg file name must be 1-${FILE_NAME_SIZE - 1} printable ASCII characters: ${name}`)
    }
    if (this.files.some((f) => f.name === name)) throw new RangeError(`fw_cfg file already exists: ${name}`)
    if (this.files.length >= FILE_SLOTS) throw new RangeError(`fw_cfg has only ${FILE_SLOTS} file slots`)
    this.files = [...this.files, { name, data: data.slice() }].sort(byName)
    this.rebuildDirectory()
    return this.fileKey(name)!
  }

  /** The selector key of a file, or undefined. */
  fileKey(name: string): number | undefined {
    const i = this.files.findIndex((f) => f.name === name)
    return i < 0 ? undefined : FwCfgKey.FileFirst + i
  }

  /** A copy of the item a selector value reads (undefined: none; reads 0). */
  item(selector: number): Uint8Array | undefined {
    return this.items.get(this.itemKey(selector & 0xffff))?.slice()
  }

  private rebuildDirectory(): void {
    for (let key = FwCfgKey.FileFirst; key < FwCfgKey.FileFirst + FILE_SLOTS; key++) this.items.delete(key)
    const dir = new Uint8Array(4 + this.files.length * FILE_ENTRY_SIZE)
    const view = new DataView(dir.buffer)
    view.setUint32(0, this.files.length, false)
    this.files.forEach((file, i) => {
      const at = 4 + i * FILE_ENTRY_SIZE
      view.setUint32(at, file.data.length, false)
      view.setUint16(at + 4, FwCfgKey.FileFirst + i, false)
      dir.set(ascii(file.name), at + 8)
      this.items.set(FwCfgKey.FileFirst + i, file.data)
    })
    this.items.set(FwCfgKey.FileDir, dir)
  }

  // ----------------------------------------------- reset and snapshot

  /** QEMU fw_cfg_reset: select key 0. */
  reset(): void {
    this.selector = 0
    this.offset = 0
  }

  snapshot(): FwCfgState {
    return { selector: this.selector, offset: this.offset }
  }

  restore(state: FwCfgState): void {
    this.selector = Number.isFinite(state.selector) ? state.selector & 0xffff : 0
    this.offset = Number.isSafeInteger(state.offset) && state.offset > 0 ? state.offset : 0
  }
}
