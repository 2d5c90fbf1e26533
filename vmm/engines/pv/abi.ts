/**
 * The paravirtual interface of `pv` mode: Xen's x86-32 guest ABI, as its
 * public headers define it (xen/include/public/xen.h, arch-x86/xen-x86_32.h,
 * arch-x86/xen.h, event_channel.h, sched.h, vcpu.h, memory.h, version.h,
 * features.h, elfnote.h, io/console.h). docs/pv.md is the guest's-eye
 * description and lists where fibervisor differs from Xen.
 */

/** Hypercall numbers (xen.h __HYPERVISOR_*). */
export const Hypercall = {
  set_trap_table: 0,
  mmu_update: 1,
  stack_switch: 3,
  set_callbacks: 4,
  memory_op: 12,
  update_va_mapping: 14,
  set_timer_op: 15,
  xen_version: 17,
  console_io: 18,
  grant_table_op: 20,
  iret: 23,
  vcpu_op: 24,
  mmuext_op: 26,
  sched_op: 29,
  event_channel_op: 32
} as const

/** The software interrupt of a hypercall on x86-32 (arch-x86/xen-x86_32.h: TRAP_INSTR "int $0x82"). */
export const HYPERCALL_VECTOR = 0x82
/** Each hypercall's stub in the hypercall page is 32 bytes long. */
export const HYPERCALL_STUB = 32

/** Negative errno values hypercalls return (xen/include/public/errno.h). */
export const Errno = {
  EPERM: -1,
  ENOENT: -2,
  ESRCH: -3,
  EFAULT: -14,
  EEXIST: -17,
  EINVAL: -22,
  ENOSYS: -38,
  ETIME: -62
} as const

/** The flat segments of the hypervisor's GDT (xen-x86_32.h FLAT_RING1_CS...): base 0, limit below the hole. */
export const FLAT_RING1_CS = 0xe019
export const FLAT_RING1_DS = 0xe021
export const FLAT_RING3_CS = 0xe02b
export const FLAT_RING3_DS = 0xe033

/** The hypervisor's hole at the top of every address space (XENVER_platform_parameters.virt_start). */
export const HYPERVISOR_VIRT_START = 0xffc00000

/** The domain's own id, as mmu_update/mmuext_op's foreign-domain argument (xen.h DOMID_SELF). */
export const DOMID_SELF = 0x7ff0

/** start_info_t field offsets (xen.h, x86-32: unsigned long = 4 bytes). */
export const StartInfo = {
  magic: 0,
  nr_pages: 32,
  shared_info: 36,
  flags: 40,
  store_mfn: 44,
  store_evtchn: 48,
  console_mfn: 52,
  console_evtchn: 56,
  pt_base: 60,
  nr_pt_frames: 64,
  mfn_list: 68,
  mod_start: 72,
  mod_len: 76,
  cmd_line: 80,
  /** MAX_GUEST_CMDLINE */
  cmd_line_size: 1024
} as const

/** shared_info layout (xen.h, arch-x86/xen.h; x86-32). */
export const SharedInfo = {
  vcpu_info: 0,
  vcpu_info_size: 64,
  evtchn_pending: 2048,
  evtchn_mask: 2176,
  wc_version: 2304
} as const

/** Offsets inside a vcpu_info. */
export const VcpuInfo = {
  evtchn_upcall_pending: 0,
  evtchn_upcall_mask: 1,
  evtchn_pending_sel: 4,
  arch_cr2: 8,
  time_version: 32,
  tsc_timestamp: 40,
  system_time: 48,
  tsc_to_system_mul: 56,
  tsc_shift: 60
} as const

/** Event-channel ports a 2-level x86-32 guest can use (32 words of 32 bits). */
export const NR_EVENT_CHANNELS = 1024

/** event_channel.h EVTCHNOP_* and the virtual IRQs (xen.h VIRQ_*). */
export const EvtchnOp = { bind_virq: 1, close: 3, send: 4, alloc_unbound: 6, unmask: 9 } as const
export const VIRQ_TIMER = 0
export const NR_VIRQS = 24

/** sched.h SCHEDOP_* and SHUTDOWN_* reasons. */
export const SchedOp = { yield: 0, block: 1, shutdown: 2, shutdown_code: 5 } as const
export const Shutdown = { poweroff: 0, reboot: 1, suspend: 2, crash: 3 } as const

/** xen.h MMUEXT_* commands and UVMF_* flags; MMU_NORMAL_PT_UPDATE. */
export const MmuExt = {
  pin_l1_table: 0,
  pin_l2_table: 1,
  unpin_table: 4,
  new_baseptr: 5,
  tlb_flush_local: 6,
  invlpg_local: 7,
  tlb_flush_all: 8,
  invlpg_all: 9
} as const
export const MMU_NORMAL_PT_UPDATE = 0
export const UVMF_TLB_FLUSH = 1
export const UVMF_INVLPG = 2
export const UVMF_FLUSHTYPE_MASK = 3

/** version.h, features.h. */
export const XenVer = { version: 0, platform_parameters: 5, get_features: 6 } as const
export const XEN_VERSION = 0x00030000
export const XENFEAT_auto_translated_physmap = 2

/** memory.h XENMEM_*. */
export const XenMem = { maximum_ram_page: 2, current_reservation: 3, maximum_reservation: 4 } as const

/** vcpu.h VCPUOP_*. */
export const VcpuOp = { is_up: 3, set_singleshot_timer: 8, stop_singleshot_timer: 9 } as const

/** console_io commands (xen.h CONSOLEIO_*). */
export const CONSOLEIO_write = 0

/** io/console.h xencons_interface. */
export const Console = {
  in: 0,
  in_size: 1024,
  out: 1024,
  out_size: 2048,
  in_cons: 3072,
  in_prod: 3076,
  out_cons: 3080,
  out_prod: 3084
} as const

/** trap_info_t flags (xen.h TI_GET_DPL, TI_GET_IF): bits 0-1 the DPL, bit 2 "mask events on entry". */
export const TI_DPL_MASK = 3
export const TI_MASK_EVENTS = 4

/** elfnote.h XEN_ELFNOTE_* types. */
export const XenElfNote = {
  entry: 1,
  hypercall_page: 2,
  virt_base: 3,
  paddr_offset: 4,
  xen_version: 5,
  guest_os: 6,
  loader: 8,
  pae_mode: 9,
  features: 10
} as const
