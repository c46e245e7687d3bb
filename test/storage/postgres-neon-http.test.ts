import { afterAll, beforeAll } from "vitest";
import { startNeonGateway, type NeonGateway } from "../../infra/neon-gateway.js";
import { PostgresConfig, createPostgresStorage } from "../../src/adapters/storage/postgres/index.js";
import { describeWithService, serviceUp } from "../helpers/services.js";
import { DATABASE_URL, SchemaJanitor } from "../postgres/helpers.js";
import { runStorageConformance } from "./conformance.js";

const janitor = new SchemaJanitor();
let gateway: NeonGateway;

describeWithService("postgres", await serviceUp("postgres"), "postgres storage over neon() (HTTP, local gateway)", () => {
  beforeAll(async () => {
    gateway = await startNeonGateway({ port: 0, databaseUrl: DATABASE_URL });
  });
  afterAll(async () => {
    await gateway?.close();
    await janitor.dropAll();
  });
  runStorageConformance("postgres/neon-http", (clock) =>
    createPostgresStorage(
      new PostgresConfig()
        .withDatabaseUrl(DATABASE_URL)
        .withDriver("neon-http")
        .withNeonFetchEndpoint(gateway.fetchEndpoint)
        .withSchema(janitor.next())
        .withAutoMigrate(true),
      { clock },
    ),
  );
});
