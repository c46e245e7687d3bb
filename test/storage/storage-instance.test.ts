/** StorageInstance makes every backend from its config, the driver picked by URL. */
import { expect, it } from "vitest";
import { Job, StorageInstance, type Storage } from "../../src/index.js";
import { RedisConfig } from "../../src/adapters/storage/redis/index.js";
import { PostgresConfig } from "../../src/adapters/storage/postgres/index.js";
import { DATABASE_URL, REDIS_URL, describeWithService, serviceUp } from "../helpers/services.js";

async function roundTrip(storage: Storage): Promise<void> {
  await storage.migrate();
  const id = await storage.enqueue(new Job("instance_check", [storage.kind]));
  expect((await storage.get(id))?.arguments).toEqual([storage.kind]);
}

it("memory", async () => {
  const s = StorageInstance.memory();
  expect(s.kind).toBe("memory");
  await roundTrip(s);
});

describeWithService("redis", await serviceUp("redis"), "StorageInstance.redis", () => {
  it("redis:// picks the TCP driver", async () => {
    const prefix = `qml-si-${Math.random().toString(36).slice(2, 8)}:`;
    const s = await StorageInstance.redis(new RedisConfig(REDIS_URL).withKeyPrefix(prefix));
    try {
      expect(s.kind).toBe("redis");
      await roundTrip(s);
      await s.purgeFinished({ states: ["enqueued"] });
    } finally {
      await s.close();
    }
  });
});

describeWithService("postgres", await serviceUp("postgres"), "StorageInstance.postgres", () => {
  it("postgres:// with the pg driver", async () => {
    const schema = `qml_si_${Math.random().toString(36).slice(2, 8)}`;
    const s = await StorageInstance.postgres(new PostgresConfig().withDatabaseUrl(DATABASE_URL).withSchema(schema).withDriver("pg"));
    try {
      expect(s.kind).toBe("postgres");
      await roundTrip(s);
    } finally {
      await s.close();
      const pg = await import("pg");
      const c = new pg.default.Client({ connectionString: DATABASE_URL });
      await c.connect();
      await c.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
      await c.end();
    }
  });
});
