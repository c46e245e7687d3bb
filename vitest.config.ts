import { defineConfig } from "vitest/config";
import { workersProjects } from "./test/workers/vitest.config.js";

export default defineConfig({
  test: {
    testTimeout: 30_000,
    hookTimeout: 60_000,
    reporters: ["default"],
    projects: [
      { extends: true, test: { name: "node", include: ["test/**/*.test.ts"], exclude: ["test/workers/**", "node_modules/**"] } },
      // The Cloudflare runtime's tests run inside workerd (vitest-pool-workers).
      ...workersProjects,
    ],
  },
});
