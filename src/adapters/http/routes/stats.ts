/**
 * GET /api/stats (counts and throughput over a window), GET /api/queues
 * (counts per queue, and whether it is paused), and POST
 * /api/queues/:name/pause|resume (admin: a paused queue accepts jobs and
 * claims none, on every server and invocation).
 */
import { Hono } from "hono";
import { queryObject, type AppDeps, type AppEnv } from "../context.js";
import { emptyCounts } from "../../../core/driver.js";
import { parseOr422, queueName, statsQuery } from "../schemas.js";

export function statsRoutes(deps: AppDeps): Hono<AppEnv> {
  const { storage } = deps;
  const r = new Hono<AppEnv>();

  r.get("/api/stats", async (c) => {
    const q = parseOr422(statsQuery, queryObject(c));
    const now = storage.clock.now();
    const stats = await storage.stats({
      now,
      ...(q.minutes !== undefined ? { minutes: q.minutes } : {}),
      ...(q.hours !== undefined ? { hours: q.hours } : {}),
    });
    return c.json({ now: new Date(now).toISOString(), ...stats });
  });

  r.get("/api/queues", async (c) => {
    const [stats, paused] = await Promise.all([storage.stats({ minutes: 1, hours: 1 }), storage.pausedQueues()]);
    const items = stats.queues.map((q) => ({
      name: q.name,
      counts: q.counts,
      total: Object.values(q.counts).reduce((a, b) => a + b, 0),
      paused: paused.includes(q.name),
    }));
    // A paused queue without jobs yet is listed too.
    for (const name of paused) if (!items.some((i) => i.name === name)) items.push({ name, counts: emptyCounts(), total: 0, paused: true });
    return c.json({ items: items.sort((a, b) => a.name.localeCompare(b.name)) });
  });

  for (const action of ["pause", "resume"] as const) {
    r.post(`/api/queues/:name/${action}`, async (c) => {
      const name = parseOr422(queueName, c.req.param("name"));
      if (action === "pause") await storage.pauseQueue(name);
      else await storage.resumeQueue(name);
      return c.json({ name, paused: action === "pause" });
    });
  }

  return r;
}
