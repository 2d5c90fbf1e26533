/**
 * The `vm` case of fuzz suite `virtio` (scripts/fuzz/suites/virtio.ts): a
 * real guest on a booted host drives its virtio-blk (window 0) and
 * virtio-net (window 1) devices, wired by the VMM's own addVirtioDevices
 * (vmm/platform/virtio.ts), with hostile traffic: random register stores and
 * loads, proper initializations, hostile descriptors, avail entries and
 * indices, and kicks. Each step is one or a few `mov dword [abs], imm32`
 * (or a load) in flat 32-bit code, so the transport is reached through
 * EPT-violation exits and the devices reach the VM's own frames
 * (vmm/guest-memory.ts).
 *
 * The guest then resets both devices (Status = 0), brings them up again
 * with rings at EPILOGUE (prepared by the boot payload, out of the hostile
 * traffic's reach) and, through them, writes one disk sector and
 * transmits one frame; the host afterwards sends one frame in. It ends
 * with a write to the debug-exit port.
 *
 * Checked: nothing throws; the guest reaches its end; GuestMemory never
 * refuses a device write; no machine frame the VM does not own changes
 * (kernel frames, free frames); the sector, the status byte, the frame
 * sent and the frame received are right.
 *
 * Everything the hostile traffic can put in a descriptor (an address or a
 * length) is below LOW_END or at least RAM_END, so no request reaches the
 * code or the epilogue's rings: the epilogue is the device's test, not the
 * guest's.
 */
import { Effect } from "effect"
import fc from "fast-check"
import { decodeMachineConfig, defaultMachineConfig } from "../../../hw/machine/config.ts"
import { Machine } from "../../../hw/machine/machine.ts"
import { Kernel } from "../../../kernel/boot.ts"
import { FRAME_SIZE } from "../../../kernel/memory/frames.ts"
import { MachineMemory } from "../../../kernel/memory/service.ts"
import { Worlds } from "../../../kernel/sched/runtime.ts"
import { VSwitch } from "../../../kernel/vswitch/vswitch.ts"
import { defaultVmConfig } from "../../../vmm/config.ts"
import { flat32Registers } from "../../../vmm/loader/raw-payload.ts"
import { addVirtioDevices } from "../../../vmm/platform/virtio.ts"
import { memoryBlockStore, SECTOR_SIZE, VirtioBlkType } from "../../../vmm/virtio/blk.ts"
import { VirtioReg as R, VirtioStatus, virtioMmioBase } from "../../../vmm/virtio/mmio.ts"
import { VIRTIO_NET_HDR_SIZE } from "../../../vmm/virtio/net.ts"
import { type GuestMemory, VirtqDesc } from "../../../vmm/virtio/virtqueue.ts"
import { type BootPayload, createVm, type VirtualMachine } from "../../../vmm/vm.ts"
import { must } from "./driver.ts"
import { frame, MAC_A, MAC_B } from "./net-harness.ts"

const NAME = "virtio-fuzz"
const RAM_END = 16 << 20
/** The hostile traffic's rings and buffers lie below this. */
const LOW_END = 0x80000
/** Queue q of device d during the hostile traffic: desc, avail at + 0x1000, used at + 0x2000. */
const ringBase = (device: number, queue: number) => 0x1000 + 0x3000 * (2 * device + queue)
const CODE = 0xf00000
/** The epilogue's rings and buffers (boot payload), above anything the hostile traffic can address. */
const EPILOGUE = 0xe00000
const BLK_Q = EPILOGUE
const RX_Q = EPILOGUE + 0x4000
const TX_Q = EPILOGUE + 0x8000
const BLK_HDR = EPILOGUE + 0x10000
const BLK_DATA = BLK_HDR + 0x100
const BLK_STATUS = BLK_HDR + 0x400
const TX_BUF = EPILOGUE + 0x11000
const RX_BUF = EPILOGUE + 0x12000
const SECTOR = 5
const EPILOGUE_QUEUE_SIZE = 8
const DEBUG_EXIT = 0xf4
const { NEXT, WRITE, INDIRECT } = VirtqDesc

