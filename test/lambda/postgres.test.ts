/**
 * The Lambda handlers on PostgreSQL: pg over TCP with the pool a Lambda
 * should use (2 connections), and the Neon HTTP driver (no connection held
 * between queries) against the local gateway. NOTIFY is off, as on Lambda
 * (the SQS notifier is the wake-up path there).
 */
import { afterAll, beforeAll, expect, it } from "vitest";
import { Job, WorkerRegistry, silentLogger } from "../../src/index.js";
import { createLambdaHandlers } from "../../src/adapters/runtime/lambda/index.js";
import { lambdaContext, scheduledEvent } from "./aws-events.js";
import { startNeonGateway, type NeonGateway } from "../../infra/neon-gateway.js";
import { PostgresConfig, createPostgresStorage } from "../../src/adapters/storage/postgres/index.js";
import { describeWithService, serviceUp } from "../helpers/services.js";
import { DATABASE_URL, SchemaJanitor } from "../postgres/helpers.js";
import { runLambdaHandlerSuite } from "./handler-suite.js";

const janitor = new SchemaJanitor();

describeWithService("postgres", await serviceUp("postgres"), "lambda handlers on postgres", () => {
  let gateway: NeonGateway;
  beforeAll(async () => {
    gateway = await startNeonGateway({ port: 0, databaseUrl: DATABASE_URL });
  });
  afterAll(async () => {
    await gateway?.close();
    await janitor.dropAll();
  });

  runLambdaHandlerSuite("postgres (pg, TCP, pool of 2)", (clock) =>
    createPostgresStorage(
      new PostgresConfig().withDatabaseUrl(DATABASE_URL).withDriver("pg").withSchema(janitor.next()).withMaxConnections(2).withNotify(false).withAutoMigrate(true),
      { clock },
    ),
  );

  runLambdaHandlerSuite("postgres (neon-http, gateway)", (clock) =>
    createPostgresStorage(
      new PostgresConfig()
        .withDatabaseUrl(DATABASE_URL)
        .withDriver("neon-http")
        .withNeonFetchEndpoint(gateway.fetchEndpoint)
        .withSchema(janitor.next())
        .withNotify(false)
        .withAutoMigrate(true),
      { clock },
    ),
  );

  it("with NOTIFY on, the notifier forwards only this container's enqueues, once each", async () => {
    const schema = janitor.next();
    const config = () => new PostgresConfig().withDatabaseUrl(DATABASE_URL).withSchema(schema).withMaxConnections(1).withAutoMigrate(true);
    const storage = await createPostgresStorage(config());
    const elsewhere = await createPostgresStorage(config());
    const forwarded: string[] = [];
    try {
      const h = createLambdaHandlers({
        storage: () => storage,
        registry: new WorkerRegistry(),
        notifier: { notify: async (jobs) => void forwarded.push(...jobs.map((j) => j.id)) },
        logger: silentLogger,
      });
      await h.scheduleHandler(scheduledEvent(), lambdaContext(2000));
      const mine = await storage.enqueue(new Job("mine", []));
      await elsewhere.enqueue(new Job("theirs", []));
      // A NOTIFY from the other process would arrive within milliseconds if anything listened.
      await new Promise((r) => setTimeout(r, 300));
      expect(forwarded).toEqual([mine]);
    } finally {
      await storage.close();
      await elsewhere.close();
    }
  });
});
