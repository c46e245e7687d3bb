/**
 * The local Neon gateway, exercised with the real @neondatabase/serverless
 * driver: the HTTP reply shape (raw text rows, dataTypeID), errors as HTTP
 * 400, non-interactive transactions with their isolation headers, the
 * WebSocket tunnel, the allow-list, and the fault hook.
 */
import { afterAll, beforeAll, expect, it } from "vitest";
import ws from "ws";
import { Client, neon, neonConfig } from "@neondatabase/serverless";
import { startNeonGateway, type NeonGateway } from "../../infra/neon-gateway.js";
import { Job, Storage, StorageUnavailableError } from "../../src/index.js";
import { PostgresConfig, postgresBackend } from "../../src/adapters/storage/postgres/index.js";
import { NeonPoolDriver } from "../../src/adapters/storage/postgres/drivers/neon.js";
import { NeonHttpDriver } from "../../src/adapters/storage/postgres/drivers/neon.js";
import { describeWithService, serviceUp } from "../helpers/services.js";
import { DATABASE_URL, SchemaJanitor, adminQuery } from "./helpers.js";

const janitor = new SchemaJanitor();

describeWithService("postgres", await serviceUp("postgres"), "local Neon gateway", () => {
  let gw: NeonGateway;
  let schema: string;

  beforeAll(async () => {
    gw = await startNeonGateway({ port: 0, databaseUrl: DATABASE_URL });
    // The process-wide settings, as a user of the bare driver would set them.
    neonConfig.fetchEndpoint = gw.fetchEndpoint;
    schema = janitor.next();
    await adminQuery(`CREATE SCHEMA "${schema}"`);
    await adminQuery(`CREATE TABLE "${schema}".t (id int PRIMARY KEY, note text)`);
  });
  afterAll(async () => {
    await gw?.close();
    await janitor.dropAll();
  });

  it("answers neon() with rows the driver parses by type, and fields with dataTypeID", async () => {
    const sql = neon(DATABASE_URL, { fullResults: true });
    const res = await sql.query("SELECT $1::int AS n, $2::text AS s, NULL::text AS z, '{\"k\":[1,2]}'::jsonb AS j, 12345678901234::bigint AS big, true AS b", [
      41,
      "héllo",
    ]);
    expect(res.rows).toEqual([{ n: 41, s: "héllo", z: null, j: { k: [1, 2] }, big: "12345678901234", b: true }]);
    expect(res.fields.map((f) => [f.name, f.dataTypeID])).toEqual([
      ["n", 23],
      ["s", 25],
      ["z", 25],
      ["j", 3802],
      ["big", 20],
      ["b", 16],
    ]);
    expect(res.command).toBe("SELECT");
    expect(gw.counts.http).toBeGreaterThan(0);
  });

  it("reports SQL errors as HTTP 400 with the Postgres fields", async () => {
    const sql = neon(DATABASE_URL);
    await expect(sql.query("SELEC 1")).rejects.toMatchObject({ name: "NeonDbError", code: "42601", severity: "ERROR" });
    await expect(sql.query(`INSERT INTO "${schema}".t VALUES (1, 'a'), (1, 'b')`)).rejects.toMatchObject({ code: "23505", constraint: "t_pkey" });
    // One statement per request, as on Neon.
    await expect(sql.query("SELECT 1; SELECT 2")).rejects.toMatchObject({ code: "42601" });
  });

  it("runs sql.transaction() as one transaction: all or nothing, with the asked isolation", async () => {
    const sql = neon(DATABASE_URL);
    const [, level] = await sql.transaction(
      [sql.query(`INSERT INTO "${schema}".t VALUES (10, 'x')`), sql.query("SELECT current_setting('transaction_isolation') AS l")],
      { isolationLevel: "Serializable" },
    );
    expect(level).toEqual([{ l: "serializable" }]);
    await expect(
      sql.transaction([sql.query(`INSERT INTO "${schema}".t VALUES (11, 'y')`), sql.query(`INSERT INTO "${schema}".t VALUES (10, 'dupe')`)]),
    ).rejects.toMatchObject({ code: "23505" });
    const rows = await adminQuery<{ id: number }>(`SELECT id FROM "${schema}".t WHERE id IN (10, 11) ORDER BY id`);
    expect(rows.map((r) => r.id)).toEqual([10]);
    const [ro] = await sql.transaction([sql.query("SELECT current_setting('transaction_read_only') AS ro")], { readOnly: true });
    expect(ro).toEqual([{ ro: "on" }]);
  });

  it("tunnels a Neon Client over WebSocket, and reaches only the configured database", async () => {
    const before = gw.counts.ws;
    const client = new Client({ connectionString: DATABASE_URL });
    Object.assign(client.neonConfig, { webSocketConstructor: ws, wsProxy: gw.wsProxy, useSecureWebSocket: false, pipelineConnect: false });
    await client.connect();
    const { rows } = await client.query("SELECT 7 AS seven");
    expect(rows).toEqual([{ seven: 7 }]);
    await client.end();
    expect(gw.counts.ws).toBe(before + 1);

    const elsewhere = new Client({ connectionString: "postgres://postgres@127.0.0.1:1/test" });
    Object.assign(elsewhere.neonConfig, { webSocketConstructor: ws, wsProxy: gw.wsProxy, useSecureWebSocket: false, pipelineConnect: false });
    elsewhere.on("error", () => {});
    await expect(elsewhere.connect()).rejects.toBeDefined();
    expect(gw.counts.ws).toBe(before + 1);
    const sql = neon("postgres://postgres@127.0.0.2:5432/test");
    await expect(sql.query("SELECT 1")).rejects.toMatchObject({ message: expect.stringMatching(/does not reach/) });
  });

  it("injects faults: 5xx and resets surface as StorageUnavailableError; a reset after apply leaves the write done", async () => {
    const storage = new Storage(
      postgresBackend(
        new PostgresConfig().withDriver(new NeonHttpDriver({ connectionString: DATABASE_URL, fetchEndpoint: gw.fetchEndpoint })).withSchema(janitor.next()),
      ),
    );
    await storage.migrate();
    try {
      gw.setFaults({ http: () => ({ kind: "status", status: 503 }) });
      await expect(storage.enqueue(new Job("x", []))).rejects.toBeInstanceOf(StorageUnavailableError);
      gw.setFaults({ http: () => ({ kind: "reset" }) });
      await expect(storage.get("x")).rejects.toBeInstanceOf(StorageUnavailableError);
      let seen = 0;
      gw.setFaults({ http: ({ queries }) => (queries[0]!.query.includes("INSERT INTO") && seen++ === 0 ? { kind: "reset-after-apply" } : undefined) });
      const job = new Job("applied-anyway", []);
      await expect(storage.enqueue(job)).rejects.toBeInstanceOf(StorageUnavailableError);
      gw.setFaults(undefined);
      // The client did not hear back, but the job is there; enqueueing the same job again is idempotent.
      expect((await storage.get(job.id))?.name).toBe("applied-anyway");
      expect(await storage.enqueue(job)).toBe(job.id);
      expect((await storage.stats()).total).toBe(1);
      // A 5xx after the commit: the same uncertainty, the same answer.
      gw.setFaults({ http: ({ queries }) => (queries[0]!.query.includes("INSERT INTO") ? { kind: "status-after-apply", status: 500 } : undefined) });
      const second = new Job("applied-then-500", []);
      await expect(storage.enqueue(second)).rejects.toBeInstanceOf(StorageUnavailableError);
      // A slow gateway is only slow.
      gw.setFaults({ http: () => ({ kind: "delay", ms: 20 }) });
      expect((await storage.get(second.id))?.name).toBe("applied-then-500");
    } finally {
      gw.setFaults(undefined);
      await storage.close();
    }

    const pool = await NeonPoolDriver.create({
      connectionString: DATABASE_URL,
      max: 1,
      connectTimeoutMs: 2000,
      socket: { webSocketConstructor: ws, wsProxy: gw.wsProxy, useSecureWebSocket: false, pipelineConnect: false },
    });
    const wsStorage = new Storage(postgresBackend(new PostgresConfig().withDriver(pool).withSchema(schema)));
    try {
      gw.setFaults({ ws: () => ({ kind: "refuse" }) });
      await expect(wsStorage.get("x")).rejects.toBeInstanceOf(StorageUnavailableError);
    } finally {
      gw.setFaults(undefined);
      await wsStorage.close();
      await pool.close();
    }
  });
});
