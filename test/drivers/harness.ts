/**
 * A real Machine for driver and kernel-service tests: 4 MiB of RAM, COM1
 * captured into a string, an in-memory datastore disk, a loopback NIC, and
 * a bump frame allocator (frame numbers) from 1 MiB up (the drivers' `allocFrame`).
 */
import { Effect } from "effect"
import { type MemoryBackend, memoryBackend } from "../../hw/devices/block/memory-backend.ts"
import { decodeMachineConfig, defaultMachineConfig, type MachineConfig } from "../../hw/machine/config.ts"
import { Machine } from "../../hw/machine/machine.ts"

export const config = (overrides: Record<string, unknown> = {}): MachineConfig =>
  Effect.runSync(
    decodeMachineConfig(
      "test",
      JSON.stringify({
        ...defaultMachineConfig,
        ramMiB: 4,
        pcpus: 1,
        block: { path: "memory", sizeMiB: 1 },
        nic: { backend: "loopback" },
        ...overrides
      })
    )
  )

export interface TestHost {
  readonly machine: Machine
  readonly disk: MemoryBackend
  /** Everything COM1 transmitted, as bytes. */
  readonly serial: Array<number>
  readonly allocFrame: () => number
  /** Frame numbers handed out so far. */
  readonly frames: Array<number>
}

/** Build a host; pass an existing disk to "reboot" on the same datastore. */
export const makeHost = (
  options: { disk?: MemoryBackend; sectors?: number; overrides?: Record<string, unknown> } = {}
) => {
  const disk = options.disk ?? memoryBackend(options.sectors ?? 2048)
  const serial: Array<number> = []
  const machine = new Machine(config(options.overrides), { console: { transmit: (b) => serial.push(b) }, disk })
  const frames: Array<number> = []
  let next = 0x100 // frame 256: 1 MiB
  const allocFrame = () => {
    const frame = next++
    frames.push(frame)
    return frame
  }
  return { machine, disk, serial, allocFrame, frames } satisfies TestHost
}

/** Unwrap a driver Result in a test (throws with the error as JSON). */
export const unwrap = <A, E>(
  r: { readonly ok: true; readonly value: A } | { readonly ok: false; readonly error: E }
): A => {
  if (!r.ok) throw new Error(`driver error: ${JSON.stringify(r.error)}`)
  return r.value
}
