import { afterAll } from "vitest";
import { PostgresConfig, createPostgresStorage } from "../../src/adapters/storage/postgres/index.js";
import { describeWithService, serviceUp } from "../helpers/services.js";
import { DATABASE_URL, SchemaJanitor } from "../postgres/helpers.js";
import { runStorageConformance } from "./conformance.js";

const janitor = new SchemaJanitor();

describeWithService("postgres", await serviceUp("postgres"), "postgres storage over pg (TCP)", () => {
  afterAll(() => janitor.dropAll());
  runStorageConformance("postgres/pg", (clock) =>
    createPostgresStorage(
      new PostgresConfig().withDatabaseUrl(DATABASE_URL).withDriver("pg").withSchema(janitor.next()).withMaxConnections(5).withAutoMigrate(true),
      { clock },
    ),
  );
});