export type VmStep =
  | { readonly k: "init"; readonly device: number; readonly size: number; readonly indirect: boolean }
  | { readonly k: "reg"; readonly device: number; readonly offset: number; readonly value: number }
  | { readonly k: "read"; readonly device: number; readonly offset: number }
  | {
      readonly k: "desc"
      readonly device: number
      readonly queue: number
      readonly i: number
      readonly addr: number
      readonly len: number
      readonly flags: number
      readonly next: number
    }
  | {
      readonly k: "avail"
      readonly device: number
      readonly queue: number
      readonly slot: number
      readonly head: number
    }
  | { readonly k: "availIdx"; readonly device: number; readonly queue: number; readonly idx: number }
  | { readonly k: "kick"; readonly device: number; readonly queue: number }
  /** avail.ring[slot] = head, avail.idx = idx, notify. */
  | {
      readonly k: "post"
      readonly device: number
      readonly queue: number
      readonly slot: number
      readonly head: number
      readonly idx: number
    }
  | { readonly k: "ram"; readonly at: number; readonly value: number }

export interface VmCase {
  readonly kind: "vm"
  readonly steps: ReadonlyArray<VmStep>
}

// ---- the arbitrary ---------------------------------------------------------------------------------

/** An address or length the hostile traffic may store: small (below LOW_END) or out of RAM. */
const lowOrOut = fc.oneof(
  { weight: 6, arbitrary: fc.integer({ min: 0, max: 2048 }) },
  { weight: 6, arbitrary: fc.integer({ min: 0x10000, max: LOW_END - 0x1000 }) },
  { weight: 2, arbitrary: fc.constantFrom(0, 1, 16, 512, 0x1000, 0x4000, 0x7000) },
  {
    weight: 2,
    arbitrary: fc.constantFrom(RAM_END, RAM_END + 0x1000, 0x80000000, 0xfffff000, 0xfffffff0, 0xffffffff)
  },
  { weight: 1, arbitrary: fc.integer({ min: RAM_END, max: 0xffffffff }) }
)
const device = fc.nat(1)
const queue = fc.nat(1)
const register = fc.oneof(
  { weight: 8, arbitrary: fc.constantFrom(...Object.values(R)) },
  { weight: 1, arbitrary: fc.integer({ min: 0, max: 0x7f }).map((n) => 4 * n) }
)
const init = fc.record({
  k: fc.constant("init" as const),
  device,
  size: fc.constantFrom(1, 2, 4, 8, 16),
  indirect: fc.boolean()
})
const head = fc.oneof({ weight: 8, arbitrary: fc.nat(15) }, fc.constant(0xffff))
const idx = fc.oneof({ weight: 4, arbitrary: fc.nat(17) }, fc.nat(0xffff))
const step: fc.Arbitrary<VmStep> = fc.oneof(
  { weight: 1, arbitrary: init },
  {
    weight: 4,
    arbitrary: fc.record({
      k: fc.constant("reg" as const),
      device,
      offset: register,
      value: fc.oneof(fc.constantFrom(0, 1, 3, 0xb, 0xf, 0x40, 0x80, 0xff), lowOrOut)
    })
  },
  { weight: 1, arbitrary: fc.record({ k: fc.constant("read" as const), device, offset: register }) },
  {
    weight: 6,
    arbitrary: fc.record({
      k: fc.constant("desc" as const),
      device,
      queue,
      i: fc.nat(15),
      addr: lowOrOut,
      len: lowOrOut,
      flags: fc
        .record({ next: fc.boolean(), write: fc.boolean(), indirect: fc.nat(5) })
        .map((f) => (f.next ? NEXT : 0) | (f.write ? WRITE : 0) | (f.indirect === 0 ? INDIRECT : 0)),
      next: fc.oneof({ weight: 8, arbitrary: fc.nat(15) }, fc.constant(0xffff))
    })
  },
  {
    weight: 3,
    arbitrary: fc.record({
      k: fc.constant("avail" as const),
      device,
      queue,
      slot: fc.nat(15),
      head
    })
  },
  {
    weight: 3,
    arbitrary: fc.record({ k: fc.constant("post" as const), device, queue, slot: fc.nat(15), head, idx })
  },
  {
    weight: 2,
    arbitrary: fc.record({
      k: fc.constant("availIdx" as const),
      device,
      queue,
      idx
    })
  },
  { weight: 3, arbitrary: fc.record({ k: fc.constant("kick" as const), device, queue }) },
  {
    weight: 2,
    arbitrary: fc.record({
      k: fc.constant("ram" as const),
      at: fc.integer({ min: 0x1000 / 4, max: LOW_END / 4 - 1 }).map((n) => 4 * n),
      value: lowOrOut
    })
  }
)

/** Mostly with a device or two brought up first, so the hostile descriptors meet live queues. */
export const vmCase: fc.Arbitrary<VmCase> = fc
  .tuple(fc.array(init, { maxLength: 2 }), fc.array(step, { minLength: 1, maxLength: 60, size: "medium" }))
  .map(([inits, steps]) => ({ kind: "vm" as const, steps: [...inits, ...steps] }))

