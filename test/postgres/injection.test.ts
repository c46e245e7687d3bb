/**
 * Hostile names, filters and payloads: rejected by validation, or carried
 * as parameters; either way the schema and the other jobs are untouched.
 * Run over pg (TCP) and neon() (HTTP), whose parameters travel differently.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startNeonGateway, type NeonGateway } from "../../infra/neon-gateway.js";
import { Job, JobState, Storage, ValidationError } from "../../src/index.js";
import { PostgresConfig, postgresBackend, type PostgresDriverName } from "../../src/adapters/storage/postgres/index.js";
import { describeWithService, serviceUp } from "../helpers/services.js";
import { DATABASE_URL, SchemaJanitor, adminQuery } from "./helpers.js";

const janitor = new SchemaJanitor();
const SQL = "'; DROP TABLE qml.jobs; --";

async function catalog(schema: string): Promise<string[]> {
  const rows = await adminQuery<{ item: string }>(
    `SELECT c.relkind::text || ' ' || c.relname AS item FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1
     UNION ALL SELECT 'column ' || table_name || '.' || column_name FROM information_schema.columns WHERE table_schema = $1
     ORDER BY 1`,
    [schema],
  );
  return rows.map((r) => r.item);
}

describeWithService("postgres", await serviceUp("postgres"), "postgres: SQL in names, filters and payloads", () => {
  let gateway: NeonGateway;
  beforeAll(async () => {
    gateway = await startNeonGateway({ databaseUrl: DATABASE_URL });
  });
  afterAll(async () => {
    await gateway?.close();
    await janitor.dropAll();
  });

  for (const driver of ["pg", "neon-http"] as PostgresDriverName[]) {
    describe(driver, () => {
      let storage: Storage;
      let schema: string;
      beforeAll(async () => {
        schema = janitor.next();
        let config = new PostgresConfig().withDatabaseUrl(DATABASE_URL).withDriver(driver).withSchema(schema).withAutoMigrate(true).withMaxConnections(2);
        if (driver === "neon-http") config = config.withNeonFetchEndpoint(gateway.fetchEndpoint);
        storage = new Storage(postgresBackend(config));
      });
      afterAll(() => storage?.close());

      it("rejects hostile queue and job names, and list filters, before any SQL; carries the rest as parameters", async () => {
        const keep = await storage.enqueue(new Job("keeper", ["safe"]));
        const before = await catalog(schema);

        for (const queue of [SQL, `default'; DELETE FROM "${schema}".jobs; --`, 'q"; DROP SCHEMA x; --']) {
          await expect(storage.enqueue(new Job("ok", [], { queue }))).rejects.toBeInstanceOf(ValidationError);
          await expect(storage.list({ queue })).rejects.toBeInstanceOf(ValidationError);
        }
        for (const name of [SQL, "x') OR 1=1 --"]) {
          await expect(storage.enqueue(new Job(name, []))).rejects.toBeInstanceOf(ValidationError);
          await expect(storage.list({ name })).rejects.toBeInstanceOf(ValidationError);
        }
        await expect(storage.list({ state: `enqueued') OR ('1'='1` as JobState })).rejects.toBeInstanceOf(ValidationError);
        await expect(storage.addOrUpdateRecurring(SQL, "* * * * *", "job")).rejects.toBeInstanceOf(ValidationError);

        // Free-form fields are data: stored and matched literally.
        const id = await storage.enqueue(new Job("payload", [SQL, { [SQL]: SQL }], { uniqueKey: SQL, metadata: { note: SQL } }));
        expect(await storage.list({ text: SQL })).toMatchObject({ items: [{ id }] });
        expect((await storage.list({ text: "' OR '1'='1" })).items).toHaveLength(0);
        expect(await storage.get(SQL)).toBeNull();
        // U+0000 cannot live in Postgres text: refused or not found by the core's rules, never a driver error.
        expect(await storage.get("a\u0000b")).toBeNull();
        await expect(storage.enqueue(new Job("ok", [], { uniqueKey: "k\u0000" }))).rejects.toBeInstanceOf(ValidationError);
        await expect(storage.list({ text: "\u0000" })).rejects.toBeInstanceOf(ValidationError);
        expect(await storage.delete(SQL)).toBe(false);
        // The seam itself, called with what validation would have refused, still only binds parameters.
        expect(await storage.driver.claim({ queues: [SQL, "default' OR '1'='1"], limit: 10, owner: SQL, leaseMs: 1000, now: Date.now() })).toEqual([]);
        expect(await storage.driver.purge([SQL as JobState], Date.now() + 1, 10)).toBe(0);
        const [claimed] = await storage.driver.claim({ queues: ["default"], limit: 1, owner: SQL, leaseMs: 60_000, now: Date.now() });
        // (Error text reaches the seam well-formed: the core replaces U+0000 first, see the conformance suite.)
        const res = await storage.driver.complete(
          [{ id: claimed!.id, token: claimed!.leaseToken, state: JobState.Failed, error: { name: SQL, message: `${SQL} \u2028 ✓` }, reason: SQL, worker: SQL }],
          Date.now(),
        );
        expect(res[0]!.status).toBe("applied");

        expect(await catalog(schema)).toEqual(before);
        const got = await storage.get(id);
        expect(got?.arguments).toEqual([SQL, { [SQL]: SQL }]);
        expect(got?.uniqueKey).toBe(SQL);
        expect(got?.metadata).toEqual({ note: SQL });
        const failed = await storage.get(claimed!.id);
        expect(failed?.error?.name).toBe(SQL);
        expect(failed?.error?.message).toBe(`${SQL} \u2028 ✓`);
        expect(failed?.history.at(-1)).toMatchObject({ state: JobState.Failed, reason: SQL, worker: SQL });
        expect(await storage.get(keep)).not.toBeNull();
        const [count] = await adminQuery<{ n: number }>(`SELECT count(*)::int AS n FROM "${schema}".jobs`);
        expect(count!.n).toBe(2);
      });
    });
  }

  it("refuses a schema name that is not a plain identifier", () => {
    for (const bad of ['qml"; DROP SCHEMA public; --', "Qml", "1abc", "", "a-b", "x".repeat(64)]) {
      expect(() => new PostgresConfig().withSchema(bad)).toThrow(/schema must match/);
    }
  });
});
