/**
 * Recurring jobs: list, read, create or replace (PUT), delete, and trigger
 * one firing now. A triggered job carries the metadata the scheduler's
 * firings carry (`recurringId`), plus `trigger: "manual"`.
 */
import { Hono } from "hono";
import { NotFoundError, UnknownJobNameError } from "../../../core/errors.js";
import { Job } from "../../../core/job.js";
import { nextSlot, RECURRING_ORIGIN } from "../../../core/scheduler.js";
import type { RecurringDefinition, Storage } from "../../../core/storage.js";
import { readJson, type AppDeps, type AppEnv } from "../context.js";
import { parseOr422, recurringBody, recurringId } from "../schemas.js";

export function recurringRoutes(deps: AppDeps): Hono<AppEnv> {
  const { storage, registry } = deps;
  const r = new Hono<AppEnv>();

  r.get("/api/recurring", async (c) => {
    const now = storage.clock.now();
    return c.json({ items: (await storage.listRecurring()).map((d) => recurringJson(d, now)) });
  });

  r.get("/api/recurring/:id", async (c) => {
    const id = parseOr422(recurringId, c.req.param("id"));
    const def = await findRecurring(storage, id);
    return c.json({ recurring: recurringJson(def, storage.clock.now()) });
  });

  r.put("/api/recurring/:id", async (c) => {
    const id = parseOr422(recurringId, c.req.param("id"));
    const b = parseOr422(recurringBody, await readJson(c));
    if (registry && !registry.has(b.name)) throw new UnknownJobNameError(b.name);
    const { cron, name, args, ...rest } = b;
    const def = await storage.addOrUpdateRecurring(id, cron, name, args ?? [], rest);
    // Read back: the store keeps what an update does not set (createdAt, the last slot fired).
    const stored = (await storage.listRecurring()).find((d) => d.id === id) ?? def;
    return c.json({ recurring: recurringJson(stored, storage.clock.now()) });
  });

  r.delete("/api/recurring/:id", async (c) => {
    const id = parseOr422(recurringId, c.req.param("id"));
    if (!(await storage.deleteRecurring(id))) throw new NotFoundError("recurring job", id);
    return c.json({ deleted: true, id });
  });

  r.post("/api/recurring/:id/trigger", async (c) => {
    const id = parseOr422(recurringId, c.req.param("id"));
    const def = await findRecurring(storage, id);
    const metadata = { ...(def.options.metadata ?? {}), [RECURRING_ORIGIN]: def.id, trigger: "manual" };
    const jobId = await storage.enqueue(new Job(def.name, def.args, { ...def.options, metadata }));
    return c.json({ id: jobId }, 201);
  });

  return r;
}

async function findRecurring(storage: Storage, id: string): Promise<RecurringDefinition> {
  const def = (await storage.listRecurring()).find((d) => d.id === id);
  if (!def) throw new NotFoundError("recurring job", id);
  return def;
}

function recurringJson(d: RecurringDefinition, now: number): Record<string, unknown> {
  let next: number | undefined;
  try {
    next = nextSlot(d, now);
  } catch {
    next = undefined;
  }
  return {
    id: d.id,
    cron: d.cron,
    timezone: d.timezone ?? "UTC",
    name: d.name,
    args: d.args,
    options: d.options,
    createdAt: new Date(d.createdAt).toISOString(),
    updatedAt: new Date(d.updatedAt).toISOString(),
    lastFiredAt: d.lastSlot !== undefined ? new Date(d.lastSlot).toISOString() : null,
    nextRunAt: next !== undefined ? new Date(next).toISOString() : null,
  };
}
