/**
 * The PC/AT keyboard controller, an Intel 8042 at ports 0x60 (data) and
 * 0x64 (status / command), kept minimal: what guests use it for on a
 * headless VM is its status register, the CPU reset line and the A20 gate
 * (IBM PC/AT Technical Reference, "Keyboard Controller": status register,
 * commands, output port; QEMU hw/input/pckbd.c for every value below).
 *
 * - Status (0x64 read): output buffer full (bit 0) while the output queue
 *   holds a byte, bit 5 when that byte is from the mouse port; the input
 *   buffer is always empty (bit 1 = 0: commands complete instantly); the
 *   command and unlocked bits are set from power-on and the system flag
 *   after a self-test, as QEMU.
 * - Reset: command 0xFE (and every 0xF0-0xFF pulse command with bit 0
 *   clear) pulses the CPU reset line: `onReset()`. So does writing the
 *   output port (0xD1 + data) with bit 0 clear (QEMU `outport_write`).
 * - A20: 0xD1 + data drives A20 from data bit 1, 0xDD / 0xDF turn it off /
 *   on: `onA20(enabled)` each time. Port 0x92 drives the same CPU line;
 *   as in QEMU, the last writer wins (the two latches are not ORed).
 * - The rest of the command set QEMU answers: read/write the command byte
 *   (0x20/0x60), self-test 0xAA -> 0x55, interface tests 0xAB/0xA9 -> 0x00,
 *   enable/disable keyboard and mouse (0xAE/0xAD, 0xA8/0xA7), read input
 *   port 0xC0 -> 0x80, read output port 0xD0, write the output buffer as
 *   keyboard / mouse (0xD2/0xD3), write to the mouse (0xD4).
 * - Devices behind it: a keyboard that answers the PS/2 commands probes
 *   send (ACK 0xFA; reset -> FA AA; identify -> FA AB 41/83; echo -> EE;
 *   scan code set get/set; unknown -> resend 0xFE, as QEMU's ps2.c) and a
 *   mouse that ACKs everything (reset -> FA AA 00, identify -> FA 00).
 *   No key or motion events are ever generated.
 * - IRQ 1 / IRQ 12 (optional lines) follow QEMU's kbd_update_irq: high
 *   while the head of the output queue is keyboard data and the command
 *   byte enables it (and the keyboard is enabled), or mouse data and the
 *   mouse interrupt is enabled.
 *
 * The output queue holds at most 16 bytes (QEMU's PS/2 queue; further
 * bytes are dropped); reading 0x60 with the queue empty returns the last
 * byte read again (QEMU, "needed for EMM386").
 *
 * Mapping: the device decodes offset 0 as port 0x60 and offset 4 as 0x64;
 * port 0x61 in between is port B (system-control.ts), so the VMM maps the
 * two 1-byte views `dataPort` (0x60) and `commandPort` (0x64). Wider
 * accesses are handled as byte accesses at the offset (QEMU's i8042 ports
 * are byte registers). Never throws; unknown offsets read 0xFF.
 */
import type { AccessSize, BusDevice, IrqLine } from "../../../hw/machine/device.ts"
import {
  ACK,
  AuxCommand,
  BAT_OK,
  Command,
  ECHO,
  I8042_COMMAND,
  I8042_DATA,
  INPUT_PORT,
  INTERFACE_TEST_OK,
  KeyboardCommand,
  MODE_POWER_ON,
  Mode,
  OUTPORT_POWER_ON,
  OutPort,
  QUEUE_SIZE,
  RESEND,
  SELF_TEST_OK,
  STATUS_POWER_ON,
  Status
} from "./registers.ts"
import type { I8042Byte, I8042State } from "./state.ts"

export type { I8042State }

export interface I8042Options {
  readonly name?: string | undefined
  /** The controller pulsed the CPU reset line (the guest asked for a reset). */
  readonly onReset?: (() => void) | undefined
  /** The controller drove the A20 gate (true = A20 enabled). */
  readonly onA20?: ((enabled: boolean) => void) | undefined
  /** IRQ 1 (keyboard) and IRQ 12 (mouse). */
  readonly irq1?: IrqLine | undefined
  readonly irq12?: IrqLine | undefined
}

/** QEMU's answer to "get scan code set" with translation on, indexed by set. */
const TRANSLATED_SET = [0xff, 0x43, 0x41, 0x3f]

export class I8042 implements BusDevice {
  readonly name: string
  /** Port 0x60 alone (offset 0). */
  readonly dataPort: BusDevice
  /** Port 0x64 alone (offset 0). */
  readonly commandPort: BusDevice
  private readonly resetHook: (() => void) | undefined
  private readonly a20Hook: ((enabled: boolean) => void) | undefined
  private readonly irq1: IrqLine | undefined
  private readonly irq12: IrqLine | undefined

