/**
 * Enqueue from any edge function: a Worker of your own (an API, a Pages
 * Function) that only produces jobs. It writes them to the same store as
 * the qml Worker of deploy/cloudflare and wakes that Worker's Queue
 * consumer, so a job starts within a second or two, not at the next cron
 * tick. No Node API anywhere.
 *
 * Its wrangler.jsonc needs the same store settings and a producer binding
 * on the wake-up queue:
 *
 *   "queues": { "producers": [{ "binding": "QML_QUEUE", "queue": "qml-wakeups" }] },
 *   "vars": { "QML_STORAGE": "redis", "UPSTASH_REDIS_REST_URL": "https://….upstash.io" }
 *   npx wrangler secret put UPSTASH_REDIS_REST_TOKEN
 *
 * Then:  curl -X POST https://signup.example.workers.dev/ -d '{"email":"ada@example.com"}'
 * (test/workers/example-client.worker.test.ts runs this module in workerd.)
 */
import { createClient, createQueueNotifier, type CfQueue, type Client, type WakeUpMessage } from "../src/adapters/runtime/cloudflare/index.js";
import { storageFromEnv, type StorageEnv } from "../deploy/cloudflare/src/storage.js";

export interface Env extends StorageEnv {
  QML_QUEUE: CfQueue<WakeUpMessage>;
}

// One client per isolate and env: the store is HTTP, nothing to reconnect.
const clients = new WeakMap<Env, Promise<Client>>();
function clientFor(env: Env): Promise<Client> {
  let c = clients.get(env);
  if (!c) {
    const storage = storageFromEnv(env);
    // Wake-ups go through the storage's outbox: one message per enqueue, sent before `enqueue` returns.
    c = storage.migrate().then(() => createClient({ storage, notifier: createQueueNotifier(env.QML_QUEUE) }));
    clients.set(env, c);
    c.catch(() => clients.delete(env));
  }
  return c;
}

export default {
  async fetch(request: Request, env: Env): Promise<Response> {
    if (request.method !== "POST") return new Response("POST a JSON body { email }", { status: 405 });
    const { email } = (await request.json()) as { email?: unknown };
    if (typeof email !== "string" || !email.includes("@")) return Response.json({ error: "email is required" }, { status: 400 });

    const client = await clientFor(env);
    // Now, and a reminder in a day: the store keeps both, the Queue wakes the qml Worker for each when due.
    const welcome = await client.enqueue("send_email", [email], { maxAttempts: 5 });
    const reminder = await client.schedule("send_email", [email], 24 * 3600_000, { uniqueKey: `reminder:${email}` });
    return Response.json({ welcome, reminder }, { status: 202 });
  },
};
