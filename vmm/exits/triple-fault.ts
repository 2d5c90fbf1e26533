/** Triple-fault exits (reason 2): the guest shut down; this VM ends (as QEMU with -no-reboot), no other is affected. */
import { End, type ExitAction, type ExitContext } from "./types.ts"

export function handleTripleFault(_ctx: ExitContext): ExitAction {
  return End({ _tag: "TripleFault" })
}
