/** Flows and continuations over the REST API: POST /api/flows, POST /api/jobs with `after`, GET /api/jobs/:id/flow, cancel. */
import { describe, expect, it } from "vitest";
import { Job, JobState } from "../../src/index.js";
import { READER, call, harness, problem } from "./helpers.js";

interface Tree {
  id: string;
  children: Tree[];
}

describe("POST /api/flows", () => {
  it("stores a tree in one call and answers its ids; the parent waits, the leaves are enqueued", async () => {
    const { app, storage } = harness();
    const res = await call(app, "POST", "/api/flows", {
      body: {
        name: "build_report",
        args: ["q3"],
        onChildFailure: "ignore",
        children: [
          { name: "send_email", args: [1] },
          { name: "build_report", children: [{ name: "send_email", args: [2] }] },
        ],
      },
    });
    expect(res.status).toBe(201);
    const { flow } = (await res.json()) as { flow: Tree };
    expect(flow.children.length).toBe(2);
    expect(flow.children[1]!.children.length).toBe(1);
    const root = (await storage.get(flow.id))!;
    expect(root.state).toBe(JobState.Awaiting);
    expect(root.flow).toEqual({ dependsOn: flow.children.map((c) => c.id), on: "success", otherwise: "ignore" });
    expect((await storage.get(flow.children[0]!.id))!.state).toBe(JobState.Enqueued);
    expect((await storage.get(flow.children[1]!.id))!.state).toBe(JobState.Awaiting);
  });

  it("refuses bad trees with 422 (or 400 for an unknown job name) and stores nothing", async () => {
    const { app, storage } = harness();
    const deep: Record<string, unknown> = { name: "send_email" };
    let node = deep;
    for (let i = 0; i < 40; i++) {
      const child: Record<string, unknown> = { name: "send_email" };
      node.children = [child];
      node = child;
    }
    for (const bad of [
      { name: "send_email", children: "no" },
      { name: "send_email", onChildFailure: "explode", children: [{ name: "send_email" }] },
      { name: "send_email", onChildFailure: "fail" },
      { name: "send_email", children: [{ name: "send_email", uniqueKey: "k" }] },
      { name: "send_email", children: [{ name: "" }] },
      deep,
    ]) {
      const r = await call(app, "POST", "/api/flows", { body: bad });
      expect(r.status, JSON.stringify(bad).slice(0, 80)).toBe(422);
    }
    const unknown = await call(app, "POST", "/api/flows", { body: { name: "send_email", children: [{ name: "nope" }] } });
    expect(unknown.status).toBeGreaterThanOrEqual(400);
    expect((await problem(unknown)).code).toBe("UNKNOWN_JOB_NAME");
    expect((await storage.stats()).total).toBe(0);
  });

  it("needs an admin token", async () => {
    const { app } = harness();
    const r = await call(app, "POST", "/api/flows", { token: READER, body: { name: "send_email" } });
    expect(r.status).toBe(403);
  });
});

describe("continuations and the flow of a job", () => {
  it("POST /api/jobs with after: the job waits for its parent; 404 for an unknown parent", async () => {
    const { app, storage } = harness();
    const parent = await storage.enqueue(new Job("send_email"));
    const res = await call(app, "POST", "/api/jobs", { body: { name: "build_report", after: { id: parent, on: "any" } } });
    expect(res.status).toBe(201);
    const { id, job } = (await res.json()) as { id: string; job: Record<string, unknown> };
    expect(job).toMatchObject({ state: "awaiting", flow: { dependsOn: [parent], on: "any", otherwise: "delete" } });
    expect(await storage.driver.dependents([parent])).toEqual([id]);
    const missing = await call(app, "POST", "/api/jobs", { body: { name: "build_report", after: { id: "no-such-job" } } });
    expect(missing.status).toBe(404);
    const bad = await call(app, "POST", "/api/jobs", { body: { name: "build_report", after: { id: parent, on: "sometimes" } } });
    expect(bad.status).toBe(422);
    expect((await storage.stats()).total).toBe(2);
  });

  it("GET /api/jobs/:id/flow: the tree with each job's state, and who waits for a job", async () => {
    const { app } = harness();
    const res = await call(app, "POST", "/api/flows", {
      body: { name: "build_report", children: [{ name: "send_email" }, { name: "build_report", children: [{ name: "send_email" }] }] },
    });
    const { flow } = (await res.json()) as { flow: Tree };
    const got = (await (await call(app, "GET", `/api/jobs/${flow.id}/flow`)).json()) as {
      tree: { id: string; state: string; children: Array<{ id: string; state: string; children: Array<{ id: string; state: string }> }> };
      neededBy: string[];
    };
    expect(got.tree.id).toBe(flow.id);
    expect(got.tree.children.map((c) => [c.id, c.state])).toEqual([
      [flow.children[0]!.id, "enqueued"],
      [flow.children[1]!.id, "awaiting"],
    ]);
    expect(got.tree.children[1]!.children.map((c) => [c.id, c.state])).toEqual([[flow.children[1]!.children[0]!.id, "enqueued"]]);
    expect(got.neededBy).toEqual([]);
    const leaf = (await (await call(app, "GET", `/api/jobs/${flow.children[0]!.id}/flow`)).json()) as { neededBy: string[] };
    expect(leaf.neededBy).toEqual([flow.id]);
    expect((await call(app, "GET", "/api/jobs/nope/flow")).status).toBe(404);
  });

  it("POST /api/jobs/:id/cancel on an awaiting parent: deleted, with who cancelled it", async () => {
    const { app, storage } = harness();
    const { flow } = (await (await call(app, "POST", "/api/flows", { body: { name: "build_report", children: [{ name: "send_email" }] } })).json()) as {
      flow: Tree;
    };
    const res = await call(app, "POST", `/api/jobs/${flow.id}/cancel`);
    expect(res.status).toBe(200);
    const job = (await storage.get(flow.id))!;
    expect(job.state).toBe(JobState.Deleted);
    expect(job.history.at(-1)!.reason).toBe("cancelled by api (admin)");
    expect(await storage.driver.dependents([flow.children[0]!.id])).toEqual([]);
  });
});
