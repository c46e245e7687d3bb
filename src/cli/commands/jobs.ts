/**
 * Jobs one at a time: `enqueue`, `list`, `get`; and `send-event`, an event
 * for the jobs whose durable steps wait for it.
 */
import { Command, Option } from "commander";
import { Job, NotFoundError, type JobOptions, type ListFilter, type SortField } from "../../index.js";
import { date, jsonArray, jsonObject, jsonValue, list, number } from "../parse.js";
import { jobDetail, jobSummary, jobsTable, note, printJson, printLine } from "../output.js";
import { withStorage } from "../store.js";

interface EnqueueFlags {
  queue?: string;
  priority?: number;
  delay?: number;
  runAt?: Date;
  uniqueKey?: string;
  maxAttempts?: number;
  timeout?: number;
  metadata?: Record<string, unknown>;
  json?: boolean;
}

interface ListFlags {
  state?: string[];
  queue?: string;
  name?: string;
  search?: string;
  limit?: number;
  cursor?: string;
  sort?: SortField;
  order?: "asc" | "desc";
  json?: boolean;
}

export function jobCommands(program: Command): void {
  program
    .command("enqueue")
    .description("enqueue a job and print its id")
    .argument("<name>", "the job's name: the worker that runs it")
    .argument("[args-json]", "its arguments, a JSON array", jsonArray, [])
    .option("-q, --queue <queue>", 'queue name (default "default")')
    .option("-p, --priority <n>", "higher runs first within a queue (default 0)", number)
    .addOption(new Option("--delay <ms>", "do not run before this many milliseconds from now").argParser(number).conflicts("runAt"))
    .option("--run-at <date>", "do not run before this time (ISO 8601)", date)
    .option("--unique-key <key>", "at most one job with this key exists: a second enqueue prints the first job's id")
    .option("--max-attempts <n>", "attempts before the job ends failed (default 3)", number)
    .option("--timeout <ms>", "abort a run after this many milliseconds", number)
    .option("--metadata <json>", "a JSON object kept with the job", jsonObject)
    .option("--json", 'print {"id": …} as JSON')
    .action(async (name: string, args: unknown[], flags: EnqueueFlags) => {
      const options: JobOptions = {};
      if (flags.queue !== undefined) options.queue = flags.queue;
      if (flags.priority !== undefined) options.priority = flags.priority;
      if (flags.delay !== undefined) options.delay = flags.delay;
      if (flags.runAt !== undefined) options.runAt = flags.runAt;
      if (flags.uniqueKey !== undefined) options.uniqueKey = flags.uniqueKey;
      if (flags.maxAttempts !== undefined) options.maxAttempts = flags.maxAttempts;
      if (flags.timeout !== undefined) options.timeout = flags.timeout;
      if (flags.metadata !== undefined) options.metadata = flags.metadata;
      const job = new Job(name, args, options);
      const id = await withStorage((storage) => storage.enqueue(job));
      if (flags.json) printJson({ id });
      else printLine(id);
    });

  program
    .command("send-event")
    .description("send an event to the jobs waiting for it (ctx.step.waitForEvent); prints the ids it was delivered to")
    .argument("<name>", "the event's name")
    .argument("[data-json]", "its data, any JSON value (default null)", jsonValue)
    .option("--json", 'print {"name": …, "delivered": [ids]} as JSON')
    .action(async (name: string, data: unknown, flags: { json?: boolean }) => {
      const { delivered } = await withStorage((storage) => storage.sendEvent(name, data));
      if (flags.json) printJson({ name, delivered });
      else {
        note(`delivered to ${delivered.length} job${delivered.length === 1 ? "" : "s"}`);
        for (const id of delivered) printLine(id);
      }
    });

  program
    .command("list")
    .description("list jobs, newest first")
    .option("-s, --state <states>", "only these states (comma-separated or repeated)", list)
    .option("-q, --queue <queue>", "only this queue")
    .option("-n, --name <name>", "only jobs of this name")
    .option("--search <text>", "a substring of the id, name or arguments")
    .option("-l, --limit <n>", "jobs per page, 1-500", number, 50)
    .option("--cursor <cursor>", "the next page: the cursor the previous page printed")
    .addOption(new Option("--sort <field>", "sort by").choices(["createdAt", "updatedAt", "runAt"]))
    .addOption(new Option("--order <order>", "sort order").choices(["asc", "desc"]))
    .option("--json", "print { items, nextCursor } as JSON")
    .action(async (flags: ListFlags) => {
      const filter: ListFilter = {};
      if (flags.state !== undefined) filter.state = flags.state as ListFilter["state"];
      if (flags.queue !== undefined) filter.queue = flags.queue;
      if (flags.name !== undefined) filter.name = flags.name;
      if (flags.search !== undefined) filter.text = flags.search;
      const page = await withStorage((storage) =>
        storage.list(filter, {
          ...(flags.limit !== undefined ? { limit: flags.limit } : {}),
          ...(flags.cursor !== undefined ? { cursor: flags.cursor } : {}),
          ...(flags.sort !== undefined ? { sort: flags.sort } : {}),
          ...(flags.order !== undefined ? { order: flags.order } : {}),
        }),
      );
      if (flags.json) {
        printJson({ items: page.items.map(jobSummary), ...(page.nextCursor ? { nextCursor: page.nextCursor } : {}) });
        return;
      }
      if (page.items.length === 0) printLine("no jobs");
      else printLine(jobsTable(page.items));
      if (page.nextCursor) note(`more: --cursor ${page.nextCursor}`);
    });

  program
    .command("get")
    .description("show one job: arguments, result, error and history")
    .argument("<id>", "the job's id")
    .option("--json", "print the job as JSON")
    .action(async (id: string, flags: { json?: boolean }) => {
      const job = await withStorage((storage) => storage.get(id));
      if (!job) throw new NotFoundError("job", id);
      if (flags.json) printJson(job.toJSON());
      else printLine(jobDetail(job));
    });
}
