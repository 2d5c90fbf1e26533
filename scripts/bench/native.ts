/**
 * "native" for the benchmarks: the guest with no hypervisor at all. A bare
 * machine (hw/machine/machine.ts: one pCPU, its RAM, its own PIC, PIT and
 * COM1 UART at 0x3F8) gets the Multiboot image loaded straight into its RAM
 * by the same loader plan a VM gets (vmm/loader: the kernel segments, bss,
 * the boot information block and the loader's GDT), pCPU 0 starts at the
 * entry point with the Multiboot machine state in ring 0, and the guest runs
 * directly on it: no VMX, no monitor, no exits, no shadow or EPT tables;
 * every instruction costs what the machine's cost profile says (the Machine
 * installs the profile on its pCPUs). The guest's COM1 is the machine's own
 * UART; its debug exit (a write to port 0xF4, isa-debug-exit) is caught by
 * a one-port device mapped on the machine's port bus for this run only.
 * This is the baseline the paper calls "native".
 */
import { Effect } from "effect"
import { type CostProfileName, decodeMachineConfig, defaultMachineConfig } from "../../hw/machine/config.ts"
import { Machine } from "../../hw/machine/machine.ts"
import { applyLoad, planMultibootLoad } from "../../vmm/loader/multiboot.ts"

export const DEBUG_EXIT_PORT = 0xf4

export interface NativeRun {
  readonly profile: CostProfileName
  /** COM1 output, one char per byte (latin1). */
  readonly serial: string
  /** The value the guest wrote to port 0xF4 (undefined: it never did before `maxNs`). */
  readonly exitCode: number | undefined
  /** Machine virtual time when the guest wrote to port 0xF4 (or when the run was stopped), ns. */
  readonly simulatedNs: number
  /** pCPU 0's simulated cycles (its TSC) at the end. */
  readonly cycles: number
  readonly wallMs: number
}

export interface NativeOptions {
  readonly profile: CostProfileName
  /** Machine RAM (default 16 MiB). */
  readonly ramMiB?: number
  readonly cmdline?: string
  /** Virtual time after which the run is stopped (default 2 s). */
  readonly maxNs?: number
}

/** Run a Multiboot image on a bare one-pCPU machine with no hypervisor (see the header). */
export const runNative = (image: Uint8Array, options: NativeOptions): Effect.Effect<NativeRun> =>
  Effect.gen(function* () {
    const ramMiB = options.ramMiB ?? 16
    const plan = planMultibootLoad(image, { ramBytes: ramMiB * 1024 * 1024, cmdline: options.cmdline ?? "" })
    if (plan._tag === "Failure") return yield* Effect.die(new Error(`native: ${plan.failure.message}`))
    const config = yield* decodeMachineConfig(
      "native machine",
      JSON.stringify({
        ...defaultMachineConfig,
        pcpus: 1,
        ramMiB,
        costProfile: options.profile,
        uart: { backend: "none" }
      })
    ).pipe(Effect.orDie)
    let serial = ""
    const machine = new Machine(config, { console: { transmit: (byte) => (serial += String.fromCharCode(byte)) } })
    let exitCode: number | undefined
    let exitNs = 0
    machine.ports.map(DEBUG_EXIT_PORT, 1, {
      name: "debug exit (native run)",
      read: () => 0xff,
      write: (_offset, _size, value) => {
        if (exitCode === undefined) {
          exitCode = value & 0xff
          exitNs = machine.nsOf(machine.cpus[0]!.cycles)
        }
      }
    })
    applyLoad(plan.success, (address, bytes) => machine.ram.set(bytes, address))
    const cpu = machine.cpus[0]!
    cpu.setState(plan.success.registers)
    const maxNs = options.maxNs ?? 2_000_000_000
    const start = performance.now()
    while (exitCode === undefined && machine.now < maxNs && !cpu.isShutdown) {
      if (!machine.step(1_000_000, maxNs)) break
    }
    const wallMs = performance.now() - start
    return {
      profile: options.profile,
      serial,
      exitCode,
      simulatedNs: exitCode === undefined ? machine.now : exitNs,
      cycles: cpu.cycles,
      wallMs
    }
  })
