/**
 * The two QEMU debugging ports guests use to talk to the test harness
 * (QEMU hw/char/debugcon.c, the Bochs "port e9 hack"; QEMU
 * hw/misc/debugexit.c, `-device isa-debug-exit,iobase=0xf4,iosize=0x04`).
 *
 * ```
 * port       device           read                        write
 * 0xE9       debugcon         0xE9 (QEMU's "readback")    low byte -> console
 * 0xF4-0xF7  isa-debug-exit   0                           value v (any size) -> exit
 * ```
 */

export const DEBUGCON_PORT = 0xe9
export const DEBUGCON_PORTS = 1
/** What a read of the debugcon port returns (QEMU property "readback", default 0xE9). */
export const DEBUGCON_READBACK = 0xe9

export const DEBUG_EXIT_PORT = 0xf4
/** The iosize the images use (QEMU's default is 2; DESIGN.md boots with iosize=0x04). */
export const DEBUG_EXIT_PORTS = 4

/**
 * The host exit status QEMU gives a write of `value` to isa-debug-exit:
 * exit((value << 1) | 1), truncated to 8 bits by the host OS. So a guest
 * can never make QEMU exit 0: value 0 is status 1, value 1 status 3. Under
 * fibervisor the VMM reports `value` itself, and 0 means success.
 */
export const qemuExitStatus = (value: number): number => ((value << 1) | 1) & 0xff
