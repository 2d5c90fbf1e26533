/**
 * Cost classes: the coarse timing bucket of every IA-32 opcode.
 *
 * The opcode table (opcodes.ts) tags each instruction with one class; the cost
 * model (a separate issue) assigns a cycle count per class, informed by the
 * Intel SDM (Vol. 2 instruction pages, and the latency/throughput tables of the
 * Intel 64 and IA-32 Architectures Optimization Reference Manual, P6 family).
 * A class groups instructions of similar cost, not of similar meaning.
 *
 *   Alu        ADD..CMP, TEST, INC/DEC, NEG/NOT, shifts and rotates, LEA, SETcc,
 *              CBW/CWD, flag ops (CLC STC CMC CLD STD SAHF LAHF), SALC, BSWAP,
 *              XADD, CMPXCHG, CMPXCHG8B
 *   Mov        MOV (reg, mem, imm, moffs, from Sreg), MOVZX/MOVSX, XCHG, CMOVcc, XLAT
 *   Stack      PUSH/POP (reg, mem, imm, Sreg push), PUSHA/POPA, PUSHF/POPF, ENTER, LEAVE
 *   Branch     near JMP/Jcc/CALL/RET, LOOP/LOOPcc, JCXZ
 *   Mul        MUL, IMUL (all forms)
 *   Div        DIV, IDIV
 *   String     MOVS, CMPS, STOS, LODS, SCAS (cost per iteration when repeated)
 *   Io         IN, OUT, INS, OUTS (port I/O; usually a VM exit when virtualized)
 *   Far        segment loads: far JMP/CALL/RET, MOV Sreg, POP Sreg, LDS/LES/LFS/LGS/LSS
 *   Interrupt  INT n, INT3, INT1, INTO, IRET, BOUND, UD2, the x87 escapes D8-DF
 *              (no FPU is modelled, so an escape costs the fault it raises)
 *   System     HLT, CLI/STI, descriptor tables (LGDT..SLDT, LTR, STR), LAR/LSL,
 *              VERR/VERW, ARPL, CLTS, SMSW/LMSW, MOV CRn/DRn, INVD, WBINVD, INVLPG,
 *              RDMSR/WRMSR, RDTSC, RDPMC, CPUID, SYSENTER/SYSEXIT
 *   Bcd        DAA, DAS, AAA, AAS, AAM, AAD
 *   Bit        BT/BTS/BTR/BTC, BSF/BSR, SHLD/SHRD
 *   Nop        NOP (90 and 0F 1F), PAUSE, WAIT
 *   Prefix     prefix bytes and the 0F escape (they cost decode time only)
 *   Invalid    undefined opcodes (#UD)
 */

export const CostClass = {
  Alu: 0,
  Mov: 1,
  Stack: 2,
  Branch: 3,
  Mul: 4,
  Div: 5,
  String: 6,
  Io: 7,
  Far: 8,
  Interrupt: 9,
  System: 10,
  Bcd: 11,
  Bit: 12,
  Nop: 13,
  Prefix: 14,
  Invalid: 15
} as const
export type CostClass = (typeof CostClass)[keyof typeof CostClass]

/** Number of cost classes: per-class arrays (cycles, counters) have this length. */
export const costClassCount = 16
