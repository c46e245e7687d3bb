/**
 * What commands print. Results go to stdout: with `--json` one JSON
 * document (for scripts and jq), otherwise text for people (tables).
 * Messages and progress go to stderr, so that stdout stays the result.
 */
import type { Job } from "../index.js";

export function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}

export function printLine(text = ""): void {
  process.stdout.write(`${text}\n`);
}

/** A note for the person at the terminal (stderr). */
export function note(text: string): void {
  process.stderr.write(`${text}\n`);
}

/** Columns padded to their widest cell; the last column is not padded. */
export function table(headers: readonly string[], rows: ReadonlyArray<readonly string[]>): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: readonly string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!)))
      .join("  ")
      .trimEnd();
  return [line(headers), ...rows.map(line)].join("\n");
}

export function time(d: Date | number | undefined): string {
  if (d === undefined) return "-";
  const date = typeof d === "number" ? new Date(d) : d;
  return Number.isNaN(date.getTime()) ? "-" : date.toISOString();
}

/** JSON, cut to `max` characters for a table cell. */
export function brief(value: unknown, max = 60): string {
  const s = value === undefined ? "-" : JSON.stringify(value);
  return s.length > max ? `${s.slice(0, max - 1)}…` : s;
}

/** A job for lists: everything but the history, which only `get` shows. */
export function jobSummary(job: Job): Record<string, unknown> {
  const { history: _history, ...rest } = job.toJSON();
  return rest;
}

export function jobsTable(jobs: readonly Job[]): string {
  return table(
    ["ID", "STATE", "QUEUE", "NAME", "ATTEMPTS", "RUN AT", "CREATED"],
    jobs.map((j) => [j.id, j.state, j.queue, j.name, `${j.attempts}/${j.maxAttempts}`, time(j.runAt), time(j.createdAt)]),
  );
}

export function jobDetail(job: Job): string {
  const fields: Array<[string, string]> = [
    ["id", job.id],
    ["name", job.name],
    ["state", job.state],
    ["queue", job.queue],
    ["priority", String(job.priority)],
    ["attempts", `${job.attempts}/${job.maxAttempts}`],
    ["arguments", JSON.stringify(job.arguments)],
    ["run at", time(job.runAt)],
    ["created", time(job.createdAt)],
    ["updated", time(job.updatedAt)],
  ];
  if (job.finishedAt) fields.push(["finished", time(job.finishedAt)]);
  if (job.uniqueKey !== undefined) fields.push(["unique key", job.uniqueKey]);
  if (job.timeout !== undefined) fields.push(["timeout", `${job.timeout} ms`]);
  if (Object.keys(job.metadata).length > 0) fields.push(["metadata", JSON.stringify(job.metadata)]);
  if (job.leaseOwner) fields.push(["lease", `${job.leaseOwner} until ${time(job.leaseUntil)}`]);
  if (job.progress !== undefined) fields.push(["progress", JSON.stringify(job.progress)]);
  if (job.result !== undefined) fields.push(["result", JSON.stringify(job.result)]);
  if (job.error) fields.push(["error", `${job.error.name}: ${job.error.message}`]);
  const width = Math.max(...fields.map(([k]) => k.length));
  const head = fields.map(([k, v]) => `${k.padEnd(width)}  ${v}`).join("\n");
  const history = table(
    ["AT", "STATE", "REASON", "WORKER"],
    job.history.map((h) => [time(h.at), h.state, h.reason ?? "", h.worker ?? ""]),
  );
  const stack = job.error?.stack ? `\n\n${job.error.stack}` : "";
  return `${head}\n\nhistory:\n${history}${stack}`;
}
