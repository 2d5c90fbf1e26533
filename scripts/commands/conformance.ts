/**
 * `fibervisor conformance [--dir PATH] [--form XX] [--verbose] [--json]`: run
 * hardware-captured CPU vectors (SingleStepTests format) through the CPU and
 * print a per-form table.
 *
 * Default vectors: the 80286 real-mode set in ../shared/conformance/sst-80286-real
 * (resolved from the project root, not the cwd), with the 286-versus-IA-32
 * table of scripts/conformance/sst-80286.ts. The last line is
 * `N passed, N failed, N skipped`. Exit code: 0 when at least 99.5% of the
 * tests that ran pass, 1 otherwise, 2 for a missing or empty vector directory.
 */
import { resolve } from "node:path"
import { Console, Effect } from "effect"
import { Command, Flag } from "effect/cli"
import { Cpu } from "../../hw/cpu/cpu.ts"
import { disassemble } from "../../hw/cpu/disasm.ts"
import { type CpuFactory, formatReport, passRate, runDirectory, VectorDirError } from "../conformance/runner.ts"
import {
  defaultVectorDir,
  readFlagsMasks,
  relaxReasons,
  skipReasons,
  sst80286Policy
} from "../conformance/sst-80286.ts"
import { failWithMessage } from "./user-error.ts"

/** The pass rate (of tests that ran) at or above which the command succeeds. */
export const PASS_THRESHOLD = 0.995

/** The real CPU, as the runner drives it. */
export const realCpu: CpuFactory = (memory, ports) => new Cpu(memory, ports)

/** The instruction under test (16-bit code), as hw/cpu/disasm.ts reads it: the CPU's own view of the bytes. */
const disassembleTest = (bytes: ReadonlyArray<number>, ip: number): string =>
  disassemble(Uint8Array.from(bytes), 0, ip, false).text

const dir = Flag.String("dir").pipe(
  Flag.withDescription("Directory of <form>.jsonl.gz vectors (default: ../shared/conformance/sst-80286-real)"),
  Flag.optional
)
const form = Flag.String("form").pipe(
  Flag.withDescription("Only this form: an opcode (F7 = every F7.x) or opcode.reg (F7.6)"),
  Flag.optional
)
const verbose = Flag.Boolean("verbose").pipe(
  Flag.withDescription("Print each failing form's first failures: test, bytes, initial registers, the diff"),
  Flag.withDefault(false)
)
const json = Flag.Boolean("json").pipe(Flag.withDescription("Print the result as JSON"), Flag.withDefault(false))

export const conformance = Command.make("conformance", { dir, form, verbose, json }, (flags) =>
  Effect.gen(function* () {
    const vectorDir = flags.dir._tag === "Some" ? resolve(flags.dir.value) : defaultVectorDir
    const result = yield* Effect.tryPromise({
      try: () =>
        runDirectory({
          dir: vectorDir,
          form: flags.form._tag === "Some" ? flags.form.value : undefined,
          makeCpu: realCpu,
          policy: sst80286Policy(readFlagsMasks(vectorDir)),
          keepFailures: flags.verbose ? 3 : 1
        }),
      catch: (e) => e
    })
    yield* Console.log(
      flags.json
        ? JSON.stringify(result, null, 1)
        : formatReport(result, {
            verbose: flags.verbose,
            reasons: { ...skipReasons, ...relaxReasons },
            threshold: PASS_THRESHOLD,
            disassemble: disassembleTest
          })
    )
    if (passRate(result) < PASS_THRESHOLD) process.exitCode = 1
  }).pipe(Effect.catch((e) => (e instanceof VectorDirError ? failWithMessage(e.message, 2) : Effect.die(e))))
).pipe(Command.withDescription("Run hardware-captured CPU conformance vectors and print a per-form table"))
