/**
 * Typed jobs: one definition gives a typed enqueue and a typed handler; its
 * schema (zod here, or any Standard Schema) refuses a bad payload before
 * it is stored.
 *
 *   npx tsx examples/typed_jobs.ts
 */
import { z } from "zod";
import { Storage, ValidationError, WorkerRegistry, WorkerResult, defineJob, memoryBackend, tick } from "../src/index.js";

const sendEmail = defineJob(
  "send_email",
  z.object({
    to: z.email(),
    subject: z.string().min(1),
    priority: z.enum(["low", "high"]).default("low"),
  }),
);

const storage = new Storage(memoryBackend());
const registry = new WorkerRegistry().register(
  // `email` is { to: string; subject: string; priority: "low" | "high" }, parsed (the default applied).
  sendEmail.worker(async (email, ctx) => {
    ctx.logger.info(`to ${email.to}: ${email.subject} (${email.priority})`);
    return WorkerResult.success({ sent: true });
  }),
);

const id = await sendEmail.enqueue(storage, { to: "ada@example.com", subject: "Welcome" });
try {
  await sendEmail.enqueue(storage, { to: "not an address", subject: "" });
} catch (e) {
  if (!(e instanceof ValidationError)) throw e;
  console.log(`refused: ${e.message}`);
}

await tick({ storage, registry, deadline: Date.now() + 5000 });
const job = await storage.get(id);
console.log(`job ${job?.id} is ${job?.state}; ${(await storage.stats()).total} job(s) stored`);
