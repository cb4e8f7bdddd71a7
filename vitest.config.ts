import { defineConfig } from "vitest/config"

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    // Builds dist/ when stale: TestKitExports.test.ts imports the package through its exports map.
    globalSetup: ["test/globalSetup.ts"],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    // The real-server suites share databases; files run one at a time on two cores.
    fileParallelism: false
  }
})
