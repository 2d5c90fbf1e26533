/**
 * QEMU's debug console (port 0xE9) and isa-debug-exit (ports 0xF4-0xF7),
 * the two ports fibervisor's test images report through (QEMU
 * hw/char/debugcon.c and hw/misc/debugexit.c; registers.ts has the ports).
 *
 * Debugcon: every write at offset 0 sends its low byte to `sink(byte)`
 * (QEMU writes `(unsigned char)val` whatever the access size); every read
 * returns 0xE9, zero-extended (QEMU's readback value, how guests detect the
 * port). Other offsets read 0xFF and ignore writes.
 *
 * Debug exit: a write of any size at any offset within the 4-port window
 * is an exit request carrying the value written, masked to the access size
 * (QEMU ignores the offset); `onExit(value)` is called each time and the
 * VMM stops the VM. QEMU itself exits with host status (value << 1) | 1
 * (`qemuExitStatus`: a guest can never make QEMU exit 0, so harnesses map
 * 1 back to success); fibervisor reports `value` itself, so 0 = success and
 * the same image means the same thing under both. Reads return 0 (QEMU).
 *
 * Neither has time or interrupts. Never throws on any offset/size/value.
 */
import type { AccessSize, BusDevice } from "../../../hw/machine/device.ts"
import { DEBUG_EXIT_PORTS, DEBUGCON_READBACK } from "./registers.ts"
import type { DebugconState, DebugExitState } from "./state.ts"

export type { DebugconState, DebugExitState }

const sizeMask = (size: number) => (size === 4 ? 0xffffffff : size === 2 ? 0xffff : 0xff)

export interface DebugconOptions {
  readonly name?: string | undefined
  /** Where the guest's bytes go (the VMM wires the VM's console log). */
  readonly sink?: ((byte: number) => void) | undefined
}

/** Bochs/QEMU debug console at 0xE9. */
export class Debugcon implements BusDevice {
  readonly name: string
  private readonly sink: ((byte: number) => void) | undefined
  private written = 0

  constructor(options: DebugconOptions = {}) {
    this.name = options.name ?? "debugcon"
    this.sink = options.sink
  }

  read(offset: number, size: AccessSize): number {
    return offset === 0 ? DEBUGCON_READBACK : sizeMask(size)
  }

  write(offset: number, _size: AccessSize, value: number): void {
    if (offset !== 0) return
    this.written++
    this.sink?.(Number.isFinite(value) ? value & 0xff : 0)
  }

  get bytesWritten(): number {
    return this.written
  }

  reset(): void {}

  snapshot(): DebugconState {
    return { bytesWritten: this.written }
  }

  restore(state: DebugconState): void {
    this.written = Number.isSafeInteger(state.bytesWritten) && state.bytesWritten > 0 ? state.bytesWritten : 0
  }
}

export interface DebugExitOptions {
  readonly name?: string | undefined
  /** The guest asked to exit with `value` (0 = success under fibervisor). */
  readonly onExit?: ((value: number) => void) | undefined
}

/** QEMU isa-debug-exit with iosize 4 at 0xF4. */
export class DebugExit implements BusDevice {
  readonly name: string
  private readonly exitHook: ((value: number) => void) | undefined
  private value: number | null = null

  constructor(options: DebugExitOptions = {}) {
    this.name = options.name ?? "isa-debug-exit"
    this.exitHook = options.onExit
  }

  read(offset: number, size: AccessSize): number {
    return Number.isInteger(offset) && offset >= 0 && offset < DEBUG_EXIT_PORTS ? 0 : sizeMask(size)
  }

  write(offset: number, size: AccessSize, value: number): void {
    if (!Number.isInteger(offset) || offset < 0 || offset >= DEBUG_EXIT_PORTS) return
    const v = Number.isFinite(value) ? (value & sizeMask(size)) >>> 0 : 0
    this.value = v
    this.exitHook?.(v)
  }

  /** The value of the last exit request (null: none yet). */
  get exitValue(): number | null {
    return this.value
  }

  reset(): void {
    this.value = null
  }

  snapshot(): DebugExitState {
    return { exitValue: this.value }
  }

  restore(state: DebugExitState): void {
    this.value = typeof state.exitValue === "number" && Number.isFinite(state.exitValue) ? state.exitValue >>> 0 : null
  }
}