// ---- the guest -------------------------------------------------------------------------------------

const le32 = (v: number) => [v & 0xff, (v >>> 8) & 0xff, (v >>> 16) & 0xff, (v >>> 24) & 0xff]
/** mov dword [at], value */
const store = (at: number, value: number) => [0xc7, 0x05, ...le32(at), ...le32(value >>> 0)]
/** mov eax, [at] */
const load = (at: number) => [0xa1, ...le32(at)]
const reg = (device: number, offset: number, value: number) => store(virtioMmioBase(device) + offset, value)

/** 3.1.1 and 4.2.3.2 as stores: reset, ACKNOWLEDGE, DRIVER, features, FEATURES_OK, queues, DRIVER_OK. */
const initCode = (device: number, queues: ReadonlyArray<number>, size: number, indirect: boolean) => {
  const S = VirtioStatus
  return [
    ...reg(device, R.STATUS, 0),
    ...reg(device, R.STATUS, S.ACKNOWLEDGE),
    ...reg(device, R.STATUS, S.ACKNOWLEDGE | S.DRIVER),
    ...reg(device, R.DRIVER_FEATURES_SEL, 1),
    ...reg(device, R.DRIVER_FEATURES, 1), // VIRTIO_F_VERSION_1 (bit 32)
    ...reg(device, R.DRIVER_FEATURES_SEL, 0),
    ...reg(device, R.DRIVER_FEATURES, indirect ? 1 << 28 : 0), // VIRTIO_F_INDIRECT_DESC
    ...reg(device, R.STATUS, S.ACKNOWLEDGE | S.DRIVER | S.FEATURES_OK),
    ...queues.flatMap((base, q) => [
      ...reg(device, R.QUEUE_SEL, q),
      ...reg(device, R.QUEUE_NUM, size),
      ...reg(device, R.QUEUE_DESC_LOW, base),
      ...reg(device, R.QUEUE_DESC_HIGH, 0),
      ...reg(device, R.QUEUE_DRIVER_LOW, base + 0x1000),
      ...reg(device, R.QUEUE_DRIVER_HIGH, 0),
      ...reg(device, R.QUEUE_DEVICE_LOW, base + 0x2000),
      ...reg(device, R.QUEUE_DEVICE_HIGH, 0),
      ...reg(device, R.QUEUE_READY, 1)
    ]),
    ...reg(device, R.STATUS, S.ACKNOWLEDGE | S.DRIVER | S.FEATURES_OK | S.DRIVER_OK)
  ]
}

const stepCode = (s: VmStep): Array<number> => {
  switch (s.k) {
    case "init":
      return initCode(
        s.device,
        s.device === 0 ? [ringBase(0, 0)] : [ringBase(1, 0), ringBase(1, 1)],
        s.size,
        s.indirect
      )
    case "reg":
      return reg(s.device, s.offset, s.value)
    case "read":
      return load(virtioMmioBase(s.device) + s.offset)
    case "desc": {
      const at = ringBase(s.device, s.queue) + 16 * s.i
      return [
        ...store(at, s.addr),
        ...store(at + 4, 0),
        ...store(at + 8, s.len),
        ...store(at + 12, s.flags | (s.next << 16))
      ]
    }
    case "avail": {
      // a dword store covers two ring entries: keep the neighbour's value as the driver would (zero here)
      const at = ringBase(s.device, s.queue) + 0x1000 + 4 + 2 * s.slot
      return store(at & ~3, at & 2 ? s.head << 16 : s.head)
    }
    case "availIdx":
      return store(ringBase(s.device, s.queue) + 0x1000, s.idx << 16) // flags 0, idx
    case "kick":
      return reg(s.device, R.QUEUE_NOTIFY, s.queue)
    case "post":
      return [
        ...stepCode({ k: "avail", device: s.device, queue: s.queue, slot: s.slot, head: s.head }),
        ...stepCode({ k: "availIdx", device: s.device, queue: s.queue, idx: s.idx }),
        ...stepCode({ k: "kick", device: s.device, queue: s.queue })
      ]
    case "ram":
      return store(s.at, s.value)
  }
}

const descBytes = (addr: number, len: number, flags: number, next: number) =>
  Uint8Array.of(...le32(addr), 0, 0, 0, 0, ...le32(len), flags, 0, next, 0)
