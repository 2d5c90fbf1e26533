/**
 * The local APIC's interrupt banks and priority logic (Intel SDM Vol. 3A
 * 11.8.3 "Interrupt, Task, and Processor Priority" and 11.8.4 "Interrupt
 * Acceptance for Fixed Interrupts"; 10.8.x in older editions).
 *
 * IRR, ISR and TMR are 256-bit banks (8 dwords; vector v is bit v%32 of dword
 * v/32). A vector's priority class is v >> 4. An IRR vector is deliverable
 * when its class is above PPR's, PPR being the TPR, or the class of the
 * highest in-service vector when that is higher (11.8.3.1). Vectors 0-15
 * are never set here (the caller rejects them as illegal, 11.5.2).
 */

const highestBit = (bank: Uint32Array): number => {
  for (let i = 7; i >= 0; i--) {
    const w = bank[i]!
    if (w !== 0) return i * 32 + 31 - Math.clz32(w)
  }
  return -1
}
const testBit = (bank: Uint32Array, v: number) => (bank[v >>> 5]! & (1 << (v & 31))) !== 0
const setBit = (bank: Uint32Array, v: number) => {
  bank[v >>> 5]! |= 1 << (v & 31)
}
const clearBit = (bank: Uint32Array, v: number) => {
  bank[v >>> 5]! &= ~(1 << (v & 31))
}

export class VectorBanks {
  readonly irr = new Uint32Array(8)
  readonly isr = new Uint32Array(8)
  readonly tmr = new Uint32Array(8)

  clear(): void {
    this.irr.fill(0)
    this.isr.fill(0)
    this.tmr.fill(0)
  }

  /** Accept a fixed interrupt (16..255): IRR set, TMR set for level-triggered, cleared for edge (11.8.4). */
  request(vector: number, levelTriggered: boolean): void {
    setBit(this.irr, vector)
    if (levelTriggered) setBit(this.tmr, vector)
    else clearBit(this.tmr, vector)
  }

  /** PPR for a given TPR (11.8.3.1). */
  processorPriority(tpr: number): number {
    const isrv = Math.max(highestBit(this.isr), 0)
    return tpr >>> 4 >= isrv >>> 4 ? tpr : isrv & 0xf0
  }

  /** Is the highest IRR vector's class above the PPR's? */
  deliverable(tpr: number): boolean {
    const v = highestBit(this.irr)
    return v >= 0 && v >>> 4 > this.processorPriority(tpr) >>> 4
  }

  /** INTA: move the highest IRR vector to ISR and return it, or -1 if none is deliverable. */
  acknowledge(tpr: number): number {
    if (!this.deliverable(tpr)) return -1
    const v = highestBit(this.irr)
    clearBit(this.irr, v)
    setBit(this.isr, v)
    return v
  }

  /** EOI: clear the highest ISR bit; returns that vector (or -1) and whether it was level-triggered. */
  endOfInterrupt(): { readonly vector: number; readonly level: boolean } {
    const v = highestBit(this.isr)
    if (v < 0) return { vector: -1, level: false }
    clearBit(this.isr, v)
    return { vector: v, level: testBit(this.tmr, v) }
  }

  /** Load the banks from plain arrays, dropping vectors 0-15. */
  load(irr: ReadonlyArray<number>, isr: ReadonlyArray<number>, tmr: ReadonlyArray<number>): void {
    const word = (a: ReadonlyArray<number>, i: number) => {
      const v = a[i]
      const w = typeof v === "number" && Number.isFinite(v) ? v >>> 0 : 0
      return i === 0 ? w & 0xffff0000 : w
    }
    for (let i = 0; i < 8; i++) {
      this.irr[i] = word(irr, i)
      this.isr[i] = word(isr, i)
      this.tmr[i] = word(tmr, i)
    }
  }
}
