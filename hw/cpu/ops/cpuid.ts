/**
 * CPUID (Intel SDM Vol. 2A CPUID, tables 3-8 and 3-10): what this pCPU
 * says it is. A P6-family integer core without x87/MMX/SSE:
 * leaf 1 EDX reports DE PSE TSC MSR CX8 APIC SEP PGE CMOV and nothing else;
 * ECX.VMX (bit 5) is set only on CPUs built with the VT-x-like extension.
 * Leaves above the maximum return the highest basic leaf, as Intel parts do.
 */
import type { Cpu } from "../cpu.ts"
import { ExitReason } from "../vmx/exit-reasons.ts"
import { unconditionalExits } from "../vmx/exits.ts"

const MAX_BASIC = 1
const MAX_EXTENDED = 0x80000004

/** Feature bits of CPUID.1:EDX. */
export const CPUID_EDX =
  (1 << 2) | // DE: debugging extensions (CR4.DE)
  (1 << 3) | // PSE: 4 MiB pages
  (1 << 4) | // TSC
  (1 << 5) | // MSR
  (1 << 8) | // CX8: CMPXCHG8B
  (1 << 9) | // APIC
  (1 << 11) | // SEP: SYSENTER/SYSEXIT
  (1 << 13) | // PGE: global pages
  (1 << 15) // CMOV

/** Family 6, model 3, stepping 3 (a P6-class signature). */
export const CPUID_SIGNATURE = 0x00000633

const ascii = (s: string): Array<number> => {
  const bytes = Array.from(s.padEnd(48, "\0"), (ch) => ch.charCodeAt(0))
  const words: Array<number> = []
  for (let i = 0; i < 48; i += 4)
    words.push(bytes[i]! | (bytes[i + 1]! << 8) | (bytes[i + 2]! << 16) | (bytes[i + 3]! << 24))
  return words
}
const BRAND = ascii("fibervisor IA-32 pCPU")
const VENDOR = ascii("GenuineIntel")

export function cpuid(c: Cpu): void {
  // CPUID always exits in VMX non-root operation (SDM 3C 26.1.2)
  if (unconditionalExits(c, ExitReason.Cpuid)) return
  let leaf = c.r32[0]! >>> 0
  if (leaf >= 0x80000000 ? leaf > MAX_EXTENDED : leaf > MAX_BASIC) leaf = MAX_BASIC
  let a = 0
  let b = 0
  let cx = 0
  let d = 0
  switch (leaf) {
    case 0:
      a = MAX_BASIC
      b = VENDOR[0]!
      d = VENDOR[1]!
      cx = VENDOR[2]!
      break
    case 1:
      a = CPUID_SIGNATURE
      b = (c.apicId << 24) | (1 << 16)
      cx = c.vmxSupported ? 1 << 5 : 0
      d = CPUID_EDX
      break
    case 0x80000000:
      a = MAX_EXTENDED
      break
    case 0x80000002:
    case 0x80000003:
    case 0x80000004: {
      const i = (leaf - 0x80000002) * 4
      a = BRAND[i]!
      b = BRAND[i + 1]!
      cx = BRAND[i + 2]!
      d = BRAND[i + 3]!
      break
    }
  }
  c.r32[0] = a
  c.r32[3] = b
  c.r32[1] = cx
  c.r32[2] = d
}