/** The avail ring of a fresh queue with `heads` published. */
const availBytes = (heads: ReadonlyArray<number>) =>
  Uint8Array.of(0, 0, heads.length, 0, ...heads.flatMap((h) => [h & 0xff, h >> 8]))

const sectorData = Uint8Array.from({ length: SECTOR_SIZE }, (_, i) => (i * 7 + 3) & 0xff)
const txFrame = frame(MAC_B, MAC_A, 60, 3)
const rxFrame = frame(MAC_A, MAC_B, 100, 9)

/** The whole guest: the steps, the epilogue (reset, up, one request each), debug exit. */
export const vmPayload = (c: VmCase): BootPayload => {
  const code = [
    ...c.steps.flatMap(stepCode),
    ...initCode(0, [BLK_Q], EPILOGUE_QUEUE_SIZE, false),
    ...reg(0, R.QUEUE_NOTIFY, 0),
    ...initCode(1, [RX_Q, TX_Q], EPILOGUE_QUEUE_SIZE, false),
    ...reg(1, R.QUEUE_NOTIFY, 1),
    ...[0x31, 0xc0, 0xe6, DEBUG_EXIT, 0xf4] // xor eax, eax; out 0xf4, al; hlt
  ]
  const header = new Uint8Array(16)
  new DataView(header.buffer).setUint32(0, VirtioBlkType.OUT, true)
  new DataView(header.buffer).setUint32(8, SECTOR, true)
  const txPacket = new Uint8Array(VIRTIO_NET_HDR_SIZE + txFrame.length)
  txPacket.set(txFrame, VIRTIO_NET_HDR_SIZE)
  const registers = flat32Registers(CODE, CODE)
  return {
    registers,
    writes: [
      { address: CODE, bytes: Uint8Array.from(code) },
      // virtio-blk: OUT sector SECTOR (header, data, status), published
      { address: BLK_Q, bytes: descBytes(BLK_HDR, 16, NEXT, 1) },
      { address: BLK_Q + 16, bytes: descBytes(BLK_DATA, SECTOR_SIZE, NEXT, 2) },
      { address: BLK_Q + 32, bytes: descBytes(BLK_STATUS, 1, WRITE, 0) },
      { address: BLK_Q + 0x1000, bytes: availBytes([0]) },
      { address: BLK_HDR, bytes: header },
      { address: BLK_DATA, bytes: sectorData },
      { address: BLK_STATUS, bytes: Uint8Array.of(0xff) },
      // virtio-net: one receive buffer posted, one frame to transmit, published
      { address: RX_Q, bytes: descBytes(RX_BUF, 1526, WRITE, 0) },
      { address: RX_Q + 0x1000, bytes: availBytes([0]) },
      { address: TX_Q, bytes: descBytes(TX_BUF, txPacket.length, 0, 0) },
      { address: TX_Q + 0x1000, bytes: availBytes([0]) },
      { address: TX_BUF, bytes: txPacket }
    ]
  }
}

// ---- the host --------------------------------------------------------------------------------------

const debugPorts = (vm: VirtualMachine) =>
  [
    [
      DEBUG_EXIT,
      4,
      {
        name: "debug-exit",
        read: () => 0xffffffff,
        write: (_o: number, _s: number, v: number) => vm.end({ _tag: "DebugExit", code: v })
      }
    ]
  ] as const

const u16 = (b: Uint8Array | undefined) => (b === undefined ? -1 : b[0]! | (b[1]! << 8))
const sameBytes = (a: Uint8Array | undefined, b: Uint8Array) =>
  a !== undefined && a.length === b.length && a.every((x, i) => x === b[i])

