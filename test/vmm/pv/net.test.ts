/**
 * The split network driver of `pv` mode (vmm/engines/pv/netback.ts): two
 * PV builds of images/net on one vSwitch find their vifs in xenstore, grant
 * the back end their rings and buffers, and ping each other -- the same job
 * the native build does over virtio-net. Plus what a hostile front end can
 * and cannot do to the back end.
 */
import { readFileSync } from "node:fs"
import { fileURLToPath } from "node:url"
import { describe, expect, it } from "@effect/vitest"
import { Effect, Result } from "effect"
import { Kernel } from "../../../kernel/boot.ts"
import { Worlds } from "../../../kernel/sched/runtime.ts"
import { type NetPort, VSwitch } from "../../../kernel/vswitch/vswitch.ts"
import { planXenPvLoad } from "../../../vmm/loader/xen-pv.ts"
import { addVirtioDevices } from "../../../vmm/platform/virtio.ts"
import { createVm, type VirtualMachine } from "../../../vmm/vm.ts"
import { testMachine } from "../in-process.ts"
import { pvConfig, runPv } from "./harness.ts"

const root = fileURLToPath(new URL("../../..", import.meta.url))

/**
 * A hand-written netfront for the hostile tests (docs/pv.md "Split drivers"): maps the grant table,
 * allocates the event channel the back end is to bind (port 3: 1 and 2 are the console's and the
 * store's), and has macros for grants, xenstore writes (a request on the store ring and a send; the
 * replies are not read) and netif_tx_requests. `code` runs after that; it ends with `shutdown`.
 * Pages: txring, rxring, page (a 60-byte broadcast frame), rxbuf0, rxbuf1.
 */
const front = (code: string) => `
%macro grant 3                  ; ref, page, flags (1: permit access, 5: read-only)
  mov eax, [gnt_table]
  mov edx, %2
  shr edx, 12
  mov [eax + %1 * 8 + 4], edx
  mov word [eax + %1 * 8 + 2], 0
  mov word [eax + %1 * 8], %3
%endmacro
%macro xswrite 2                ; XS_WRITE path, value
  jmp %%after
%%msg: dd 11, 0, 0, %%end - %%body
%%body: db %1, 0, %2
%%end:
%%after:
  mov esi, %%msg
  mov ecx, %%end - %%msg
  call xs_send
%endmacro
%macro txreq 6                  ; slot, gref, offset, flags, id, size
  mov dword [txring + 64 + %1 * 12], %2
  mov word [txring + 64 + %1 * 12 + 4], %3
  mov word [txring + 64 + %1 * 12 + 6], %4
  mov word [txring + 64 + %1 * 12 + 8], %5
  mov word [txring + 64 + %1 * 12 + 10], %6
%endmacro
%macro rxreq 3                  ; slot, id, gref
  mov word [rxring + 64 + %1 * 8], %2
  mov dword [rxring + 64 + %1 * 8 + 4], %3
%endmacro
%macro notify 0                 ; EVTCHNOP_send on port 3
  mov dword [send_port], 3
  mov ebx, 4
  mov ecx, send_port
  hypercall 32
%endmacro
%macro check 3                  ; size, address, value: else shutdown with the address's line
  cmp %1 [%2], %3
  je %%ok
  shutdown (__LINE__ % 200) + 1
%%ok:
%endmacro
  mov [si_ptr], esi
  mov word [gnt], DOMID_SELF    ; GNTTABOP_setup_table, one frame
  mov dword [gnt + 4], 1
  mov dword [gnt + 12], gnt_frame
  mov ebx, 2
  mov ecx, gnt
  mov edx, 1
  hypercall 20
  check word, gnt + 8, 0
  mov eax, [gnt_frame]
  shl eax, 12
  mov [gnt_table], eax
  mov word [alloc], DOMID_SELF  ; EVTCHNOP_alloc_unbound for domain 0
  mov word [alloc + 2], 0
  mov ebx, 6
  mov ecx, alloc
  hypercall 32
  check dword, alloc + 4, 3
${code}
xs_send:                        ; ESI = a message, ECX = its length
  mov edx, [si_ptr]
  mov ebx, [edx + 48]
  mov [send_port], ebx
  mov edx, [edx + 44]
  shl edx, 12
  mov edi, [edx + 2052]
.byte:
  mov eax, edi
  and eax, 1023
  mov bl, [esi]
  mov [edx + eax], bl
  inc esi
  inc edi
  loop .byte
  mov [edx + 2052], edi
  mov ebx, 4
  mov ecx, send_port
  hypercall 32
  ret
align 4
si_ptr: dd 0
gnt: dd 0, 0, 0, 0
gnt_frame: dd 0
gnt_table: dd 0
alloc: dd 0, 0
send_port: dd 0
align 4096
txring: times 4096 db 0
rxring: times 4096 db 0
page: db 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 2, 0, 0, 0, 0, 9, 0x88, 0xb5, "hostile"
  times 4096 - ($ - page) db 0
rxbuf0: times 4096 db 0
rxbuf1: times 4096 db 0
`

