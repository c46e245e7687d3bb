import { defineConfig } from "vitest/config";
import { workersProjects } from "./test/workers/vitest.config.js";

export default defineConfig({
  test: {
    testTimeout: 30_000,
    hookTimeout: 60_000,
    // Under CI a failed test runs once more; one that passes on its retry is
    // named by test/helpers/ci-reporter.ts (and in .ci/run's closing lines).
    retry: process.env.CI ? 1 : 0,
    reporters: ["default", "./test/helpers/ci-reporter.ts"],
    projects: [
      { extends: true, test: { name: "node", include: ["test/**/*.test.ts"], exclude: ["test/workers/**", "node_modules/**"] } },
      // The Cloudflare runtime's tests run inside workerd (vitest-pool-workers).
      ...workersProjects,
    ],
  },
});
