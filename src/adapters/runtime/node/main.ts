#!/usr/bin/env node
/**
 * The qml server for Node: `npm start` in the repository, `qml-server` (or
 * `node dist/adapters/runtime/node/main.js`) from the published package.
 * Configuration comes from the environment (see the README's table).
 *
 * Exit codes: 0 after a graceful drain; 2 for bad configuration (the message
 * names the variable); 1 for anything else, including a drain that outlived
 * its grace period by WATCHDOG_SLACK_MS; 128 + signal number when a second
 * signal cuts the drain short (jobs still running then keep their leases,
 * which run out and are reclaimed by another server).
 */
import { errorFields } from "../../../core/logger.js";
import { ConfigError } from "../../../index.js";
import { loadEnvConfig, type NodeEnvConfig } from "./env.js";
import { startNodeServer, type NodeServerHandle } from "./node-server.js";

/** Beyond the grace period, releasing jobs takes a round trip or two; past this, something hangs. */
const WATCHDOG_SLACK_MS = 15_000;
const SIGNAL_NUMBERS: Partial<Record<NodeJS.Signals, number>> = { SIGINT: 2, SIGTERM: 15 };

function line(level: string, msg: string, fields: Record<string, unknown> = {}): string {
  return JSON.stringify({ time: new Date().toISOString(), level, msg, service: "qml", ...fields });
}

async function main(): Promise<void> {
  // A log reader that goes away (a closed pipe) must not take running jobs down with it.
  for (const stream of [process.stdout, process.stderr]) {
    stream.on("error", (e: NodeJS.ErrnoException) => {
      if (e.code !== "EPIPE") throw e;
    });
  }

  let config: NodeEnvConfig;
  try {
    config = loadEnvConfig(process.env, process.argv.slice(2));
  } catch (e) {
    if (e instanceof ConfigError) {
      console.error(e.message);
      process.exit(2);
    }
    throw e;
  }

  // Installed before anything can claim a job, so that no signal ever meets
  // Node's default handler (which would exit without releasing anything).
  let handle: NodeServerHandle | undefined;
  let signals = 0;
  const onSignal = (sig: NodeJS.Signals) => {
    signals++;
    if (signals > 1) {
      console.error(line("warn", `second ${sig}: exiting at once`));
      process.exit(128 + (SIGNAL_NUMBERS[sig] ?? 1));
    }
    console.log(line("info", `${sig} received: draining`, { graceMs: config.shutdownTimeoutMs }));
    const watchdog = setTimeout(() => {
      console.error(line("error", "drain did not finish in time: exiting", { graceMs: config.shutdownTimeoutMs, slackMs: WATCHDOG_SLACK_MS }));
      process.exit(1);
    }, config.shutdownTimeoutMs + WATCHDOG_SLACK_MS);
    watchdog.unref();
    // No handle yet: start-up has not reached the job server, so nothing is claimed.
    void (handle ? handle.stop() : Promise.resolve()).then(
      () => {
        console.log(line("info", "drained: exiting"));
        process.exit(0);
      },
      (e) => {
        console.error(line("error", "drain failed", { error: e instanceof Error ? errorFields(e) : e }));
        process.exit(1);
      },
    );
  };
  process.on("SIGTERM", onSignal);
  process.on("SIGINT", onSignal);

  try {
    handle = await startNodeServer({ config });
  } catch (e) {
    if (e instanceof ConfigError) {
      console.error(e.message);
      process.exit(2);
    }
    throw e;
  }
}

main().catch((e) => {
  console.error(line("error", "fatal", { error: e instanceof Error ? errorFields(e) : e }));
  process.exit(1);
});
