/**
 * The store and the server: `stats`, `migrate`, `serve`.
 */
import { Command } from "commander";
import { ALL_STATES, type Stats } from "../../index.js";
import { printJson, printLine, table } from "../output.js";
import { describeStore, withStorage } from "../store.js";

export function adminCommands(program: Command): void {
  program
    .command("stats")
    .description("counts by state and queue, succeeded and failed in the last hour and day")
    .option("--json", "print the stats as JSON (with per-minute and per-hour buckets)")
    .action(async (flags: { json?: boolean }) => {
      const stats = await withStorage((storage) => storage.stats());
      if (flags.json) printJson(stats);
      else printLine(statsText(stats));
    });

  program
    .command("migrate")
    .description("create or upgrade the store's schema (idempotent; a server does it at start)")
    .action(async () => {
      const where = await withStorage(async (storage, config) => {
        await storage.migrate();
        return describeStore(config);
      });
      printLine(`migrated ${where}`);
    });

  program
    .command("serve")
    .description("run the Node server (qml-server, npm start): workers, scheduler, dashboard; configured by the environment")
    .option("--demo", "keep a demo producer running (QML_DEMO=producer)")
    .action(async () => {
      // The server itself, not a copy: its module starts it when loaded, reads
      // --demo from process.argv, handles the signals and ends the process
      // with its own exit codes. This command never returns.
      await import("../../adapters/runtime/node/main.js");
      await new Promise<never>(() => {});
    });
}

function statsText(stats: Stats): string {
  const sum = (buckets: Stats["perHour"], k: "succeeded" | "failed") => buckets.reduce((n, b) => n + b[k], 0);
  const states = table(
    ["STATE", "JOBS"],
    ALL_STATES.map((s) => [s, String(stats.states[s] ?? 0)]),
  );
  const queues =
    stats.queues.length === 0
      ? "no queues"
      : table(
          ["QUEUE", ...ALL_STATES.map((s) => s.toUpperCase())],
          stats.queues.map((q) => [q.name, ...ALL_STATES.map((s) => String(q.counts[s] ?? 0))]),
        );
  const throughput = table(
    ["WINDOW", "SUCCEEDED", "FAILED"],
    [
      ["last hour", String(sum(stats.perMinute, "succeeded")), String(sum(stats.perMinute, "failed"))],
      ["last day", String(sum(stats.perHour, "succeeded")), String(sum(stats.perHour, "failed"))],
    ],
  );
  return `${states}\ntotal  ${stats.total}\n\n${queues}\n\n${throughput}`;
}