  private status = STATUS_POWER_ON
  private mode = MODE_POWER_ON
  private outport = OUTPORT_POWER_ON
  private pendingCommand = 0
  private keyboardCommand = 0
  private auxCommand = 0
  private scanCodeSet = 2
  private queue: I8042Byte[] = []
  private lastData = 0
  private irq1Level = false
  private irq12Level = false

  constructor(options: I8042Options = {}) {
    this.name = options.name ?? "i8042"
    this.resetHook = options.onReset
    this.a20Hook = options.onA20
    this.irq1 = options.irq1
    this.irq12 = options.irq12
    const view = (name: string, offset: number): BusDevice => ({
      name,
      read: (o, size) => (o === 0 ? this.read(offset, size) : 0xff),
      write: (o, size, value) => {
        if (o === 0) this.write(offset, size, value)
      }
    })
    this.dataPort = view(`${this.name}-data`, I8042_DATA)
    this.commandPort = view(`${this.name}-command`, I8042_COMMAND)
  }

  // ---------------------------------------------------------------- bus

  read(offset: number, _size: AccessSize): number {
    if (offset === I8042_COMMAND) return this.status
    if (offset !== I8042_DATA) return 0xff
    const head = this.queue.shift()
    if (head !== undefined) this.lastData = head.value
    this.update()
    return this.lastData
  }

  write(offset: number, _size: AccessSize, value: number): void {
    const byte = Number.isFinite(value) ? value & 0xff : 0
    if (offset === I8042_COMMAND) this.command(byte)
    else if (offset === I8042_DATA) this.data(byte)
  }

  // ------------------------------------------------------- controller

  private command(cmd: number): void {
    // 0xF0-0xFF pulse output port bits 3-0 where the command bit is 0; only bit 0 (reset) does anything
    if ((cmd & Command.PulseBase) === Command.PulseBase) {
      if (!(cmd & 1)) this.resetHook?.()
      return
    }
    switch (cmd) {
      case Command.ReadMode:
        this.enqueue(this.mode, false)
        break
      case Command.WriteMode:
      case Command.WriteOutputPort:
      case Command.WriteKeyboardBuffer:
      case Command.WriteAuxBuffer:
      case Command.WriteAux:
        this.pendingCommand = cmd
        break
      case Command.DisableAux:
        this.mode |= Mode.DisableAux
        break
      case Command.EnableAux:
        this.mode &= ~Mode.DisableAux
        break
      case Command.TestAux:
      case Command.TestKeyboard:
        this.enqueue(INTERFACE_TEST_OK, false)
        break
      case Command.SelfTest:
        this.status |= Status.System
        this.enqueue(SELF_TEST_OK, false)
        break
      case Command.DisableKeyboard:
        this.mode |= Mode.DisableKeyboard
        this.update()
        break
      case Command.EnableKeyboard:
        this.mode &= ~Mode.DisableKeyboard
        this.update()
        break
      case Command.ReadInputPort:
        this.enqueue(INPUT_PORT, false)
        break
      case Command.ReadOutputPort:
        this.enqueue(this.outport, false)
        break
      case Command.EnableA20:
        this.outport |= OutPort.A20
        this.a20Hook?.(true)
        break
      case Command.DisableA20:
        this.outport &= ~OutPort.A20
        this.a20Hook?.(false)
        break
      default: // unsupported commands are ignored (QEMU logs a guest error)
    }
  }

  private data(byte: number): void {
    const cmd = this.pendingCommand
    this.pendingCommand = 0
    switch (cmd) {
      case 0:
        this.keyboard(byte)
        break
      case Command.WriteMode:
        this.mode = byte
        this.update()
        break
      case Command.WriteKeyboardBuffer:
        this.enqueue(byte, false)
        break
      case Command.WriteAuxBuffer:
        this.enqueue(byte, true)
        break
      case Command.WriteOutputPort:
        this.outport = byte
        this.a20Hook?.((byte & OutPort.A20) !== 0)
        if (!(byte & OutPort.ResetHigh)) this.resetHook?.()
        break
      case Command.WriteAux:
        this.mouse(byte)
        break
      default:
    }
  }

  // ------------------------------------------------ keyboard and mouse

