/**
 * Register, segment, exception and control-register numbering of IA-32
 * (Intel SDM Vol. 2A 2.1.5 register encodings, Vol. 3A 6.15 exception
 * classes, 2.5 control registers). Plain numeric constants, shared by the
 * CPU, the disassembler and the VMM.
 */

// General-purpose registers, in ModRM/opcode encoding order.
export const EAX = 0
export const ECX = 1
export const EDX = 2
export const EBX = 3
export const ESP = 4
export const EBP = 5
export const ESI = 6
export const EDI = 7

// Segment registers, in ModRM "sreg" encoding order.
export const ES = 0
export const CS = 1
export const SS = 2
export const DS = 3
export const FS = 4
export const GS = 5

// Exception vectors (SDM Vol. 3A table 6-1).
export const DE = 0
export const DB = 1
export const NMI = 2
export const BP = 3
export const OF = 4
export const BR = 5
export const UD = 6
export const NM = 7
export const DF = 8
export const TS = 10
export const NP = 11
export const SSF = 12
export const GP = 13
export const PF = 14
export const MF = 16
export const AC = 17

// EFLAGS bits (SDM Vol. 1 3.4.3).
export const F_CF = 1 << 0
export const F_PF = 1 << 2
export const F_AF = 1 << 4
export const F_ZF = 1 << 6
export const F_SF = 1 << 7
export const F_TF = 1 << 8
export const F_IF = 1 << 9
export const F_DF = 1 << 10
export const F_OF = 1 << 11
export const F_IOPL = 3 << 12
export const F_NT = 1 << 14
export const F_RF = 1 << 16
export const F_VM = 1 << 17
export const F_AC = 1 << 18
export const F_ID = 1 << 21
/** The six arithmetic status flags. */
export const F_ARITH = F_CF | F_PF | F_AF | F_ZF | F_SF | F_OF
/** Bits software can change with POPF/IRET on this CPU (no VM86, no VIF/VIP). */
export const F_WRITABLE = F_ARITH | F_TF | F_IF | F_DF | F_IOPL | F_NT | F_RF | F_AC | F_ID

// CR0 / CR4 bits (SDM Vol. 3A 2.5).
export const CR0_PE = 1 << 0
export const CR0_MP = 1 << 1
export const CR0_EM = 1 << 2
export const CR0_TS = 1 << 3
export const CR0_ET = 1 << 4
export const CR0_NE = 1 << 5
export const CR0_WP = 1 << 16
export const CR0_AM = 1 << 18
export const CR0_NW = 1 << 29
export const CR0_CD = 1 << 30
export const CR0_PG = 1 << 31
export const CR4_VME = 1 << 0
export const CR4_PVI = 1 << 1
export const CR4_TSD = 1 << 2
export const CR4_DE = 1 << 3
export const CR4_PSE = 1 << 4
export const CR4_PGE = 1 << 7
export const CR4_VMXE = 1 << 13

// Descriptor access-rights bits, in the VMX "access rights" layout (SDM 3C 24.4.1).
export const AR_TYPE = 0xf
export const AR_ACCESSED = 1 << 0
export const AR_S = 1 << 4
export const AR_P = 1 << 7
export const AR_DB = 1 << 14
export const AR_G = 1 << 15
export const AR_UNUSABLE = 1 << 16
/** Type bits for S=1: bit 3 code, bit 2 conforming (code) / expand-down (data), bit 1 readable (code) / writable (data). */
export const TYPE_CODE = 8
export const TYPE_CONFORMING = 4
export const TYPE_EXPAND_DOWN = 4
export const TYPE_RW = 2
