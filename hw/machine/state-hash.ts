/**
 * A fingerprint of a machine's architectural state (RAM, every pCPU's
 * registers and cycle count, every device's snapshot, virtual time), used by
 * the determinism tests: two runs with the same inputs must hash equal.
 * FNV-1a over two independent 32-bit lanes (64 bits): fast, not cryptographic.
 */
import type { Machine } from "./machine.ts"

class Fnv64 {
  private a = 0x811c9dc5
  private b = 0x01000193 ^ 0x5bd1e995

  bytes(data: Uint8Array): void {
    let a = this.a
    let b = this.b
    for (let i = 0; i < data.length; i++) {
      const x = data[i]!
      a = Math.imul(a ^ x, 0x01000193)
      b = Math.imul(b ^ x, 0x5bd1e995) ^ (b >>> 15)
    }
    this.a = a
    this.b = b
  }

  text(s: string): void {
    this.bytes(new TextEncoder().encode(s))
  }

  digest(): string {
    return (this.a >>> 0).toString(16).padStart(8, "0") + (this.b >>> 0).toString(16).padStart(8, "0")
  }
}

export const hashMachine = (m: Machine): string => {
  const h = new Fnv64()
  h.bytes(m.ram)
  h.text(String(m.now))
  for (const cpu of m.cpus)
    h.text(JSON.stringify({ state: cpu.getState(), cycles: cpu.cycles, instructions: cpu.instructions }))
  h.text(
    JSON.stringify({
      uart: m.uart.snapshot(),
      pic: m.pic.snapshot(),
      pit: m.pit.snapshot(),
      lapics: m.lapics.map((l) => l.snapshot()),
      block: m.block?.snapshot() ?? null,
      nic: m.nic?.snapshot() ?? null
    })
  )
  return h.digest()
}
