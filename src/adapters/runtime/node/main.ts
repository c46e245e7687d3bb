/**
 * `npm start`: the qml server for Node. Configuration comes from the
 * environment (see the README's table); the first SIGTERM/SIGINT drains
 * gracefully, a second one exits at once.
 */
import { ConfigError } from "../../../index.js";
import { loadEnvConfig } from "./env.js";
import { startNodeServer } from "./node-server.js";

async function main(): Promise<void> {
  let config;
  try {
    config = loadEnvConfig(process.env, process.argv.slice(2));
  } catch (e) {
    if (e instanceof ConfigError) {
      console.error(e.message);
      process.exit(2);
    }
    throw e;
  }
  const handle = await startNodeServer({ config });
  let signals = 0;
  const onSignal = (sig: NodeJS.Signals) => {
    signals++;
    if (signals > 1) {
      console.error(JSON.stringify({ level: "warn", msg: `second ${sig}: exiting at once` }));
      process.exit(1);
    }
    console.log(JSON.stringify({ time: new Date().toISOString(), level: "info", msg: `${sig} received: draining`, graceMs: config.shutdownTimeoutMs }));
    handle.stop().then(
      () => process.exit(0),
      (e) => {
        console.error(e);
        process.exit(1);
      },
    );
  };
  process.on("SIGTERM", onSignal);
  process.on("SIGINT", onSignal);
}

main().catch((e) => {
  console.error(e instanceof Error ? e.message : e);
  process.exit(1);
});
