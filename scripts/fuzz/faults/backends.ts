/**
 * Fault-injecting back-ends for fuzz suite `faults` (issue 8 "Fault
 * injection"): they sit where real hardware fails, below everything the
 * hypervisor owns.
 *
 * - `faultyDisk` wraps the datastore's physical disk (a BlockBackend, the
 *   contract of hw/devices/block/backend.ts) and fails requests that touch a
 *   bad region of the medium: every read, every write, writes that store
 *   only their first half and then report failure (a torn, short write), or
 *   one request in three ("flaky"). The fvblk controller turns a failure into
 *   a descriptor error status, as a disk's media error becomes a SCSI check
 *   condition.
 * - `faultyPort` wraps a vSwitch port (kernel/vswitch NetPort) as a flaky
 *   uplink would: "lossy" drops every other frame both ways, "down" drops
 *   everything (a pulled cable) and reports the lost carrier, which the
 *   virtio-net device shows the guest as link down.
 *
 * Both count what they injected, so a check can tell an error the guest
 * was owed from one it was not.
 */
import type { BlockBackend } from "../../../hw/devices/block/backend.ts"
import { SECTOR_SIZE } from "../../../hw/devices/block/registers.ts"
import type { NetPort } from "../../../kernel/vswitch/vswitch.ts"

export type MediaFault = "none" | "readErrors" | "writeErrors" | "shortWrites" | "flaky"

export interface FaultyDisk extends BlockBackend {
  /** The bad region [start, end) in sectors, and what goes wrong there. */
  fault: { start: number; end: number; kind: MediaFault }
  /** Requests failed on purpose so far. */
  injected: number
}

export const faultyDisk = (inner: BlockBackend): FaultyDisk => {
  let calls = 0
  const hits = (sector: number, count: number) =>
    disk.fault.kind !== "none" && sector < disk.fault.end && sector + count > disk.fault.start
  const flakyFails = () => ++calls % 3 === 0
  const disk: FaultyDisk = {
    sectors: inner.sectors,
    fault: { start: 0, end: 0, kind: "none" },
    injected: 0,
    read: (sector, count) => {
      if (hits(sector, count) && (disk.fault.kind === "readErrors" || (disk.fault.kind === "flaky" && flakyFails()))) {
        disk.injected++
        return undefined
      }
      return inner.read(sector, count)
    },
    write: (sector, data) => {
      const count = data.length / SECTOR_SIZE
      if (hits(sector, count)) {
        const kind = disk.fault.kind
        if (kind === "writeErrors" || (kind === "flaky" && flakyFails())) {
          disk.injected++
          return false
        }
        if (kind === "shortWrites") {
          disk.injected++
          const half = Math.floor(count / 2)
          if (half > 0) inner.write(sector, data.subarray(0, half * SECTOR_SIZE))
          return false
        }
      }
      return inner.write(sector, data)
    },
    flush: () => inner.flush()
  }
  return disk
}

export type LinkFault = "none" | "lossy" | "down"

export interface FaultyPort extends NetPort {
  readonly fault: LinkFault
  /** Change the fault; going down or coming back up is reported as a carrier change. */
  setFault(fault: LinkFault): void
  /** Frames dropped on purpose so far (both directions). */
  dropped: number
}

export const faultyPort = (inner: NetPort): FaultyPort => {
  let frames = 0
  let fault: LinkFault = "none"
  const drops = () => {
    const drop = fault === "down" || (fault === "lossy" && ++frames % 2 === 0)
    if (drop) port.dropped++
    return drop
  }
  let carrier: ((up: boolean) => void) | undefined
  const port: FaultyPort = {
    get fault() {
      return fault
    },
    setFault: (next) => {
      const wasDown = fault === "down"
      fault = next
      if (wasDown !== (next === "down")) carrier?.(wasDown) // was down: back up; was up: down
    },
    onLinkChange: (cb) => {
      carrier = cb
    },
    dropped: 0,
    send: (frame) => {
      if (!drops()) inner.send(frame)
    },
    onReceive: (cb) =>
      inner.onReceive((frame) => {
        if (!drops()) cb(frame)
      })
  }
  return port
}
