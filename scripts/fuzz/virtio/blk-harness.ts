/**
 * virtio-blk rig (the virtio tests and fuzz suite `virtio`): a guest
 * (driver.ts) with a virtio-blk device on a virtio-mmio transport over an
 * in-memory BlockStore, and one helper that builds a block request chain
 * (OASIS virtio 1.1 5.2.6), kicks and collects.
 */
import { recordingIrq } from "../../../hw/machine/device.ts"
import { memoryBlockStore, VirtioBlk, type VirtioBlkOptions } from "../../../vmm/virtio/blk.ts"
import { VirtioMmio } from "../../../vmm/virtio/mmio.ts"
import { type Buffer, Driver, makeGuest } from "./driver.ts"

export const HDR = 0x10000
export const DATA = 0x10100
export const STATUS = 0x3f000
export const TABLE = 0x8000
export const SECTORS = 64

export const setupBlk = (options: Partial<VirtioBlkOptions> = {}, sectors = SECTORS) => {
  const guest = makeGuest()
  const store = memoryBlockStore(Math.min(sectors, 4096))
  Object.assign(store, { sectors })
  const irq = recordingIrq()
  const blk = new VirtioBlk({ store, ...options })
  const dev = new VirtioMmio({ device: blk, memory: guest.memory, irq })
  const drv = new Driver(dev, guest)
  return { guest, store, irq, blk, dev, drv }
}

type Blk = ReturnType<typeof setupBlk>

interface RequestOptions {
  readonly out?: Uint8Array
  readonly inLength?: number
  /** Split header and data into several descriptors. */
  readonly split?: boolean
  /** Send the chain through an indirect table. */
  readonly indirect?: boolean
  readonly kick?: boolean
}

/** Build one block request chain, publish it, kick, and return what came back. */
export const blkRequest = (h: Blk, type: number, sector: number, opts: RequestOptions = {}) => {
  const { guest, drv } = h
  guest.view.setUint32(HDR, type, true)
  guest.view.setUint32(HDR + 4, 0, true)
  guest.view.setUint32(HDR + 8, sector % 2 ** 32, true)
  guest.view.setUint32(HDR + 12, Math.floor(sector / 2 ** 32), true)
  guest.ram[STATUS] = 0xff
  const buffers: Array<Buffer> = opts.split
    ? [
        { addr: HDR, len: 6 },
        { addr: HDR + 6, len: 10 }
      ]
    : [{ addr: HDR, len: 16 }]
  const pieces = (len: number, write: boolean): Array<Buffer> => {
    if (!opts.split || len < 3) return len > 0 ? [{ addr: DATA, len, write }] : []
    const a = Math.floor(len / 3)
    return [
      { addr: DATA, len: a, write },
      { addr: DATA + a, len: 1, write },
      { addr: DATA + a + 1, len: len - a - 1, write }
    ]
  }
  if (opts.out) {
    guest.ram.set(opts.out, DATA)
    buffers.push(...pieces(opts.out.length, false))
  }
  if (opts.inLength) buffers.push(...pieces(opts.inLength, true))
  buffers.push({ addr: STATUS, len: 1, write: true })
  const q = drv.queues[0]!
  if (opts.indirect) q.submitIndirect(buffers, TABLE)
  else q.submit(buffers)
  if (opts.kick ?? true) drv.kick(0)
  const used = q.collect()
  return {
    status: guest.ram[STATUS]!,
    used,
    data: guest.ram.slice(DATA, DATA + (opts.inLength ?? 0))
  }
}
