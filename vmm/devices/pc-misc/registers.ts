/**
 * Ports and bits of the PC/AT system-control odds and ends (IBM PC/AT
 * Technical Reference, "Keyboard Controller" and "System Control Port B";
 * Intel 8042/8742 "UPI-41A/42" data sheet status register; IBM PS/2
 * "System Control Port A"; QEMU hw/input/pckbd.c, hw/i386/port92.c,
 * hw/audio/pcspk.c).
 *
 * ```
 * port  device            read                              write
 * 0x60  8042 data         output buffer                     data (to keyboard, or a command's argument)
 * 0x61  port B            gate2 | spk<<1 | refresh<<4 | OUT2<<5   bit 0 PIT gate 2, bit 1 speaker data
 * 0x64  8042 status/cmd   status register                   controller command
 * 0x92  port A            last value written                bit 1 A20 gate, bit 0 (0->1) fast reset
 * ```
 */

export const I8042_DATA_PORT = 0x60
export const PORT_B = 0x61
export const I8042_COMMAND_PORT = 0x64
export const PORT_A = 0x92

/** I8042 as one BusDevice: offset 0 is port 0x60, offset 4 is port 0x64 (0x61 belongs to port B). */
export const I8042_DATA = 0
export const I8042_COMMAND = 4

/** 8042 status register (read at 0x64). */
export const Status = {
  OutputFull: 0x01,
  InputFull: 0x02,
  /** System flag: set by a successful self-test (0xAA). */
  System: 0x04,
  /** The last write was to the command port (QEMU keeps it set). */
  Command: 0x08,
  /** Keyboard not inhibited by the keylock. */
  Unlocked: 0x10,
  /** The output buffer holds a byte from the auxiliary (mouse) port. */
  AuxOutputFull: 0x20,
  Timeout: 0x40,
  ParityError: 0x80
} as const

/** Status after power-on, as QEMU's kbd_reset: command flag and unlocked. */
export const STATUS_POWER_ON = Status.Command | Status.Unlocked

/** Controller command byte ("mode", read with 0x20, written with 0x60). */
export const Mode = {
  KeyboardInterrupt: 0x01,
  AuxInterrupt: 0x02,
  System: 0x04,
  NoKeylock: 0x08,
  DisableKeyboard: 0x10,
  DisableAux: 0x20,
  /** Scan code translation (set 2 -> set 1). */
  Translate: 0x40
} as const

export const MODE_POWER_ON = Mode.KeyboardInterrupt | Mode.AuxInterrupt

/** Controller commands (written to 0x64). */
export const Command = {
  ReadMode: 0x20,
  WriteMode: 0x60,
  DisableAux: 0xa7,
  EnableAux: 0xa8,
  TestAux: 0xa9,
  SelfTest: 0xaa,
  TestKeyboard: 0xab,
  DisableKeyboard: 0xad,
  EnableKeyboard: 0xae,
  ReadInputPort: 0xc0,
  ReadOutputPort: 0xd0,
  WriteOutputPort: 0xd1,
  WriteKeyboardBuffer: 0xd2,
  WriteAuxBuffer: 0xd3,
  WriteAux: 0xd4,
  DisableA20: 0xdd,
  EnableA20: 0xdf,
  /** 0xF0-0xFF pulse output port bits 3-0 low where the command's bit is 0; 0xFE pulses bit 0: CPU reset. */
  PulseBase: 0xf0,
  Reset: 0xfe
} as const

/** Output port P2 bits. */
export const OutPort = {
  /** 0 holds the CPU in reset. */
  ResetHigh: 0x01,
  A20: 0x02,
  OutputFull: 0x10,
  AuxOutputFull: 0x20
} as const

/** Output port after power-on, as QEMU: reset line high, A20 on, bits 2, 3, 6, 7 set. */
export const OUTPORT_POWER_ON = OutPort.ResetHigh | OutPort.A20 | 0xcc

/** Replies. */
export const SELF_TEST_OK = 0x55
export const INTERFACE_TEST_OK = 0x00
/** QEMU's input port value (0xC0): keyboard not inhibited. */
export const INPUT_PORT = 0x80
export const ACK = 0xfa
export const RESEND = 0xfe
export const BAT_OK = 0xaa
export const ECHO = 0xee

/** PS/2 keyboard commands the minimal keyboard answers (written to 0x60). */
export const KeyboardCommand = {
  SetLeds: 0xed,
  Echo: 0xee,
  ScanCodeSet: 0xf0,
  Identify: 0xf2,
  SetRate: 0xf3,
  Enable: 0xf4,
  ResetDisable: 0xf5,
  ResetEnable: 0xf6,
  SetAllTypematic: 0xfa,
  SetMakeBreak: 0xfb,
  Reset: 0xff
} as const

/** PS/2 mouse commands that take an argument byte, and the identify/reset commands. */
export const AuxCommand = {
  SetResolution: 0xe8,
  SetSampleRate: 0xf3,
  Identify: 0xf2,
  Reset: 0xff
} as const

/** The 8042's output queue depth (QEMU's PS2_QUEUE_SIZE). */
export const QUEUE_SIZE = 16

/** Port A (0x92) bits. */
export const PORT_A_RESET = 0x01
export const PORT_A_A20 = 0x02

/** Port B (0x61) bits. */
export const PORT_B_GATE2 = 0x01
export const PORT_B_SPEAKER = 0x02
export const PORT_B_REFRESH = 0x10
export const PORT_B_OUT2 = 0x20