/** Grant both rings and publish them, event channel 3, request-rx-copy 1, then state 3. */
const CONNECT = `
  grant 8, txring, 1
  grant 9, rxring, 1
  xswrite "device/vif/0/tx-ring-ref", "8"
  xswrite "device/vif/0/rx-ring-ref", "9"
  xswrite "device/vif/0/event-channel", "3"
  xswrite "device/vif/0/request-rx-copy", "1"
  xswrite "device/vif/0/state", "3"
`

/** A NetPort that records what the vif sends and echoes each frame back `echoes` times. */
const echoPort = (echoes: number) => {
  const sent: Array<Uint8Array> = []
  let receiver: ((frame: Uint8Array) => void) | undefined
  const port: NetPort = {
    send: (frame) => {
      sent.push(frame.slice())
      for (let i = 0; i < echoes; i++) receiver?.(frame.slice())
    },
    onReceive: (cb) => {
      receiver = cb
    }
  }
  return { port, sent, deliver: (frame: Uint8Array) => receiver?.(frame) }
}

const BACKEND = "/local/domain/0/backend/vif/1/0"

describe("pv: the split network driver (netfront in the guest, netback in the hypervisor)", () => {
  const image = readFileSync(`${root}/images/net/net-pv.elf`)

  it.effect("two net-pv VMs on one port group hear each other over netif rings and grant tables", () => {
    const vswitch = new VSwitch({ name: "vSwitch0" })
    const outs = new Map<string, string>()
    return Effect.gen(function* () {
      const vms: Array<VirtualMachine> = []
      for (const [name, group, mac] of [
        ["alpha", "lab", 1],
        ["beta", "lab", 2],
        ["gamma", "dmz", 3]
      ] as const) {
        outs.set(name, "")
        const planned = planXenPvLoad(image, { ramBytes: 16 * 1024 * 1024, cmdline: "" })
        if (Result.isFailure(planned)) throw new Error(planned.failure.message)
        const vm = yield* createVm(pvConfig(name), planned.success, {
          console: (b) => outs.set(name, outs.get(name)! + String.fromCharCode(b))
        })
        addVirtioDevices(vm, { nics: [{ port: vswitch.attach(group, name).port, mac: [0x52, 0x54, 0, 0, 0, mac] }] })
        vms.push(vm)
      }
      yield* (yield* Worlds).runFor(20_000_000)
      expect(outs.get("alpha")).toBe("net: 52:54:00:00:00:01 heard 52:54:00:00:00:02\r\n")
      expect(outs.get("beta")).toBe("net: 52:54:00:00:00:02 heard 52:54:00:00:00:01\r\n")
      expect(vms[0]!.ended).toEqual({ _tag: "DebugExit", code: 0 })
      expect(vms[1]!.ended).toEqual({ _tag: "DebugExit", code: 0 })
      const stats = vms[0]!.engineStats()
      expect(stats.pv_net_tx_frames).toBeGreaterThanOrEqual(2)
      expect(stats.pv_net_rx_frames).toBeGreaterThanOrEqual(1)
      expect(stats.pv_net_tx_errors).toBe(0)
      // alone on its port group, gamma keeps pinging and never hears anyone
      expect(outs.get("gamma")).toBe("")
      expect(vms[2]!.ended).toBeUndefined()
    }).pipe(Effect.provide(Kernel.boot(testMachine())), Effect.scoped)
  })

  it.effect("bad TX requests get NETIF_RSP_ERROR and never reach the switch; RX needs a writable grant", () => {
    const nic = echoPort(3)
    return Effect.gen(function* () {
      const r = yield* runPv(
        front(`
  grant 10, page, 5             ; the frame: read-only is enough to send it
  grant 11, rxbuf0, 5           ; a receive buffer the back end may not write
  grant 12, rxbuf1, 1
  rxreq 0, 0, 11
  rxreq 1, 1, 12
  mov dword [rxring], 2
${CONNECT}
  txreq 0, 200, 0, 0, 10, 60    ; an entry that grants nothing
  txreq 1, 10, 4090, 0, 11, 60  ; past the end of the page
  txreq 2, 10, 0, 4, 12, 60     ; NETTXF_more_data: multi-slot frames are refused...
  txreq 3, 10, 0, 0, 13, 60     ; ...and so is the rest of the chain
  txreq 4, 10, 0, 0, 14, 10     ; shorter than an Ethernet header
  txreq 5, 10, 0, 0, 15, 1515   ; longer than 1514
  txreq 6, 9999, 0, 0, 16, 60   ; a reference outside the table
  txreq 7, 10, 0, 8, 17, 60     ; NETTXF_extra_info
  txreq 8, 10, 0, 0, 18, 60     ; a good one: the port echoes it three times
  mov dword [txring], 9
  notify
  check dword, txring + 8, 9    ; every request answered, in its own slot
  xor ecx, ecx
.answer:
  imul ebx, ecx, 12
  lea eax, [ecx + 10]
  cmp [txring + 64 + ebx], ax
  jne .wrong
  mov ax, -1
  cmp ecx, 8
  jne .status
  xor ax, ax
.status:
  cmp [txring + 64 + ebx + 2], ax
  jne .wrong
  inc ecx
  cmp ecx, 9
  jb .answer
  check dword, rxring + 8, 2    ; two RX responses: the read-only buffer failed, the other holds the frame
  check word, rxring + 64, 0
  check word, rxring + 64 + 6, -1
  check word, rxring + 72, 1
  check word, rxring + 72 + 2, 0
  check word, rxring + 72 + 6, 60
  check dword, rxbuf0, 0
  mov esi, page
  mov edi, rxbuf1
  mov ecx, 60
  repe cmpsb
  jne .wrong
  shutdown 0
.wrong:
  shutdown 99
`),
        { attach: (vm) => vm.pvDomain!.attachNic(nic.port, [0x52, 0x54, 0, 0, 0, 9]) }
      )
      expect(r.out).toBe("")
      expect(r.vm.ended).toEqual({ _tag: "DebugExit", code: 0 })
      expect(r.vm.pvDomain!.store.get(`${BACKEND}/state`)).toBe("4")
      expect(nic.sent.length, "only the good request reached the switch").toBe(1)
      expect(Array.from(nic.sent[0]!.subarray(0, 14))).toEqual([
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 2, 0, 0, 0, 0, 9, 0x88, 0xb5
      ])
      expect(nic.sent[0]!.length).toBe(60)
      expect(r.stats).toMatchObject({
        pv_net_tx_frames: 1,
        pv_net_tx_errors: 8,
        pv_net_rx_frames: 1,
        pv_net_rx_errors: 1,
        pv_net_rx_dropped: 2
      })
      // the host (and the VM's memory) is gone, the vif still connected: a late frame must not throw
      expect(() => nic.deliver(new Uint8Array(60).fill(0xff))).not.toThrow()
    })
  })

  it.effect("a reset domain publishes its vif afresh: disconnected, InitWait, frames dropped until it connects", () => {
    const nic = echoPort(0)
    const seen: Array<string | undefined> = []
    return Effect.gen(function* () {
      yield* runPv(front(`${CONNECT}\n  shutdown 0\n`), {
        attach: (vm) => vm.pvDomain!.attachNic(nic.port, [0x52, 0x54, 0, 0, 0, 9]),
        after: (vm) => {
          const domain = vm.pvDomain!
          const vif = "/local/domain/1/device/vif/0"
          seen.push(domain.store.get(`${BACKEND}/state`))
          domain.reset()
          for (const path of [`${BACKEND}/state`, `${BACKEND}/mac`, `${vif}/state`, `${vif}/mac`, `${vif}/tx-ring-ref`])
            seen.push(domain.store.get(path))
          nic.deliver(new Uint8Array(60).fill(0xff))
          seen.push(String(domain.stats.pv_net_rx_dropped))
        }
      })
      expect(seen).toEqual(["4", "2", "52:54:00:00:00:09", "1", "52:54:00:00:00:09", undefined, "1"])
    })
  })

  it.effect("ring indices that claim more than a ring holds disconnect the vif; nothing throws", () => {
    const nic = echoPort(1)
    return Effect.gen(function* () {
      const r = yield* runPv(
        front(`
${CONNECT}
  mov dword [txring], 0x12345   ; req_prod far ahead of anything the back end consumed
  notify
  check dword, txring + 8, 0    ; nothing answered
  mov dword [txring], 0         ; a sane ring afterwards changes nothing: the vif is closed
  notify
  shutdown 0
`),
        { attach: (vm) => vm.pvDomain!.attachNic(nic.port, [0x52, 0x54, 0, 0, 0, 9]) }
      )
      expect(r.vm.ended).toEqual({ _tag: "DebugExit", code: 0 })
      const store = r.vm.pvDomain!.store
      expect(store.get(`${BACKEND}/state`)).toBe("6")
      expect(store.get(`${BACKEND}/error`)).toBe("the TX ring's indices are corrupt")
      expect(nic.sent).toEqual([])
      // a frame for a closed vif is dropped and counted
      nic.deliver(new Uint8Array(60).fill(0xff))
      expect(r.vm.engineStats().pv_net_rx_dropped).toBe(1)
    })
  })

  it.effect("an RX ring with corrupt indices disconnects the vif when a frame arrives", () => {
    const nic = echoPort(1)
    return Effect.gen(function* () {
      const r = yield* runPv(
        front(`
  grant 10, page, 5
${CONNECT}
  mov dword [rxring], 0xfffffff0 ; "posted" more buffers than the ring holds
  txreq 0, 10, 0, 0, 1, 60      ; the echo lands on the RX ring
  mov dword [txring], 1
  notify
  check word, txring + 64 + 2, 0
  check dword, rxring + 8, 0
  shutdown 0
`),
        { attach: (vm) => vm.pvDomain!.attachNic(nic.port, [0x52, 0x54, 0, 0, 0, 9]) }
      )
      expect(r.vm.ended).toEqual({ _tag: "DebugExit", code: 0 })
      const store = r.vm.pvDomain!.store
      expect(store.get(`${BACKEND}/state`)).toBe("6")
      expect(store.get(`${BACKEND}/error`)).toBe("the RX ring's indices are corrupt")
      expect(r.stats).toMatchObject({ pv_net_tx_frames: 1, pv_net_rx_frames: 0, pv_net_rx_dropped: 1 })
    })
  })

  it.effect("a front end that publishes bad values is refused: state 6 with an error", () =>
    Effect.gen(function* () {
      const cases: Array<[string, string]> = [
        [
          `grant 8, txring, 5
  grant 9, rxring, 1
  xswrite "device/vif/0/tx-ring-ref", "8"
  xswrite "device/vif/0/rx-ring-ref", "9"
  xswrite "device/vif/0/event-channel", "3"
  xswrite "device/vif/0/request-rx-copy", "1"`,
          "tx-ring-ref: grant 8 is read-only"
        ],
        [
          `grant 8, txring, 1
  xswrite "device/vif/0/tx-ring-ref", "8"
  xswrite "device/vif/0/rx-ring-ref", "8"
  xswrite "device/vif/0/event-channel", "3"
  xswrite "device/vif/0/request-rx-copy", "1"`,
          "tx-ring-ref and rx-ring-ref grant the same frame"
        ],
        [
          `grant 8, txring, 1
  grant 9, rxring, 1
  xswrite "device/vif/0/tx-ring-ref", "8"
  xswrite "device/vif/0/rx-ring-ref", "9"
  xswrite "device/vif/0/event-channel", "1"
  xswrite "device/vif/0/request-rx-copy", "1"`,
          "event-channel 1 is not an unbound port of the guest"
        ],
        [
          `grant 8, txring, 1
  grant 9, rxring, 1
  xswrite "device/vif/0/tx-ring-ref", "8"
  xswrite "device/vif/0/rx-ring-ref", "9x"
  xswrite "device/vif/0/event-channel", "3"
  xswrite "device/vif/0/request-rx-copy", "1"`,
          "rx-ring-ref: grant reference NaN is outside the table"
        ],
        [
          `grant 8, txring, 1
  grant 9, rxring, 1
  xswrite "device/vif/0/tx-ring-ref", "8"
  xswrite "device/vif/0/rx-ring-ref", "9"
  xswrite "device/vif/0/event-channel", "3"`,
          "request-rx-copy is null: only the copying receive path (1) is supported"
        ]
      ]
      for (const [setup, error] of cases) {
        const nic = echoPort(1)
        const r = yield* runPv(front(`${setup}\n  xswrite "device/vif/0/state", "3"\n  shutdown 0\n`), {
          attach: (vm) => vm.pvDomain!.attachNic(nic.port, [0x52, 0x54, 0, 0, 0, 9])
        })
        expect(r.vm.ended).toEqual({ _tag: "DebugExit", code: 0 })
        expect(r.vm.pvDomain!.store.get(`${BACKEND}/error`)).toBe(error)
        expect(r.vm.pvDomain!.store.get(`${BACKEND}/state`)).toBe("6")
      }
    })
  )
})
