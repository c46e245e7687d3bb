import { afterAll, beforeAll } from "vitest";
import ws from "ws";
import { startNeonGateway, type NeonGateway } from "../../infra/neon-gateway.js";
import { Storage } from "../../src/index.js";
import { PostgresConfig, postgresBackend } from "../../src/adapters/storage/postgres/index.js";
import { describeWithService, serviceUp } from "../helpers/services.js";
import { DATABASE_URL, SchemaJanitor } from "../postgres/helpers.js";
import { runStorageConformance, type StorageFactory } from "./conformance.js";
import { runKvConformance } from "./kv-conformance.js";

const janitor = new SchemaJanitor();
let gateway: NeonGateway;

describeWithService("postgres", await serviceUp("postgres"), "postgres storage over the Neon Pool (WebSocket, local gateway)", () => {
  beforeAll(async () => {
    gateway = await startNeonGateway({ port: 0, databaseUrl: DATABASE_URL });
  });
  afterAll(async () => {
    await gateway?.close();
    await janitor.dropAll();
  });
  const open: StorageFactory = async (clock) =>
    new Storage(
      postgresBackend(
        new PostgresConfig()
          .withDatabaseUrl(DATABASE_URL)
          .withDriver("neon-ws")
          .withNeonSocket({
            webSocketConstructor: ws,
            wsProxy: (host, port) => gateway.wsProxy(host, port),
            useSecureWebSocket: false,
            pipelineConnect: false,
            pipelineTLS: false,
            coalesceWrites: false,
          })
          .withSchema(janitor.next())
          .withMaxConnections(5)
          .withAutoMigrate(true),
      ),
      { clock },
    );
  runStorageConformance("postgres/neon-ws", open);
  runKvConformance("postgres/neon-ws", open);
});
