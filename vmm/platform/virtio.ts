/**
 * Paravirtual I/O for a VM: virtio-mmio 1.x windows (OASIS virtio 1.1,
 * 4.2) at 0xFEB00000 + n * 0x200, block devices first, then NICs, each on
 * its own ISA IRQ from 5 up (lines a PC leaves free), reaching guest memory
 * only through the VM's own frames (vmm/guest-memory.ts). Disks are
 * Datastore files; NICs are vSwitch ports.
 */
import { Effect } from "effect"
import type { DatastoreFile } from "../../kernel/datastore/service.ts"
import type { NetPort } from "../../kernel/vswitch/vswitch.ts"
import { type BlockStore, VirtioBlk } from "../virtio/blk.ts"
import { VirtioMmio } from "../virtio/mmio.ts"
import { VirtioNet } from "../virtio/net.ts"
import { VIRTIO_MMIO_SIZE, virtioMmioBase } from "../virtio/registers.ts"
import type { VirtualMachine } from "../vm.ts"

/** The first virtio device's IRQ; device n uses IRQ 5 + n. */
export const VIRTIO_FIRST_IRQ = 5

export interface VirtioAttachments {
  readonly disks?: ReadonlyArray<BlockStore>
  readonly nics?: ReadonlyArray<{ readonly port: NetPort; readonly mac: ArrayLike<number> }>
}

/** Map the VM's virtio devices; returns the transports in order (disks, then NICs). */
export const addVirtioDevices = (vm: VirtualMachine, attachments: VirtioAttachments): Array<VirtioMmio> => {
  const transports: Array<VirtioMmio> = []
  const domain = vm.pvDomain
  if (domain !== undefined) {
    // a paravirtualized guest gets its disks and NICs through Xen's split block and network drivers instead
    // (vmm/engines/pv/blkback.ts, netback.ts)
    for (const store of attachments.disks ?? []) domain.attachDisk(store)
    for (const nic of attachments.nics ?? []) domain.attachNic(nic.port, nic.mac)
    return transports
  }
  const add = (device: VirtioBlk | VirtioNet) => {
    const n = transports.length
    const line = VIRTIO_FIRST_IRQ + n
    const transport = new VirtioMmio({
      device,
      memory: vm.guest,
      irq: { set: (level) => vm.platform.setIrq(line, level) }
    })
    vm.platform.addMmio(virtioMmioBase(n), VIRTIO_MMIO_SIZE, transport)
    transports.push(transport)
  }
  for (const store of attachments.disks ?? []) add(new VirtioBlk({ store }))
  for (const nic of attachments.nics ?? []) add(new VirtioNet({ port: nic.port, mac: nic.mac }))
  return transports
}

/**
 * A virtio-blk back-end over a Datastore file. The datastore's core is
 * synchronous (its block driver polls the physical disk in virtual time), so
 * its Effects run to completion here, inside the vCPU's quantum.
 */
export const datastoreBlockStore = (file: DatastoreFile, flush: Effect.Effect<void, unknown>): BlockStore => ({
  sectors: file.sectors,
  read: (sector, count) => {
    const r = Effect.runSync(Effect.result(file.read(sector, count)))
    return r._tag === "Success" ? r.success : undefined
  },
  write: (sector, data) => Effect.runSync(Effect.result(file.write(sector, data)))._tag === "Success",
  flush: () => Effect.runSync(Effect.result(flush))._tag === "Success"
})
