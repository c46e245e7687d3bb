/**
 * Wake-ups across processes: an enqueue on one storage NOTIFYs, and a
 * server on another storage (another pool, as another process would have)
 * wakes at once instead of at its next poll.
 */
import { afterAll, beforeAll, expect, it } from "vitest";
import { BackgroundJobServer, Job, ServerConfig, WorkerRegistry, WorkerResult, silentLogger } from "../../src/index.js";
import { PostgresStorage, createPgDriver, NeonHttpDriver, type SqlDriver } from "../../src/adapters/storage/postgres/index.js";
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

describeWithService("postgres", await serviceUp("postgres"), "postgres LISTEN/NOTIFY wake-ups", () => {
  let schema: string;
  let producer: PostgresStorage;
  let consumer: PostgresStorage;
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
    producer = new PostgresStorage(await createPgDriver({ connectionString: DATABASE_URL, max: 2 }), { schema });
    consumer = new PostgresStorage(
      observed(await createPgDriver({ connectionString: DATABASE_URL, max: 3 }), (text) => {
        if (text === consumer.statements.claim) claims.emit();
      }),
      { schema },
    );
    await producer.migrate();
  });
  afterAll(async () => {
    await producer?.close();
    await consumer?.close();
    await janitor.dropAll();
  });

  it("announces another storage's enqueues, with queue and runAt, through onEnqueue", async () => {
    expect(await consumer.startListening()).toBe(true);
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
      await consumer.startListening();
      // The server has polled once, found nothing, and now waits a minute.
      await firstPoll;
      const id = await producer.enqueue(new Job("wake", [], { queue: "wake" }));
      // Without the notification this would wait for the next poll, a minute away (past the test timeout).
      expect(await done).toBe(id);
    } finally {
      await server.stop();
    }
  });

  it("drivers without sessions do not listen", async () => {
    const http = new PostgresStorage(new NeonHttpDriver({ connectionString: DATABASE_URL }), { schema });
    expect(await http.startListening()).toBe(false);
    await http.close();
  });
});
