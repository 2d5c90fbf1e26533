/**
 * The host machine's configuration: what the emulated bare metal is made of.
 *
 * Decoded with Effect Schema from JSON (a file or the embedded default), with
 * every error reported at once. This is the "hardware inventory" a real
 * server would have: pCPUs, RAM, devices and their host back-ends, the cycle
 * cost profile and the seed that makes a run deterministic.
 *
 * Invariants: pcpus in 1..64, RAM in 1..4096 MiB (32-bit physical space
 * without PAE), seed a 32-bit integer.
 */
import { Effect, Schema } from "effect"

const Int = (minimum: number, maximum: number) => Schema.Int.pipe(Schema.check(Schema.isBetween({ minimum, maximum })))

export const CostProfileName = Schema.Literals(["vtx-2006", "modern"])
export type CostProfileName = typeof CostProfileName.Type

export const UartConfig = Schema.Struct({
  /** Where bytes the UART transmits go: the host's stdout (scripts/ supplies it) or nowhere. */
  backend: Schema.Literals(["stdio", "none"])
})

export const TimerConfig = Schema.Struct({
  /** Legacy PIT 8254 + PIC 8259 pair, a local APIC timer per pCPU, or both. */
  kind: Schema.Literals(["pit-pic", "lapic", "both"])
})

export const BlockConfig = Schema.Struct({
  /** Host file that backs the datastore disk. */
  path: Schema.NonEmptyString,
  sizeMiB: Int(1, 1 << 20)
})

export const NicConfig = Schema.Struct({
  backend: Schema.Literals(["none", "loopback"])
})

export class MachineConfig extends Schema.Class<MachineConfig>("fibervisor/MachineConfig")({
  name: Schema.NonEmptyString,
  pcpus: Int(1, 64),
  // RAM sits below the MMIO hole at 0xE0000000 (no PAE): at most 3.5 GiB
  ramMiB: Int(1, 3584),
  costProfile: CostProfileName,
  seed: Int(-2147483648, 4294967295),
  uart: UartConfig,
  timer: TimerConfig,
  block: Schema.NullOr(BlockConfig),
  nic: NicConfig
}) {}

export class MachineConfigError extends Schema.TaggedError<MachineConfigError>()("MachineConfigError", {
  source: Schema.String,
  message: Schema.String
}) {}

/** Decode a JSON text into a MachineConfig, listing every problem found. */
export const decodeMachineConfig = (source: string, text: string) =>
  Schema.decodeUnknownEffect(Schema.fromJsonString(MachineConfig))(text, { errors: "all" }).pipe(
    Effect.mapError((e) => new MachineConfigError({ source, message: e.message }))
  )

/** The host config `fibervisor start` boots when given none: a small 2-way server. */
export const defaultMachineConfig = {
  name: "fibervisor-host",
  pcpus: 2,
  ramMiB: 256,
  costProfile: "modern",
  seed: 1,
  uart: { backend: "stdio" },
  timer: { kind: "both" },
  block: null,
  nic: { backend: "loopback" }
} as const satisfies typeof MachineConfig.Encoded
