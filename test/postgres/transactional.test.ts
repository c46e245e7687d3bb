/**
 * Transactional enqueue: a job exists if and only if the caller's
 * transaction commits, on a pg client and on a Neon Pool client, and the
 * wake-up goes out only on commit.
 */
import { afterAll, beforeAll, expect, it } from "vitest";
import ws from "ws";
import { startNeonGateway, type NeonGateway } from "../../infra/neon-gateway.js";
import { Job, Storage } from "../../src/index.js";
import { PostgresConfig, createPgDriver, postgresBackend, type SqlClient } from "../../src/adapters/storage/postgres/index.js";
import { NeonPoolDriver } from "../../src/adapters/storage/postgres/drivers/neon.js";
import { type PgDriver } from "../../src/adapters/storage/postgres/drivers/pg.js";
import { describeWithService, serviceUp } from "../helpers/services.js";
import { DATABASE_URL, SchemaJanitor } from "./helpers.js";

const janitor = new SchemaJanitor();

interface TxClient extends SqlClient {
  release(): void;
}

describeWithService("postgres", await serviceUp("postgres"), "postgres transactional enqueue", () => {
  let gateway: NeonGateway;
  let pgDriver: PgDriver;
  let neonDriver: NeonPoolDriver;
  let schema: string;
  let storage: Storage;

  beforeAll(async () => {
    gateway = await startNeonGateway({ databaseUrl: DATABASE_URL });
    schema = janitor.next();
    pgDriver = await createPgDriver({ connectionString: DATABASE_URL, max: 3 });
    neonDriver = await NeonPoolDriver.create({
      connectionString: DATABASE_URL,
      max: 2,
      socket: { webSocketConstructor: ws, wsProxy: gateway.wsProxy, useSecureWebSocket: false, pipelineConnect: false, coalesceWrites: false },
    });
    storage = new Storage(postgresBackend(new PostgresConfig().withDriver(pgDriver).withSchema(schema)));
    await storage.migrate();
  });
  afterAll(async () => {
    await storage?.close();
    await pgDriver?.close();
    await neonDriver?.close();
    await gateway?.close();
    await janitor.dropAll();
  });

  const clients: Array<[string, () => Promise<TxClient>]> = [
    ["pg PoolClient", () => pgDriver.pool.connect()],
    ["Neon Pool client", () => neonDriver.pool.connect() as unknown as Promise<TxClient>],
  ];

  for (const [label, connect] of clients) {
    it(`${label}: commit → the job exists; rollback → it does not`, async () => {
      const client = await connect();
      // This process's own listeners hear of jobs enqueued in a transaction only through the NOTIFY, after the commit.
      const local: string[] = [];
      const off = storage.onEnqueue((jobs) => local.push(...jobs.map((j) => j.id)), { remote: false });
      try {
        await client.query("BEGIN");
        await client.query(`CREATE TEMP TABLE orders (id int) ON COMMIT DROP`);
        await client.query(`INSERT INTO orders VALUES (1)`);
        const committed = await storage.enqueue(new Job("ship_order", [1], { queue: "tx" }), { transaction: client });
        // Not visible outside the transaction before COMMIT.
        expect(await storage.get(committed)).toBeNull();
        await client.query("COMMIT");
        expect((await storage.get(committed))?.arguments).toEqual([1]);

        await client.query("BEGIN");
        const [a, b] = await storage.enqueue([new Job("ship_order", [2]), new Job("ship_order", [3])], { transaction: client });
        expect(a).toBeDefined();
        await client.query("ROLLBACK");
        expect(await storage.get(a!)).toBeNull();
        expect(await storage.get(b!)).toBeNull();
        expect(local).toEqual([]);
      } finally {
        off();
        client.release();
      }
    });
  }

  it("unique keys dedupe against committed jobs inside a transaction", async () => {
    const client = await pgDriver.pool.connect();
    try {
      const first = await storage.enqueue(new Job("u", [], { uniqueKey: `tx-key-${schema}` }));
      await client.query("BEGIN");
      const again = await storage.enqueue(new Job("u", [], { uniqueKey: `tx-key-${schema}` }), { transaction: client });
      await client.query("COMMIT");
      expect(again).toBe(first);
    } finally {
      client.release();
    }
  });

  it("the wake-up NOTIFY is delivered on commit only", async () => {
    const listener = new Storage(postgresBackend(new PostgresConfig().withDatabaseUrl(DATABASE_URL).withSchema(schema).withMaxConnections(1)));
    try {
      const heard = new Promise<string>((resolve) => listener.onEnqueue((jobs) => resolve(jobs[0]!.queue)));
      expect(await listener.subscribed()).toBe(true);
      const client = await pgDriver.pool.connect();
      try {
        await client.query("BEGIN");
        await storage.enqueue(new Job("n", [], { queue: "rolled-back" }), { transaction: client });
        await client.query("ROLLBACK");
        await client.query("BEGIN");
        await storage.enqueue(new Job("n", [], { queue: "committed" }), { transaction: client });
        await client.query("COMMIT");
      } finally {
        client.release();
      }
      // Notifications arrive in commit order: had the rolled-back one been sent, it would come first.
      expect(await heard).toBe("committed");
    } finally {
      await listener.close();
    }
  });

  it("takes only Job instances and a client with query()", async () => {
    await expect(storage.enqueue(new Job("x", []), { transaction: {} as SqlClient })).rejects.toMatchObject({ name: "ValidationError", field: "transaction" });
    const client = await pgDriver.pool.connect();
    try {
      await expect(storage.enqueue({ name: "x" } as unknown as Job, { transaction: client })).rejects.toMatchObject({ name: "ValidationError" });
      await expect(storage.enqueue(new Job("bad:name", []), { transaction: client })).rejects.toMatchObject({ name: "ValidationError" });
    } finally {
      client.release();
    }
  });
});
