/**
 * The machine memory manager's error vocabulary: one Schema.TaggedError per
 * refusal, each naming who asked for what (a VM id or "kernel"), so a VM
 * that fails to power on or to grow says exactly why.
 *
 * The pure core (frames.ts, pools.ts, memory-manager.ts, ept-builder.ts)
 * *returns* these as values (`number | OutOfMemory`, never thrown); the
 * Effect service (service.ts) lifts them into the error channel. Breaking an
 * invariant of the manager itself (mapping a frame the VM does not own, a
 * leaked frame at release) is a hypervisor bug, not one of these: it throws
 * `MemoryInvariantError` and surfaces as a defect (DESIGN.md "Errors").
 */
import { Schema } from "effect"

/** Who owns a frame: a VM (by id) or the vmkernel itself. */
export type VmId = string
export type Owner = VmId | "kernel"

/** No free machine frame is left for `owner` (free frames promised to reservations do not count). */
export class OutOfMemory extends Schema.TaggedError<OutOfMemory>()("OutOfMemory", {
  owner: Schema.String,
  requested: Schema.Number,
  /** Frames free but not promised to any VM's reservation at the time of the request. */
  available: Schema.Number
}) {
  override get message(): string {
    return `out of machine memory: ${this.owner} asked for ${this.requested} frame(s), ${this.available} unreserved free`
  }
}

/** `frame` is already free. */
export class DoubleFree extends Schema.TaggedError<DoubleFree>()("DoubleFree", {
  frame: Schema.Number,
  owner: Schema.String
}) {
  override get message(): string {
    return `double free: ${this.owner} freed machine frame ${hex(this.frame)}, which is already free`
  }
}

/** `owner` tried to free `frame`, which belongs to `actualOwner` (or is not RAM the manager manages). */
export class NotFrameOwner extends Schema.TaggedError<NotFrameOwner>()("NotFrameOwner", {
  frame: Schema.Number,
  owner: Schema.String,
  actualOwner: Schema.String
}) {
  override get message(): string {
    return `${this.owner} may not free machine frame ${hex(this.frame)}: it belongs to ${this.actualOwner}`
  }
}

/** The VM would own more than its limit (guest frames and EPT page-table frames both count). */
export class MemoryLimitExceeded extends Schema.TaggedError<MemoryLimitExceeded>()("MemoryLimitExceeded", {
  vm: Schema.String,
  limit: Schema.Number,
  owned: Schema.Number,
  requested: Schema.Number
}) {
  override get message(): string {
    return `VM ${this.vm} is at its memory limit: owns ${this.owned} of ${this.limit} frame(s), asked for ${this.requested} more`
  }
}

/** Admission control: the VM's reservation cannot be guaranteed now, so it may not power on. */
export class AdmissionRefused extends Schema.TaggedError<AdmissionRefused>()("AdmissionRefused", {
  vm: Schema.String,
  reservation: Schema.Number,
  /** Free frames not already promised to other VMs' reservations. */
  available: Schema.Number
}) {
  override get message(): string {
    return `VM ${this.vm} refused by admission control: reservation of ${this.reservation} frame(s), only ${this.available} unreserved free`
  }
}

/** A pool spec that makes no sense (negative, non-integer, reservation above limit, shares <= 0). */
export class InvalidPoolSpec extends Schema.TaggedError<InvalidPoolSpec>()("InvalidPoolSpec", {
  vm: Schema.String,
  reason: Schema.String
}) {
  override get message(): string {
    return `VM ${this.vm}: invalid memory pool spec: ${this.reason}`
  }
}

export class VmAlreadyExists extends Schema.TaggedError<VmAlreadyExists>()("VmAlreadyExists", {
  vm: Schema.String
}) {
  override get message(): string {
    return `VM ${this.vm} already has a memory pool`
  }
}

export class UnknownVm extends Schema.TaggedError<UnknownVm>()("UnknownVm", {
  vm: Schema.String
}) {
  override get message(): string {
    return `no memory pool for VM ${this.vm}`
  }
}

/** Errors a frame allocation on behalf of a VM can end with. */
export type AllocationError = OutOfMemory | MemoryLimitExceeded

/** Errors freeing a frame can end with. */
export type FreeError = DoubleFree | NotFrameOwner

/** Every typed error of the memory manager. */
export type MemoryError =
  | OutOfMemory
  | DoubleFree
  | NotFrameOwner
  | MemoryLimitExceeded
  | AdmissionRefused
  | InvalidPoolSpec
  | VmAlreadyExists
  | UnknownVm

/** A broken invariant of the memory manager: a hypervisor bug (a panic, a defect in Effect terms). */
export class MemoryInvariantError extends Error {
  override readonly name = "MemoryInvariantError"
}

export const hex = (frame: number): string => `0x${frame.toString(16)}`
