/**
 * Timing images (images/<name>/boot.json `"timing": true`, e.g. nanobench)
 * print RDTSC measurements, which differ between QEMU and fibervisor and
 * between execution modes: the differential tests compare what they print
 * with every number taken out, never their bytes.
 */

/** A timing image's non-empty COM1 lines, each number replaced by `#` (what must match across machines). */
export const timingLines = (serial: string): Array<string> =>
  serial
    .split(/\r?\n/)
    .map((line) => line.replace(/\d+/g, "#"))
    .filter((line) => line !== "")