/** Boot a host, run the case's guest to its end, check everything the header lists; fails with the first problem. */
export const runVirtioVm = (c: VmCase) => {
  const machine = new Machine(
    Effect.runSync(decodeMachineConfig("virtio fuzz host", JSON.stringify({ ...defaultMachineConfig, ramMiB: 24 })))
  )
  return Effect.gen(function* () {
    const mm = (yield* MachineMemory).managerUnsafe
    const vm = yield* createVm(defaultVmConfig(NAME, "inline"), vmPayload(c), {
      console: () => {},
      ports: debugPorts
    })
    const refused: Array<string> = []
    const memory: GuestMemory = {
      read: (gpa, length) => vm.guest.read(gpa, length),
      write: (gpa, bytes) => {
        const ok = vm.guest.write(gpa, bytes)
        if (!ok) refused.push(`0x${gpa.toString(16)}+${bytes.length}`)
        return ok
      }
    }
    const store = memoryBlockStore(64)
    const sw = new VSwitch()
    const port = sw.attach("pg", NAME).port
    const peer = sw.attach("pg", "peer").port
    const heard: Array<Uint8Array> = []
    peer.onReceive((f) => heard.push(f))
    // the VMM's own wiring, with the VM's memory observed
    addVirtioDevices(Object.create(vm, { guest: { value: memory } }) as VirtualMachine, {
      disks: [store],
      nics: [{ port, mac: MAC_A }]
    })
    const before = mm.frames.ram.slice()

    yield* (yield* Worlds).runFor(20_000_000)

    must(
      vm.ended?._tag === "DebugExit" && vm.ended.code === 0,
      `the guest did not reach its end: ${JSON.stringify(vm.ended)}`
    )
    must(refused.length === 0, `a device tried writes outside the VM's RAM: ${refused.join(", ")}`)
    const ram = mm.frames.ram
    for (let f = 0; f < ram.length / FRAME_SIZE; f++) {
      if (mm.frames.ownerOf(f) === NAME) continue
      const a = new Int32Array(ram.buffer, ram.byteOffset + f * FRAME_SIZE, FRAME_SIZE / 4)
      const b = new Int32Array(before.buffer, f * FRAME_SIZE, FRAME_SIZE / 4)
      for (let i = 0; i < a.length; i++)
        if (a[i] !== b[i])
          throw new Error(`machine frame ${f} (owner ${String(mm.frames.ownerOf(f))}) changed under the VM`)
    }
    // virtio-blk after its reset
    must(
      vm.guest.read(BLK_STATUS, 1)?.[0] === 0,
      `after a reset, the block request's status is ${vm.guest.read(BLK_STATUS, 1)?.[0]}`
    )
    must(u16(vm.guest.read(BLK_Q + 0x2002, 2)) === 1, "after a reset, the block request was not returned once")
    must(
      sameBytes(store.data.slice(SECTOR * SECTOR_SIZE, (SECTOR + 1) * SECTOR_SIZE), sectorData),
      "after a reset, the sector the guest wrote is not on the disk"
    )
    // virtio-net after its reset: the frame sent, and one received
    must(
      heard.length > 0 && sameBytes(heard[heard.length - 1], txFrame),
      `after a reset, the frame the guest sent did not reach the switch (${heard.length} frames heard)`
    )
    peer.send(rxFrame)
    must(u16(vm.guest.read(RX_Q + 0x2002, 2)) === 1, "after a reset, the frame sent to the guest was not received")
    must(
      sameBytes(vm.guest.read(RX_BUF + VIRTIO_NET_HDR_SIZE, rxFrame.length), rxFrame),
      "after a reset, the frame the guest received is not the one sent"
    )
  }).pipe(Effect.provide(Kernel.boot(machine)), Effect.scoped)
}

const hex = (n: number) => `0x${n.toString(16)}`
const DEVICES = ["blk", "net"]

const renderStep = (s: VmStep): string => {
  if (s.k === "ram") return `ram ${hex(s.at)} = ${hex(s.value)}`
  const d = DEVICES[s.device] ?? `device ${s.device}`
  switch (s.k) {
    case "init":
      return `${d}: init (queue size ${s.size}${s.indirect ? ", INDIRECT_DESC" : ""})`
    case "reg":
      return `${d}: write ${hex(s.offset)} = ${hex(s.value)}`
    case "read":
      return `${d}: read ${hex(s.offset)}`
    case "desc": {
      const f = `${s.flags & NEXT ? "N" : ""}${s.flags & WRITE ? "W" : ""}${s.flags & INDIRECT ? "I" : ""}` || "-"
      return `${d} queue ${s.queue} desc ${s.i}: ${hex(s.addr)} ${s.len} ${f} ${s.next}`
    }
    case "avail":
      return `${d} queue ${s.queue}: avail.ring[${s.slot}] = ${s.head}`
    case "availIdx":
      return `${d} queue ${s.queue}: avail.idx = ${s.idx}`
    case "kick":
      return `${d}: notify queue ${s.queue}`
    case "post":
      return `${d} queue ${s.queue}: avail.ring[${s.slot}] = ${s.head}, avail.idx = ${s.idx}, notify`
  }
}

export const renderVmCase = (c: VmCase): string =>
  [
    `vm: a guest's ${c.steps.length} steps on its virtio-blk (window 0) and virtio-net (window 1), then reset and one request each:`,
    ...c.steps.map((s) => `  ${renderStep(s)}`)
  ].join("\n")
