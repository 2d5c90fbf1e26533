/**
 * The host side of the machine's COM1 UART: bytes the UART transmits go to
 * the host's stdout. One of the few files allowed to touch the real world
 * (hw/backends/), so the UART model itself stays pure and deterministic.
 */
import type { UartBackend } from "../devices/uart16550/uart16550.ts"

/** A UART back-end writing to a host stream; bytes are buffered and flushed per line (and on `flush`). */
export const streamConsole = (stream: NodeJS.WritableStream = process.stdout): UartBackend & { flush(): void } => {
  let pending: Array<number> = []
  const flush = () => {
    if (pending.length === 0) return
    stream.write(Buffer.from(pending))
    pending = []
  }
  return {
    transmit: (byte) => {
      pending.push(byte & 0xff)
      if (byte === 0x0a || pending.length >= 4096) flush()
    },
    flush
  }
}
