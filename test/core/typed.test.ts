/** Typed jobs: a typed enqueue and handler from one definition; a schema refuses bad payloads on every enqueue path, storing nothing. */
import { describe, expect, expectTypeOf, it } from "vitest";
import { z } from "zod";
import {
  ConfigError,
  Job,
  Storage,
  ValidationError,
  WorkerRegistry,
  WorkerResult,
  createClient,
  defineJob,
  memoryBackend,
  silentLogger,
  tick,
} from "../../src/index.js";
import { createApp } from "../../src/adapters/http/index.js";

const unique = (name: string) => `${name}_${crypto.randomUUID().slice(0, 8)}`;

describe("typed jobs", () => {
  it("enqueues a typed payload and hands the handler the parsed one (schema defaults applied)", async () => {
    const sendEmail = defineJob(unique("send_email"), z.object({ to: z.email(), subject: z.string().default("(no subject)") }));
    const storage = new Storage(memoryBackend());
    const seen: Array<{ to: string; subject: string }> = [];
    const registry = new WorkerRegistry().register(
      sendEmail.worker((email) => {
        expectTypeOf(email).toEqualTypeOf<{ to: string; subject: string }>();
        seen.push(email);
        return WorkerResult.success();
      }),
    );
    const id = await sendEmail.enqueue(storage, { to: "ada@example.com" }, { queue: "default" });
    expect((await storage.get(id))!.arguments).toEqual([{ to: "ada@example.com" }]);
    await tick({ storage, registry, deadline: Date.now() + 5000 });
    expect(seen).toEqual([{ to: "ada@example.com", subject: "(no subject)" }]);
  });

  it("refuses a bad payload with a ValidationError on every enqueue path, storing nothing", async () => {
    const charge = defineJob(unique("charge"), z.object({ cents: z.number().int().positive() }));
    const storage = new Storage(memoryBackend());
    await expect(charge.enqueue(storage, { cents: -5 })).rejects.toMatchObject({ name: "ValidationError", field: "arguments" });
    await expect(storage.enqueue(new Job(charge.name, [{ cents: "five" }]))).rejects.toBeInstanceOf(ValidationError);
    await expect(storage.enqueue(new Job(charge.name, [{ cents: 5 }, "extra"]))).rejects.toThrow(/takes one argument/);
    await expect(createClient({ storage }).enqueue(charge.name, [{}])).rejects.toBeInstanceOf(ValidationError);
    // A batch with one bad payload writes none of it.
    await expect(storage.enqueue([charge.job({ cents: 1 }), charge.job({ cents: 0 })])).rejects.toBeInstanceOf(ValidationError);
    expect((await storage.stats()).total).toBe(0);
    expect(await charge.enqueue(storage, { cents: 5 })).toBeTypeOf("string");
    expect((await storage.stats()).total).toBe(1);
  });

  it("answers 422 to POST /api/jobs with a payload that does not match, and stores nothing", async () => {
    const resize = defineJob(unique("resize"), z.object({ width: z.number().int().min(1) }));
    const storage = new Storage(memoryBackend());
    const registry = new WorkerRegistry().register(resize.worker(() => WorkerResult.success()));
    const app = createApp({ storage, registry, auth: { adminTokens: ["admin-token-0123456789"] }, logger: silentLogger });
    const post = (args: unknown[]) =>
      app.request("http://127.0.0.1/api/jobs", {
        method: "POST",
        headers: { Authorization: "Bearer admin-token-0123456789", "Content-Type": "application/json", Host: "127.0.0.1" },
        body: JSON.stringify({ name: resize.name, args }),
      });
    const bad = await post([{ width: 0 }]);
    expect(bad.status).toBe(422);
    expect(await bad.json()).toMatchObject({ code: "VALIDATION" });
    expect((await storage.stats()).total).toBe(0);
    expect((await post([{ width: 64 }])).status).toBe(201);
  });

  it("without a schema the payload type is declared, and nothing is checked at run time", async () => {
    const ping = defineJob<{ n: number }>(unique("ping"));
    const storage = new Storage(memoryBackend());
    const job = ping.job({ n: 1 });
    expect(job.arguments).toEqual([{ n: 1 }]);
    expectTypeOf(ping.job).parameter(0).toEqualTypeOf<{ n: number }>();
    expect(await ping.enqueue(storage, { n: 2 })).toBeTypeOf("string");
  });

  it("a name has one contract: defining it again with another schema is a ConfigError", () => {
    const name = unique("once");
    const schema = z.object({ a: z.string() });
    defineJob(name, schema);
    expect(() => defineJob(name, schema)).not.toThrow();
    expect(() => defineJob(name, z.object({ b: z.string() }))).toThrow(ConfigError);
    expect(() => defineJob(name, {} as never)).toThrow(ConfigError);
  });
});

describe("examples/typed_jobs.ts", () => {
  it("runs: the good payload succeeds, the bad one is refused and never stored", async () => {
    const { execFile } = await import("node:child_process");
    const { promisify } = await import("node:util");
    const { stdout } = await promisify(execFile)(process.execPath, ["--import", "tsx", "examples/typed_jobs.ts"], {
      timeout: 60_000,
      env: { ...process.env, QML_LOG_LEVEL: "warn" },
    });
    expect(stdout).toMatch(/refused: arguments of "send_email" do not match its schema: to: /);
    expect(stdout).toMatch(/job [0-9a-f-]{36} is succeeded; 1 job\(s\) stored/);
  }, 60_000);
});
