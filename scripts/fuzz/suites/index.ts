/** The fuzz suites `fibervisor fuzz --suite NAME` runs (all of them by default), by name. */
import { type RunnableSuite, runnable } from "../campaign.ts"
import { cpuSuite } from "./cpu.ts"
import { devicesSuite } from "./devices.ts"
import { faultsSuite } from "./faults.ts"
import { inputsSuite } from "./inputs.ts"
import { btIsolationSuite, determinismSuite, isolationSuite } from "./isolation.ts"
import { lifecycleSuite } from "./lifecycle.ts"
import { memorySuite } from "./memory.ts"
import { pvIsolationSuite } from "./pv-isolation.ts"
import { virtioSuite } from "./virtio.ts"

export const fuzzSuites: ReadonlyArray<RunnableSuite> = [
  runnable(cpuSuite),
  runnable(isolationSuite),
  runnable(determinismSuite),
  runnable(btIsolationSuite),
  runnable(pvIsolationSuite),
  runnable(memorySuite),
  runnable(lifecycleSuite),
  runnable(devicesSuite),
  runnable(virtioSuite),
  runnable(inputsSuite),
  runnable(faultsSuite)
]
