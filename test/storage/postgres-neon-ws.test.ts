import { afterAll, beforeAll } from "vitest";
import ws from "ws";
import { startNeonGateway, type NeonGateway } from "../../infra/neon-gateway.js";
import { PostgresConfig, createPostgresStorage } from "../../src/adapters/storage/postgres/index.js";
import { describeWithService, serviceUp } from "../helpers/services.js";
import { DATABASE_URL, SchemaJanitor } from "../postgres/helpers.js";
import { runStorageConformance } from "./conformance.js";

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
  runStorageConformance("postgres/neon-ws", (clock) =>
    createPostgresStorage(
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
      { clock },
    ),
  );
});
