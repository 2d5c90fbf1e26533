/** The fuzz suites `fibervisor fuzz --suite NAME` runs (all of them by default), by name. */
import { type RunnableSuite, runnable } from "../campaign.ts"
import { cpuSuite } from "./cpu.ts"
import { determinismSuite, isolationSuite } from "./isolation.ts"
import { memorySuite } from "./memory.ts"

export const fuzzSuites: ReadonlyArray<RunnableSuite> = [
  runnable(cpuSuite),
  runnable(isolationSuite),
  runnable(determinismSuite),
  runnable(memorySuite)
]
