/**
 * The Node side of the workerd tests, as a child process: the local Upstash
 * and Neon gateways in front of the real Redis and PostgreSQL, and cleanup
 * of what a run left in them.
 *
 *   node --import tsx test/workers/node-services.ts
 *
 * prints one JSON line (the values global-setup.ts provides to the tests),
 * then serves until its stdin closes (or SIGTERM), cleans up and exits. It
 * is a process of its own because the Workers pool resolves every package
 * for workerd, where the gateways' Node drivers (ioredis, pg) do not load;
 * and since it ends when its parent's pipe closes, it never outlives the
 * test run.
 */
import { pathToFileURL } from "node:url";
import pg from "pg";
import { startNeonGateway } from "../../infra/neon-gateway.js";
import { startUpstashGateway } from "../../infra/upstash-gateway.js";
import { DATABASE_URL, REDIS_URL, isCI, serviceUp } from "../helpers/services.js";
import { deleteKeys } from "../redis/helpers.js";

export interface ServicesForWorkers {
  provided: {
    ci: boolean;
    redisUp: boolean;
    postgresUp: boolean;
    upstashUrl: string;
    upstashToken: string;
    redisPrefix: string;
    databaseUrl: string;
    neonFetchEndpoint: string;
    pgSchemaPrefix: string;
  };
  stop(): Promise<void>;
}

export async function startServicesForWorkers(): Promise<ServicesForWorkers> {
  const run = crypto.randomUUID().slice(0, 8);
  const redisPrefix = `qmlt-cfw-${run}-`;
  const pgSchemaPrefix = `qml_cfw_${run}_`;
  const [redisUp, postgresUp] = await Promise.all([serviceUp("redis"), serviceUp("postgres")]);
  const upstash = redisUp ? await startUpstashGateway({ port: 0, redisUrl: REDIS_URL }) : undefined;
  const neon = postgresUp ? await startNeonGateway({ port: 0, databaseUrl: DATABASE_URL }) : undefined;

  return {
    provided: {
      ci: isCI(),
      redisUp,
      postgresUp,
      upstashUrl: upstash?.url ?? "",
      upstashToken: upstash?.token ?? "",
      redisPrefix,
      databaseUrl: DATABASE_URL,
      neonFetchEndpoint: neon?.fetchEndpoint ?? "",
      pgSchemaPrefix,
    },
    async stop() {
      await upstash?.close();
      await neon?.close();
      if (redisUp) await deleteKeys(REDIS_URL, `${redisPrefix}*`);
      if (postgresUp) {
        const client = new pg.Client({ connectionString: DATABASE_URL });
        await client.connect();
        try {
          const { rows } = await client.query<{ nspname: string }>("SELECT nspname FROM pg_namespace WHERE starts_with(nspname, $1)", [pgSchemaPrefix]);
          for (const r of rows) await client.query(`DROP SCHEMA "${r.nspname.replace(/"/g, '""')}" CASCADE`);
        } finally {
          await client.end();
        }
      }
    },
  };
}

async function main(): Promise<void> {
  const services = await startServicesForWorkers();
  process.stdout.write(`${JSON.stringify(services.provided)}\n`);
  let stopping: Promise<void> | undefined;
  const stop = () => {
    stopping ??= services.stop().then(
      () => process.exit(0),
      (e: unknown) => {
        console.error("[qml] workers test services: cleanup failed", e);
        process.exit(1);
      },
    );
  };
  process.stdin.on("end", stop);
  process.stdin.on("close", stop);
  process.stdin.resume();
  process.once("SIGTERM", stop);
  process.once("SIGINT", stop);
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().catch((e: unknown) => {
    console.error(e);
    process.exit(1);
  });
}
