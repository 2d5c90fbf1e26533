/**
 * The VSwitches service: the host's virtual switches (vswitch.ts), by name,
 * as an Effect service (STYLE.md: interface + Context.Service + make/layer).
 * A VM attaches its virtual NICs with `attach`, which is scoped: when the
 * VM's scope closes its ports are detached (DESIGN.md: "a VM is a scoped
 * resource"). An unknown switch name fails with VSwitchNotFoundError.
 * Delivery itself stays synchronous inside the switch (vswitch.ts).
 */
import { Context, Effect, Layer, Schema, type Scope } from "effect"
import { VSwitch, type VSwitchAttachment, type VSwitchOptions } from "./vswitch.ts"

export class VSwitchNotFoundError extends Schema.TaggedError<VSwitchNotFoundError>()("VSwitchNotFoundError", {
  name: Schema.String,
  known: Schema.Array(Schema.String)
}) {
  override get message(): string {
    return `no vSwitch ${JSON.stringify(this.name)} (known: ${this.known.join(", ") || "none"})`
  }
}

export interface VSwitchesOptions {
  /** The switches to create (default: one, "vSwitch0"). Names must be unique. */
  readonly switches?: ReadonlyArray<VSwitchOptions & { readonly name: string }>
}

export interface VSwitchesShape {
  readonly names: ReadonlyArray<string>
  readonly get: (name: string) => Effect.Effect<VSwitch, VSwitchNotFoundError>
  /** Attach a port to `portGroup` of switch `switchName` for the lifetime of the current scope. */
  readonly attach: (
    switchName: string,
    portGroup: string,
    portName: string
  ) => Effect.Effect<VSwitchAttachment, VSwitchNotFoundError, Scope.Scope>
}

const make = (options: VSwitchesOptions = {}): Effect.Effect<VSwitchesShape> =>
  Effect.sync(() => {
    const specs = options.switches ?? [{ name: "vSwitch0" }]
    const switches = new Map<string, VSwitch>()
    for (const spec of specs) {
      if (switches.has(spec.name)) throw new RangeError(`VSwitches: duplicate switch name ${JSON.stringify(spec.name)}`)
      switches.set(spec.name, new VSwitch(spec))
    }
    const names = [...switches.keys()]
    const get = (name: string): Effect.Effect<VSwitch, VSwitchNotFoundError> => {
      const sw = switches.get(name)
      return sw === undefined ? Effect.fail(new VSwitchNotFoundError({ name, known: names })) : Effect.succeed(sw)
    }
    return {
      names,
      get,
      attach: (switchName, portGroup, portName) =>
        Effect.flatMap(get(switchName), (sw) =>
          Effect.acquireRelease(
            Effect.sync(() => sw.attach(portGroup, portName)),
            (attachment) => Effect.sync(() => attachment.detach())
          )
        )
    }
  })

export class VSwitches extends Context.Service<VSwitches, VSwitchesShape>()("fibervisor/VSwitches") {
  static readonly make = make
  static readonly layer = (options?: VSwitchesOptions): Layer.Layer<VSwitches> => Layer.effect(VSwitches, make(options))
}
