/**
 * A vCPU that moves to another pCPU must not run on translations that pCPU
 * cached for its VPID before (SDM 3C 29.4.3.3; KVM flushes the VPID in
 * vmx_vcpu_load when the vCPU changes CPU). Found with three minios VMs on
 * two pCPUs: one VM's init saw a wrong exit code from a child (its vCPU
 * ran on translations a pCPU had cached for it before it moved away and
 * changed address spaces) until HwEngine invalidated the VPID on a new
 * pCPU (hw/cpu/vmx/vmx.ts invvpidSingleContext). Without that call the
 * second test fails.
 */
import { describe, expect, it } from "@effect/vitest"
import { flatMemory, noPorts } from "../../hw/cpu/bus.ts"
import { Cpu, newTlbSet } from "../../hw/cpu/cpu.ts"
import { invvpidSingleContext } from "../../hw/cpu/vmx/vmx.ts"
import { fibervisorCli } from "../scripts/cli.ts"

const cli = fibervisorCli(120_000)

describe("VPID and vCPU migration", () => {
  it("INVVPID single-context drops only that VPID's tagged TLB sets", () => {
    const cpu = new Cpu(flatMemory(0x10000), noPorts, newTlbSet(0))
    const tag = (vpid: number, eptp: number) => vpid * 2 ** 32 + eptp + 1
    for (const t of [tag(5, 0x1000), tag(6, 0x1000), tag(5, 0x2000)]) {
      cpu.switchTlb(t)
      cpu.tlb[0x123] = 7
      cpu.tlbList[cpu.tlbCount++] = 0x123
    }
    cpu.switchTlb(0)
    invvpidSingleContext(cpu, 5)
    const held = (t: number) => {
      cpu.switchTlb(t)
      return cpu.tlb[0x123]
    }
    expect(held(tag(5, 0x1000))).toBe(0)
    expect(held(tag(5, 0x2000))).toBe(0)
    expect(held(tag(6, 0x1000))).toBe(7)
  })

  it("three minios VMs on two pCPUs all compute what they compute alone", () => {
    const r = cli(
      "boot",
      "images/minios/minios.elf",
      "images/minios/minios.elf",
      "images/minios/minios.elf",
      "--pcpus",
      "2"
    )
    expect(r.stdout).not.toContain("wrong")
    expect(r.stdout.match(/all exited correctly/g)).toHaveLength(3)
    expect(r.status).toBe(0)
  })
})
