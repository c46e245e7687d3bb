import { afterAll } from "vitest";
import { Storage } from "../../src/index.js";
import { PostgresConfig, postgresBackend } from "../../src/adapters/storage/postgres/index.js";
import { describeWithService, serviceUp } from "../helpers/services.js";
import { DATABASE_URL, SchemaJanitor } from "../postgres/helpers.js";
import { runStorageConformance, type StorageFactory } from "./conformance.js";
import { runKvConformance } from "./kv-conformance.js";

const janitor = new SchemaJanitor();

describeWithService("postgres", await serviceUp("postgres"), "postgres storage over pg (TCP)", () => {
  afterAll(() => janitor.dropAll());
  const open: StorageFactory = async (clock) =>
    new Storage(
      postgresBackend(
        new PostgresConfig().withDatabaseUrl(DATABASE_URL).withDriver("pg").withSchema(janitor.next()).withMaxConnections(5).withAutoMigrate(true),
      ),
      { clock },
    );
  runStorageConformance("postgres/pg", open);
  runKvConformance("postgres/pg", open);
});
