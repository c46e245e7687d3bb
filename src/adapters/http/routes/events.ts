/**
 * Events for durable steps: POST /api/events { name, data } delivers an
 * event to the jobs waiting for it (ctx.step.waitForEvent) and requeues
 * them; the answer names them. An admin action, as enqueueing is.
 */
import { Hono } from "hono";
import { readJson, type AppDeps, type AppEnv } from "../context.js";
import { eventBody, parseOr422 } from "../schemas.js";

export function eventRoutes(deps: AppDeps): Hono<AppEnv> {
  const { storage } = deps;
  const r = new Hono<AppEnv>();
  r.post("/api/events", async (c) => {
    const b = parseOr422(eventBody, await readJson(c));
    const { delivered } = await storage.sendEvent(b.name, b.data);
    return c.json({ name: b.name, delivered }, 202);
  });
  return r;
}
