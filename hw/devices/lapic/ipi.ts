/**
 * Inter-processor interrupts between local APICs (Intel SDM Vol. 3A 11.6
 * "Issuing Interprocessor Interrupts"; 10.6 in older editions).
 *
 * A write to ICR low makes the sending APIC emit an `IpiMessage` through its
 * `onIpi` hook; the machine wires that hook to `routeIpi`, which plays the
 * system bus: it picks the destination APICs (shorthand, physical or logical
 * destination, 11.6.2) and hands the message to each one's `receiveIpi`.
 * Delivery is synchronous: the ICR delivery-status bit always reads idle.
 *
 * Combinations the SDM lists as invalid (Table 11-3 for the Pentium 4 and
 * Xeon: "self" with anything but fixed, "all including self" with SIPI or
 * lowest priority) are dropped. Lowest-priority delivery picks one target:
 * the matching APIC with the lowest processor priority, ties to the lowest
 * APIC ID then the first in `apics` order (11.6.2.4; deterministic).
 */
import { DeliveryMode, Shorthand } from "./registers.ts"

export interface IpiMessage {
  readonly vector: number
  readonly deliveryMode: DeliveryMode
  /** Destination mode: logical (ICR bit 11) or physical. */
  readonly logical: boolean
  /** ICR high bits 31:24. */
  readonly destination: number
  readonly shorthand: Shorthand
  /** Level bit (14): false only for the INIT level de-assert message. */
  readonly assert: boolean
  /** Trigger mode bit (15). */
  readonly levelTriggered: boolean
}

/** What the router needs from an APIC (implemented by LocalApic). */
export interface IpiTarget {
  readonly apicId: number
  readonly processorPriority: number
  /** Does this APIC's ID (physical) or LDR/DFR (logical) match `destination`? (11.6.2.1, 11.6.2.2) */
  matches(logical: boolean, destination: number): boolean
  receiveIpi(ipi: IpiMessage): void
}

const validCombination = (ipi: IpiMessage): boolean => {
  switch (ipi.shorthand) {
    case Shorthand.Self:
      return ipi.deliveryMode === DeliveryMode.Fixed
    case Shorthand.AllIncludingSelf:
      return ipi.deliveryMode !== DeliveryMode.Startup && ipi.deliveryMode !== DeliveryMode.LowestPriority
    default:
      return true
  }
}

/** The APICs an IPI from `sender` is addressed to, before lowest-priority arbitration. */
export const ipiTargets = <A extends IpiTarget>(apics: ReadonlyArray<A>, sender: A, ipi: IpiMessage): Array<A> => {
  if (!validCombination(ipi)) return []
  switch (ipi.shorthand) {
    case Shorthand.Self:
      return [sender]
    case Shorthand.AllIncludingSelf:
      return [...apics]
    case Shorthand.AllExcludingSelf:
      return apics.filter((a) => a !== sender)
    default:
      return apics.filter((a) => a.matches(ipi.logical, ipi.destination))
  }
}

/** Deliver an IPI sent by `sender` to its destinations among `apics`. */
export const routeIpi = <A extends IpiTarget>(apics: ReadonlyArray<A>, sender: A, ipi: IpiMessage): void => {
  const targets = ipiTargets(apics, sender, ipi)
  if (ipi.deliveryMode === DeliveryMode.LowestPriority && targets.length > 1) {
    let best = targets[0]!
    for (const t of targets) {
      const better =
        t.processorPriority < best.processorPriority ||
        (t.processorPriority === best.processorPriority && t.apicId < best.apicId)
      if (better) best = t
    }
    best.receiveIpi(ipi)
    return
  }
  for (const t of targets) t.receiveIpi(ipi)
}
