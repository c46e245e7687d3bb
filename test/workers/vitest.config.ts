/**
 * The Cloudflare runtime's tests, as two Vitest projects:
 *
 * - "workers": inside workerd through @cloudflare/vitest-pool-workers, with
 *   a real local Queue (producer, consumer, dead-letter queue), a local D1
 *   database (binding QML_DB, emptied by each test that needs a fresh
 *   store: backends.ts) and the Upstash/Neon gateways in front of the real
 *   Redis and PostgreSQL (started in Node by global-setup.ts);
 * - "workers-node": what runs in Node around it (`wrangler deploy --dry-run`,
 *   `npm run dev:cloudflare`).
 *
 *   npx vitest run --config test/workers/vitest.config.ts
 *
 * The root config can run them too by spreading `workersProjects` into its
 * own `test.projects`.
 */
import { fileURLToPath } from "node:url";
import { cloudflareTest } from "@cloudflare/vitest-pool-workers";
import { defineConfig, type TestProjectInlineConfiguration } from "vitest/config";

const here = fileURLToPath(new URL(".", import.meta.url));
const at = (path: string) => fileURLToPath(new URL(path, import.meta.url));

export const workersProjects: TestProjectInlineConfiguration[] = [
  {
    plugins: [
      cloudflareTest({
        main: at("./fixtures/worker.ts"),
        miniflare: {
          compatibilityDate: "2026-04-20",
          bindings: { QML_DASHBOARD_TOKEN: "test-admin-token-0123456789", QML_METRICS_TOKEN: "test-metrics-token-0123456789abcdef" },
          queueProducers: { QML_QUEUE: { queueName: "qml-wakeups" } },
          d1Databases: { QML_DB: "qml-test" },
          queueConsumers: {
            "qml-wakeups": { maxBatchTimeout: 0.05, maxRetries: 3, deadLetterQueue: "qml-dlq" },
            "qml-dlq": { maxBatchTimeout: 0.05 },
          },
        },
      }),
    ],
    test: {
      name: "workers",
      root: here,
      include: ["**/*.worker.test.ts"],
      globalSetup: [at("./global-setup.ts")],
      // One file at a time: the local Queue delivers to the Worker of the
      // running file, and the harness lives in that file's isolate.
      fileParallelism: false,
      testTimeout: 30_000,
      hookTimeout: 60_000,
      retry: process.env.CI ? 1 : 0,
    },
  },
  {
    test: {
      name: "workers-node",
      root: here,
      include: ["**/*.node.test.ts"],
      environment: "node",
      testTimeout: 30_000,
      hookTimeout: 60_000,
      retry: process.env.CI ? 1 : 0,
    },
  },
];

export default defineConfig({ test: { projects: workersProjects } });