  private keyboard(byte: number): void {
    const pending = this.keyboardCommand
    this.keyboardCommand = 0
    if (pending === KeyboardCommand.ScanCodeSet) {
      if (byte === 0) {
        this.enqueue(ACK, false)
        this.enqueue(this.mode & Mode.Translate ? TRANSLATED_SET[this.scanCodeSet]! : this.scanCodeSet, false)
      } else if (byte >= 1 && byte <= 3) {
        this.scanCodeSet = byte
        this.enqueue(ACK, false)
      } else {
        this.enqueue(RESEND, false)
      }
      return
    }
    if (pending !== 0) {
      this.enqueue(ACK, false) // the argument of set LEDs / rate / make-break
      return
    }
    switch (byte) {
      case 0x00:
      case KeyboardCommand.Enable:
      case KeyboardCommand.SetAllTypematic:
        this.enqueue(ACK, false)
        break
      case KeyboardCommand.Echo:
        this.enqueue(ECHO, false)
        break
      case KeyboardCommand.Identify:
        this.enqueue(ACK, false)
        this.enqueue(0xab, false)
        this.enqueue(this.mode & Mode.Translate ? 0x41 : 0x83, false)
        break
      case KeyboardCommand.SetLeds:
      case KeyboardCommand.SetRate:
      case KeyboardCommand.ScanCodeSet:
      case KeyboardCommand.SetMakeBreak:
        this.keyboardCommand = byte
        this.enqueue(ACK, false)
        break
      case KeyboardCommand.ResetDisable:
      case KeyboardCommand.ResetEnable:
        this.scanCodeSet = 2
        this.enqueue(ACK, false)
        break
      case KeyboardCommand.Reset:
        this.scanCodeSet = 2
        this.enqueue(ACK, false)
        this.enqueue(BAT_OK, false)
        break
      default:
        this.enqueue(RESEND, false)
    }
  }

  private mouse(byte: number): void {
    if (this.auxCommand !== 0) {
      this.auxCommand = 0
      this.enqueue(ACK, true)
      return
    }
    this.enqueue(ACK, true)
    if (byte === AuxCommand.SetResolution || byte === AuxCommand.SetSampleRate) this.auxCommand = byte
    else if (byte === AuxCommand.Identify) this.enqueue(0x00, true)
    else if (byte === AuxCommand.Reset) {
      this.enqueue(BAT_OK, true)
      this.enqueue(0x00, true)
    }
  }

  private enqueue(value: number, aux: boolean): void {
    if (this.queue.length < QUEUE_SIZE) this.queue.push({ value: value & 0xff, aux })
    this.update()
  }

  /** OBF / AUX OBF in the status and output port, and the IRQ 1 / 12 levels (QEMU kbd_update_irq). */
  private update(): void {
    const head = this.queue[0]
    this.status &= ~(Status.OutputFull | Status.AuxOutputFull)
    this.outport &= ~(OutPort.OutputFull | OutPort.AuxOutputFull)
    let kbd = false
    let aux = false
    if (head !== undefined) {
      this.status |= Status.OutputFull
      this.outport |= OutPort.OutputFull
      if (head.aux) {
        this.status |= Status.AuxOutputFull
        this.outport |= OutPort.AuxOutputFull
        aux = (this.mode & Mode.AuxInterrupt) !== 0
      } else {
        kbd = (this.mode & Mode.KeyboardInterrupt) !== 0 && !(this.mode & Mode.DisableKeyboard)
      }
    }
    if (kbd !== this.irq1Level) {
      this.irq1Level = kbd
      this.irq1?.set(kbd)
    }
    if (aux !== this.irq12Level) {
      this.irq12Level = aux
      this.irq12?.set(aux)
    }
  }

  // ----------------------------------------------- reset and snapshot

  /** The output port's A20 bit (what 0xD0 would report). */
  get a20(): boolean {
    return (this.outport & OutPort.A20) !== 0
  }

  /** Power-on state (QEMU kbd_reset): nothing queued, A20 on, reset line high; no callbacks are made. */
  reset(): void {
    this.status = STATUS_POWER_ON
    this.mode = MODE_POWER_ON
    this.outport = OUTPORT_POWER_ON
    this.pendingCommand = 0
    this.keyboardCommand = 0
    this.auxCommand = 0
    this.scanCodeSet = 2
    this.queue = []
    this.lastData = 0
    this.update()
  }

  snapshot(): I8042State {
    return {
      status: this.status,
      mode: this.mode,
      outport: this.outport,
      pendingCommand: this.pendingCommand,
      keyboardCommand: this.keyboardCommand,
      auxCommand: this.auxCommand,
      scanCodeSet: this.scanCodeSet,
      queue: this.queue.map((b) => ({ ...b })),
      lastData: this.lastData
    }
  }

  restore(state: I8042State): void {
    const byte = (v: number) => (Number.isFinite(v) ? v & 0xff : 0)
    this.status = byte(state.status)
    this.mode = byte(state.mode)
    this.outport = byte(state.outport)
    this.pendingCommand = byte(state.pendingCommand)
    this.keyboardCommand = byte(state.keyboardCommand)
    this.auxCommand = byte(state.auxCommand)
    this.scanCodeSet = state.scanCodeSet >= 1 && state.scanCodeSet <= 3 ? Math.floor(state.scanCodeSet) : 2
    this.queue = state.queue.slice(0, QUEUE_SIZE).map((b) => ({ value: byte(b.value), aux: b.aux === true }))
    this.lastData = byte(state.lastData)
    this.update()
  }
}
