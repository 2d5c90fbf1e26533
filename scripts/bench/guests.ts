/**
 * The compute guests `bench cpu` runs: the two loops of the benchmark issue,
 * as raw 32-bit code placed at GUEST_CODE in a flat protected-mode machine.
 * Each loop body runs ECX times and ends with HLT; the instruction count is
 * therefore fixed by ECX. test/bench checks these bytes disassemble to the
 * listed source, so the encoding cannot silently drift.
 */

export const GUEST_CODE = 0x100000
export const GUEST_BUFFER = 0x200000

export interface ComputeGuest {
  readonly name: string
  readonly source: ReadonlyArray<string>
  readonly bytes: ReadonlyArray<number>
  /** Instructions per loop iteration. */
  readonly perIteration: number
}

export const aluLoop: ComputeGuest = {
  name: "alu",
  source: ["add eax, ebx", "xor ebx, eax", "rol ebx, 0x3", "dec ecx", "jnz 0x100000", "hlt"],
  bytes: [0x01, 0xd8, 0x31, 0xc3, 0xc1, 0xc3, 0x03, 0x49, 0x75, 0xf6, 0xf4],
  perIteration: 5
}

export const memoryLoop: ComputeGuest = {
  name: "memory",
  source: [
    "mov edx, ecx",
    "and edx, 0xfff",
    "add eax, [edx*4+0x200000]",
    "mov [edx*4+0x200000], eax",
    "dec ecx",
    "jnz 0x100000",
    "hlt"
  ],
  bytes: [
    0x89, 0xca, 0x81, 0xe2, 0xff, 0x0f, 0x00, 0x00, 0x03, 0x04, 0x95, 0x00, 0x00, 0x20, 0x00, 0x89, 0x04, 0x95, 0x00,
    0x00, 0x20, 0x00, 0x49, 0x75, 0xe7, 0xf4
  ],
  perIteration: 6
}

export const computeGuests = [aluLoop, memoryLoop] as const
