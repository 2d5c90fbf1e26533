import { defineConfig } from "vitest/config"

// `npm test` writes vitest's JSON report next to the human summary; .ci/run
// reads it to print the plain "N passed, N failed" line CI looks for.
export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    reporters: ["default", "json"],
    outputFile: { json: ".vitest/results.json" },
    testTimeout: 60_000
  }
})
