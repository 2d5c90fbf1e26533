/**
 * A VM's configuration (issue 6 "VM lifecycle"), decoded with Effect Schema
 * from JSON (a file or inline) with every error listed at once: name,
 * memory, vCPUs, execution mode (for hw: EPT or shadow paging), CPU and
 * memory resource settings (ESX shares / reservation / limit), what it boots
 * (a Multiboot kernel with a command line, or a firmware ROM with QEMU
 * `-bios` semantics), its disks (datastore files) and NICs (vSwitch port
 * groups).
 *
 * Unknown keys are errors (a misspelt "memoryMB" must not silently mean the
 * default). Every mode is part of the schema (the vCPU loop takes a
 * pluggable execution engine); a mode not in `availableModes` would be
 * refused until its engine exists (today every mode is built).
 */
import { Effect, Schema } from "effect"

const Int = (minimum: number, maximum: number) => Schema.Int.pipe(Schema.check(Schema.isBetween({ minimum, maximum })))

/**
 * hw: VT-x trap-and-emulate; bt: binary translation; pv: paravirtualization;
 * emu: pure emulation (every instruction on a software CPU of the VM,
 * vmm/engines/emu.ts); trap: a demonstration -- deprivileged without
 * translation, which x86 does not virtualize correctly (vmm/engines/bt).
 */
export const ExecutionMode = Schema.Literals(["hw", "bt", "pv", "emu", "trap"])
export type ExecutionMode = typeof ExecutionMode.Type

/** Modes whose execution engine is built. */
export const availableModes: ReadonlyArray<ExecutionMode> = ["hw", "bt", "pv", "emu", "trap"]

export const Shares = Schema.Union([Schema.Literals(["high", "normal", "low"]), Int(1, 1_000_000)])

export const VmConfig = Schema.Struct({
  name: Schema.String.pipe(Schema.check(Schema.isPattern(/^[A-Za-z0-9][A-Za-z0-9._-]{0,31}$/))),
  memoryMiB: Int(1, 3072),
  vcpus: Int(1, 16),
  mode: ExecutionMode,
  /**
   * `hw` mode: run with EPT (true, the default) or without (false: shadow
   * page tables, first-generation VT-x; vmm/shadow/vmx-shadow-paging.ts).
   * Only `hw` has the choice: giving it with another mode is an error.
   */
  ept: Schema.optionalKey(Schema.Boolean),
  cpu: Schema.Struct({
    shares: Shares,
    /** Guaranteed fraction of one pCPU. */
    reservation: Schema.Number.pipe(Schema.check(Schema.isBetween({ minimum: 0, maximum: 64 }))),
    /** Cap as a fraction of one pCPU; null = none. */
    limit: Schema.NullOr(Schema.Number.pipe(Schema.check(Schema.isBetween({ minimum: 0.001, maximum: 64 }))))
  }),
  memory: Schema.Struct({
    /** MiB guaranteed (admission control). */
    reservationMiB: Int(0, 3072),
    /** MiB cap (guest RAM plus EPT tables); null = guest RAM + 1 MiB of tables. */
    limitMiB: Schema.NullOr(Int(1, 4096))
  }),
  boot: Schema.Union([
    Schema.Struct({ kernel: Schema.NonEmptyString, cmdline: Schema.String }),
    Schema.Struct({ bios: Schema.NonEmptyString })
  ]),
  disks: Schema.Array(Schema.Struct({ file: Schema.NonEmptyString })),
  nics: Schema.Array(Schema.Struct({ portGroup: Schema.NonEmptyString }))
})
export type VmConfig = typeof VmConfig.Type

export class VmConfigError extends Schema.TaggedError<VmConfigError>()("VmConfigError", {
  source: Schema.String,
  message: Schema.String
}) {}

/** Decode a VM config (JSON text), listing every problem, including modes that are not built yet. */
export const decodeVmConfig = (source: string, text: string) =>
  Schema.decodeUnknownEffect(Schema.fromJsonString(VmConfig))(text, { errors: "all", onExcessProperty: "error" }).pipe(
    Effect.mapError((e) => new VmConfigError({ source, message: e.message })),
    Effect.flatMap((config) =>
      !availableModes.includes(config.mode)
        ? Effect.fail(
            new VmConfigError({
              source,
              message: `mode "${config.mode}" is not built yet (available: ${availableModes.join(", ")})\n  at ["mode"]`
            })
          )
        : config.ept !== undefined && config.mode !== "hw"
          ? Effect.fail(
              new VmConfigError({
                source,
                message: `"ept" applies to mode "hw" only (this VM's mode is "${config.mode}")\n  at ["ept"]`
              })
            )
          : Effect.succeed(config)
    )
  )

/** A config with the defaults a user would expect for `fibervisor boot IMAGE`. */
export const defaultVmConfig = (name: string, kernel: string): VmConfig => ({
  name,
  memoryMiB: 16,
  vcpus: 1,
  mode: "hw",
  cpu: { shares: "normal", reservation: 0, limit: null },
  memory: { reservationMiB: 0, limitMiB: null },
  boot: { kernel, cmdline: "" },
  disks: [],
  nics: []
})
