import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    globalSetup: ["test/server.ts"],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    // One server for every file; the files do not share users, so they may run in parallel,
    // but the machine has two cores shared with the server.
    fileParallelism: false,
  },
});
