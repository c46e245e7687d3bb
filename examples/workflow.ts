/**
 * Durable steps: an order workflow whose steps each run once, across a
 * failed try, a sleep and a wait for an approval event, on any server or
 * invocation that picks the job up next.
 *
 *   npx tsx examples/workflow.ts
 */
import { BackgroundJobServer, Job, RetryPolicy, ServerConfig, Storage, WorkerRegistry, WorkerResult, memoryBackend, silentLogger } from "../src/index.js";

const storage = new Storage(memoryBackend());
const ran: string[] = [];
let gatewayDown = true;

const registry = new WorkerRegistry().register("fulfil_order", async (job, ctx) => {
  const order = job.arguments[0] as { id: number; email: string };
  // Code between steps runs again on every run of the job: keep it deterministic.
  const reservation = await ctx.step.run("reserve-stock", () => {
    ran.push("reserve-stock");
    return { warehouse: "FRA-1", sku: "mug" };
  });
  // This step's own retries: a failed try suspends the job for a second, without using a job attempt.
  const charge = await ctx.step.run(
    "charge-card",
    () => {
      ran.push("charge-card");
      if (gatewayDown) {
        gatewayDown = false;
        throw new Error("payment gateway timed out");
      }
      return { chargeId: `ch_${order.id}` };
    },
    { maxAttempts: 3, retry: RetryPolicy.fixed(1000) },
  );
  // The job holds no worker while it sleeps or waits: it is stored as scheduled until then.
  await ctx.step.sleep("cooling-off", 1000);
  const approval = await ctx.step.waitForEvent<{ orderId: number; by: string }>("manager-approval", {
    event: "order.approved",
    match: { orderId: order.id },
    timeout: 24 * 3_600_000,
  });
  if (!approval) return WorkerResult.failure(new Error("not approved within a day"));
  const shipment = await ctx.step.run("ship", () => {
    ran.push("ship");
    return { tracking: `TRK-${order.id}`, approvedBy: approval.data.by };
  });
  return WorkerResult.success({ reservation, charge, shipment });
});

const server = new BackgroundJobServer(storage, registry, new ServerConfig("workflow-example").workerCount(2).pollingInterval(50).logger(silentLogger));
server.on("job:suspended", ({ reason }) => console.log(`suspended: ${reason.replace(/ until .*/, "")}`));
await server.start();

const id = await storage.enqueue(new Job("fulfil_order", [{ id: 1042, email: "ada@example.com" }]));

// Wait until the job waits for its approval, then send the event (as POST /api/events would).
for (;;) {
  const job = (await storage.get(id))!;
  if (job.steps.some((s) => s.id === "manager-approval" && s.status === "waiting")) break;
  await new Promise((r) => setTimeout(r, 50));
}
const { delivered } = await storage.sendEvent("order.approved", { orderId: 1042, by: "grace" });
console.log(`event delivered to ${delivered.length} job(s)`);

const done = await new Promise<Job>((resolve) => {
  const poll = setInterval(async () => {
    const job = (await storage.get(id))!;
    if (job.state === "succeeded" || job.state === "failed") {
      clearInterval(poll);
      resolve(job);
    }
  }, 50);
});
await server.stop();

console.log(`order ${done.state}: ${JSON.stringify(done.result)}`);
console.log(`step functions ran: ${ran.join(", ")}`);
console.log(`steps: ${done.steps.map((s) => `${s.id} ${s.status}`).join(", ")}`);
await storage.close();
