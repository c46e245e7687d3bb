/**
 * The Lambda handlers on PostgreSQL: pg over TCP with the pool a Lambda
 * should use (2 connections), and the Neon HTTP driver (no connection held
 * between queries) against the local gateway. NOTIFY is off, as on Lambda
 * (the SQS notifier is the wake-up path there).
 */
import { afterAll, beforeAll, expect, it } from "vitest";
import { Job, Storage, WorkerRegistry, silentLogger, type Clock } from "../../src/index.js";
import { createLambdaHandlers } from "../../src/adapters/runtime/lambda/index.js";
import { lambdaContext, scheduledEvent } from "./aws-events.js";
import { startNeonGateway, type NeonGateway } from "../../infra/neon-gateway.js";
import { PostgresConfig, postgresBackend } from "../../src/adapters/storage/postgres/index.js";
import { describeWithService, serviceUp } from "../helpers/services.js";
import { DATABASE_URL, SchemaJanitor } from "../postgres/helpers.js";
import { runConsumerSuite } from "../serverless/consumer-suite.js";
import { lambdaHarness } from "./consumer-harness.js";
import { runLambdaHandlerSuite } from "./handler-suite.js";

const janitor = new SchemaJanitor();
const open = (config: PostgresConfig, clock?: Clock) => new Storage(postgresBackend(config.withAutoMigrate(true)), clock ? { clock } : {});

describeWithService("postgres", await serviceUp("postgres"), "lambda handlers on postgres", () => {
  let gateway: NeonGateway;
  beforeAll(async () => {
    gateway = await startNeonGateway({ port: 0, databaseUrl: DATABASE_URL });
  });
  afterAll(async () => {
    await gateway?.close();
    await janitor.dropAll();
  });

  const pgTcp = () => new PostgresConfig().withDatabaseUrl(DATABASE_URL).withDriver("pg").withSchema(janitor.next()).withMaxConnections(2).withNotify(false);
  const neonHttp = () =>
    new PostgresConfig()
      .withDatabaseUrl(DATABASE_URL)
      .withDriver("neon-http")
      .withNeonFetchEndpoint(gateway.fetchEndpoint)
      .withSchema(janitor.next())
      .withNotify(false);

  runLambdaHandlerSuite("postgres (pg, TCP, pool of 2)", async (clock) => open(pgTcp(), clock));
  runLambdaHandlerSuite("postgres (neon-http, gateway)", async (clock) => open(neonHttp(), clock));
  runConsumerSuite(
    "lambda/postgres (pg)",
    lambdaHarness(async (clock) => open(pgTcp(), clock)),
  );
  runConsumerSuite(
    "lambda/postgres (neon-http)",
    lambdaHarness(async (clock) => open(neonHttp(), clock)),
  );

  it("with NOTIFY on, the notifier forwards only this container's enqueues, once each", async () => {
    const schema = janitor.next();
    const config = () => new PostgresConfig().withDatabaseUrl(DATABASE_URL).withSchema(schema).withMaxConnections(1);
    const storage = open(config());
    const elsewhere = open(config());
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
