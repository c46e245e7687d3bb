/**
 * Recurring jobs: `recurring list|add|remove`. Each slot of a cron
 * expression enqueues its job once, however many servers tick.
 */
import { Command } from "commander";
import { NotFoundError, type RecurringDefinition, type RecurringOptions } from "../../index.js";
import { jsonArray, jsonObject, number } from "../parse.js";
import { brief, printJson, printLine, table, time } from "../output.js";
import { withStorage } from "../store.js";

interface AddFlags {
  queue?: string;
  priority?: number;
  maxAttempts?: number;
  timeout?: number;
  timezone?: string;
  metadata?: Record<string, unknown>;
  json?: boolean;
}

export function recurringCommands(program: Command): void {
  const recurring = program.command("recurring").description("recurring (cron) jobs: list, add, remove");

  recurring
    .command("list")
    .description("list the recurring jobs")
    .option("--json", "print the definitions as a JSON array")
    .action(async (flags: { json?: boolean }) => {
      const defs = await withStorage((storage) => storage.listRecurring());
      if (flags.json) printJson(defs);
      else printLine(defs.length === 0 ? "no recurring jobs" : recurringTable(defs));
    });

  recurring
    .command("add")
    .description("add a recurring job, or replace the one with this id")
    .argument("<id>", "its id")
    .argument("<cron>", 'a cron expression, e.g. "0 3 * * *" (quote it)')
    .argument("<name>", "the job's name")
    .argument("[args-json]", "its arguments, a JSON array", jsonArray, [])
    .option("-q, --queue <queue>", "queue of the jobs it enqueues")
    .option("-p, --priority <n>", "their priority", number)
    .option("--max-attempts <n>", "their attempts", number)
    .option("--timeout <ms>", "their timeout", number)
    .option("--timezone <zone>", "IANA time zone the cron expression is read in (default UTC)")
    .option("--metadata <json>", "a JSON object kept with each job", jsonObject)
    .option("--json", "print the definition as JSON")
    .action(async (id: string, cron: string, name: string, args: unknown[], flags: AddFlags) => {
      const options: RecurringOptions = {};
      if (flags.queue !== undefined) options.queue = flags.queue;
      if (flags.priority !== undefined) options.priority = flags.priority;
      if (flags.maxAttempts !== undefined) options.maxAttempts = flags.maxAttempts;
      if (flags.timeout !== undefined) options.timeout = flags.timeout;
      if (flags.timezone !== undefined) options.timezone = flags.timezone;
      if (flags.metadata !== undefined) options.metadata = flags.metadata;
      const def = await withStorage((storage) => storage.addOrUpdateRecurring(id, cron, name, args, options));
      if (flags.json) printJson(def);
      else printLine(`recurring ${def.id}: ${def.cron}${def.timezone ? ` (${def.timezone})` : ""} → ${def.name}`);
    });

  recurring
    .command("remove")
    .description("remove a recurring job (jobs it already enqueued stay)")
    .argument("<id>", "its id")
    .action(async (id: string) => {
      const removed = await withStorage((storage) => storage.deleteRecurring(id));
      if (!removed) throw new NotFoundError("recurring job", id);
      printLine(`removed ${id}`);
    });
}

function recurringTable(defs: readonly RecurringDefinition[]): string {
  return table(
    ["ID", "CRON", "TIMEZONE", "NAME", "QUEUE", "ARGUMENTS", "LAST FIRED"],
    defs.map((d) => [
      d.id,
      d.cron,
      d.timezone ?? "UTC",
      d.name,
      d.options.queue ?? "default",
      brief(d.args),
      d.lastSlot === undefined ? "-" : time(d.lastSlot),
    ]),
  );
}
