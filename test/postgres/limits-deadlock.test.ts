/**
 * Per-key concurrency limits under concurrent claims and completions: no
 * deadlocks. Claims take the keys' slot rows in key order; completions must
 * too (fragments.ts, freeSlotsCte). Each deadlock costs PostgreSQL's
 * deadlock_timeout (1 s) before one statement is rolled back and run again,
 * so they lost no job but cut throughput to a tenth (bench/README.md).
 */
import { afterAll, beforeAll, expect, it } from "vitest";
import { Job, JobState, Storage } from "../../src/index.js";
import { PostgresConfig, createPgDriver, postgresBackend, type SqlDriver } from "../../src/adapters/storage/postgres/index.js";
import { type PgDriver } from "../../src/adapters/storage/postgres/drivers/pg.js";
import { describeWithService, serviceUp } from "../helpers/services.js";
import { DATABASE_URL, SchemaJanitor } from "./helpers.js";

const janitor = new SchemaJanitor();
const JOBS = 3_000;
const KEYS = 10;
const LOOPS = 12;

describeWithService("postgres", await serviceUp("postgres"), "postgres per-key limits under concurrency", () => {
  let driver: PgDriver;
  beforeAll(async () => {
    driver = await createPgDriver({ connectionString: DATABASE_URL, max: LOOPS + 2 });
  });
  afterAll(async () => {
    await driver?.close();
    await janitor.dropAll();
  });

  it("claims and completions of limited jobs never deadlock, and every job finishes once", async () => {
    let deadlocks = 0;
    // The real driver; a deadlock it reports (and the backend then runs the statement again) is counted.
    const counting: SqlDriver = {
      name: "pg",
      async query(text, params, options) {
        try {
          return await driver.query(text, params, options);
        } catch (error) {
          if ((error as { code?: string }).code === "40P01") deadlocks++;
          throw error;
        }
      },
      close: async () => {},
    };
    const storage = new Storage(postgresBackend(new PostgresConfig().withDriver(counting).withSchema(janitor.next())));
    await storage.migrate();
    await storage.enqueue(Array.from({ length: JOBS }, (_, i) => new Job("limited", [i], { concurrency: { key: `customer:${i % KEYS}`, limit: 1000 } })));

    const finished = new Map<string, number>();
    await Promise.all(
      Array.from({ length: LOOPS }, async (_, w) => {
        for (;;) {
          const claimed = await storage.driver.claim({ queues: ["default"], limit: 7, owner: `w${w}`, leaseMs: 60_000, now: Date.now() });
          if (claimed.length === 0) return;
          const results = await storage.driver.complete(
            claimed.map((r) => ({ id: r.id, token: r.leaseToken, state: JobState.Succeeded, reason: "ok", worker: `w${w}` })),
            Date.now(),
          );
          claimed.forEach((r, i) => {
            if (results[i]?.status === "applied") finished.set(r.id, (finished.get(r.id) ?? 0) + 1);
          });
        }
      }),
    );

    expect(deadlocks).toBe(0);
    expect(finished.size).toBe(JOBS);
    expect([...finished.values()].every((n) => n === 1)).toBe(true);
    expect((await storage.stats()).states.succeeded).toBe(JOBS);
  });
});
