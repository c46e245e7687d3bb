/**
 * Wake-ups across processes: an enqueue on one storage NOTIFYs, and a
 * server on another storage (another pool, as another process would have)
 * wakes at once instead of at its next poll.
 */
import { afterAll, beforeAll, expect, it } from "vitest";
import { BackgroundJobServer, Job, ServerConfig, Storage, WorkerRegistry, WorkerResult, silentLogger } from "../../src/index.js";
import { type RemoteEnqueue } from "../../src/core/driver.js";
import { PostgresConfig, createPgDriver, postgresBackend, type PostgresBackend, type SqlDriver } from "../../src/adapters/storage/postgres/index.js";
import { type PgDriver } from "../../src/adapters/storage/postgres/drivers/pg.js";
import { NeonHttpDriver } from "../../src/adapters/storage/postgres/drivers/neon.js";
import { describeWithService, serviceUp } from "../helpers/services.js";
import { DATABASE_URL, SchemaJanitor } from "./helpers.js";

const janitor = new SchemaJanitor();

/** The real driver, with a hook after each statement: lets the test know when the server's first poll is over. */
function observed(inner: SqlDriver, after: (text: string) => void): SqlDriver {
  return {
    name: inner.name,
    async query(text, params, options) {
      const res = await inner.query(text, params, options);
      after(text);
      return res;
    },
    close: () => inner.close(),
    listen: inner.listen?.bind(inner),
  } as SqlDriver;
}

const IGNORE = { enqueued: () => {}, cancelled: () => {} };
describeWithService("postgres", await serviceUp("postgres"), "postgres LISTEN/NOTIFY wake-ups", () => {
  let schema: string;
  let producerDriver: PgDriver;
  let consumerDriver: PgDriver;
  let producer: Storage;
  let consumerBackend: PostgresBackend;
  let consumer: Storage;
  const claims = {
    waiters: [] as Array<() => void>,
    emit() {
      for (const w of this.waiters.splice(0)) w();
    },
    next(): Promise<void> {
      return new Promise((resolve) => this.waiters.push(resolve));
    },
  };

  beforeAll(async () => {
    schema = janitor.next();
    producerDriver = await createPgDriver({ connectionString: DATABASE_URL, max: 2 });
    producer = new Storage(postgresBackend(new PostgresConfig().withDriver(producerDriver).withSchema(schema)));
    consumerDriver = await createPgDriver({ connectionString: DATABASE_URL, max: 3 });
    const watched = observed(consumerDriver, (text) => {
      if (text === consumerBackend.statements.claim) claims.emit();
    });
    consumerBackend = postgresBackend(new PostgresConfig().withDriver(watched).withSchema(schema));
    consumer = new Storage(consumerBackend);
    await producer.migrate();
  });
  afterAll(async () => {
    await producer?.close();
    await consumer?.close();
    await producerDriver?.close();
    await consumerDriver?.close();
    await janitor.dropAll();
  });

  it("announces another storage's enqueues, with queue and runAt, through onEnqueue", async () => {
    const heard: Array<{ queue: string; runAt: number }> = [];
    const two = new Promise<void>((resolve) => {
      const off = consumer.onEnqueue((jobs) => {
        heard.push(...jobs.map((j) => ({ queue: j.queue, runAt: j.runAt })));
        if (heard.length >= 2) {
          off();
          resolve();
        }
      });
    });
    // The listener asked for remote enqueues: the storage subscribed; it is up once this resolves.
    expect(await consumer.subscribed()).toBe(true);
    const now = producer.clock.now();
    await producer.enqueue(new Job("mail", [], { queue: "mail" }));
    await producer.enqueue(new Job("later", [], { queue: "reports", delay: 60_000 }));
    await two;
    expect(heard[0]!.queue).toBe("mail");
    expect(heard[1]!.queue).toBe("reports");
    expect(heard[1]!.runAt).toBeGreaterThanOrEqual(now + 60_000);
  });

  it("wakes a BackgroundJobServer polling every minute as soon as another process enqueues", async () => {
    const registry = new WorkerRegistry().register("wake", async () => WorkerResult.success("woken"));
    const server = new BackgroundJobServer(
      consumer,
      registry,
      new ServerConfig("listen-test").queues(["wake"]).pollingInterval(60_000).maxPollingInterval(60_000).enableScheduler(false).logger(silentLogger),
    );
    const done = new Promise<string>((resolve) => server.on("job:succeeded", (e) => resolve(e.job.id)));
    const firstPoll = claims.next();
    await server.start();
    try {
      expect(await consumer.subscribed()).toBe(true);
      // The server has polled once, found nothing, and now waits a minute.
      await firstPoll;
      const id = await producer.enqueue(new Job("wake", [], { queue: "wake" }));
      // Without the notification this would wait for the next poll, a minute away (past the test timeout).
      expect(await done).toBe(id);
    } finally {
      await server.stop();
    }
  });

  it("the backend's subscribe hears NOTIFYs until stopped, and close stops what is left", async () => {
    const backend = postgresBackend(new PostgresConfig().withDatabaseUrl(DATABASE_URL).withSchema(schema).withMaxConnections(1));
    const heard: RemoteEnqueue[] = [];
    const waiters: Array<() => void> = [];
    const stop = await backend.subscribe({
      enqueued: (jobs) => {
        heard.push(jobs);
        waiters.splice(0).forEach((w) => w());
      },
      cancelled: () => {},
    });
    expect(stop).toBeTypeOf("function");
    const second = await backend.subscribe(IGNORE);
    try {
      const arrived = new Promise<void>((resolve) => waiters.push(resolve));
      const id = await producer.enqueue(new Job("sub", [], { queue: "subscribed" }));
      await arrived;
      expect(heard).toEqual([[{ id, queue: "subscribed", runAt: expect.any(Number) }]]);
      await stop!();
      await stop!(); // idempotent
    } finally {
      await backend.close(); // stops `second` and closes the pool it made
    }
    await second!(); // already stopped: a no-op
    await expect(backend.get(["x"])).rejects.toMatchObject({ name: "StorageUnavailableError" });
  });

  it("drivers without sessions, and a backend with notify off, do not listen", async () => {
    const http = new Storage(postgresBackend(new PostgresConfig().withDriver(new NeonHttpDriver({ connectionString: DATABASE_URL })).withSchema(schema)));
    expect(await http.driver.subscribe!(IGNORE)).toBeUndefined();
    http.onEnqueue(() => {});
    expect(await http.subscribed()).toBe(false);
    await http.close();
    const quiet = postgresBackend(new PostgresConfig().withDriver(producerDriver).withSchema(schema).withNotify(false));
    expect(await quiet.subscribe(IGNORE)).toBeUndefined();
    await quiet.close();
  });
});
