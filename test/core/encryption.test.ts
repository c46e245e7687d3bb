/**
 * Encrypted arguments (src/core/encryption.ts): keys and their checks,
 * sealing at enqueue, opening for the handler only, rotation, and
 * tampering refused. The canary test on the real stores is
 * test/core/encryption-canary.test.ts.
 */
import { describe, expect, it } from "vitest";
import { z } from "zod";
import { storageFromEnv as workersStorageFromEnv } from "../../deploy/cloudflare/src/storage.js";
import { createApp } from "../../src/adapters/http/index.js";
import { loadEnvConfig } from "../../src/adapters/runtime/node/env.js";
import { storageFromEnv as nodeStorageFromEnv } from "../../src/adapters/runtime/node/storage-from-env.js";
import {
  ConfigError,
  DecryptionError,
  EncryptionKeyMissingError,
  Job,
  Keyring,
  Storage,
  ValidationError,
  WorkerRegistry,
  WorkerResult,
  defineJob,
  keyringFromEnv,
  memoryBackend,
  readEnv,
  silentLogger,
  tick,
  type JobEventMap,
} from "../../src/index.js";
import type { StorageDriver } from "../../src/core/driver.js";
import { openArguments, sealArguments } from "../../src/core/encryption.js";
import { ADMIN, call, problem } from "../http/helpers.js";
import { testServer, waitForEvents } from "./helpers.js";

const K1 = Keyring.generateKey();
const K2 = Keyring.generateKey();
const SECRET = "s3cret-value-do-not-store";

/** Runs every job on `storage` through a server; resolves with what each handler received, by job id. */
async function runJobs(
  storage: Storage,
  count: number,
): Promise<{ seen: Map<string, unknown[]>; ended: Array<JobEventMap["job:succeeded"] | JobEventMap["job:failed"]> }> {
  const seen = new Map<string, unknown[]>();
  const registry = new WorkerRegistry().register("charge", (job) => {
    seen.set(job.id, job.arguments);
    return WorkerResult.success({ ok: true });
  });
  const server = testServer(storage, registry);
  const ended: Array<JobEventMap["job:succeeded"] | JobEventMap["job:failed"]> = [];
  const done = new Promise<void>((resolve) => {
    const on = (p: JobEventMap["job:succeeded"] | JobEventMap["job:failed"]) => {
      ended.push(p);
      if (ended.length === count) resolve();
    };
    server.on("job:succeeded", on);
    server.on("job:failed", on);
  });
  await server.start();
  await done;
  await server.stop();
  return { seen, ended };
}

/** The stored record's arguments, as the store holds them. */
async function storedArgs(driver: StorageDriver, id: string): Promise<unknown[]> {
  const [r] = await driver.get([id]);
  return r!.args;
}

describe("keys", () => {
  it("parses QML_ENCRYPTION_KEYS: the first key seals, every key is known", () => {
    const ring = Keyring.parse(`k2:${K2}, k1:${K1}`);
    expect(ring.ids).toEqual(["k2", "k1"]);
    expect(ring.current).toBe("k2");
    expect(ring.has("k1")).toBe(true);
    // Printing a keyring never shows a key.
    expect(JSON.stringify(ring)).toBe('{"ids":["k2","k1"]}');
    expect(String(ring)).toBe("Keyring(k2, k1)");
    expect(keyringFromEnv({ QML_ENCRYPTION_KEYS: `k1:${K1}` })?.ids).toEqual(["k1"]);
    expect(keyringFromEnv({})).toBeUndefined();
    expect(readEnv({ QML_ENCRYPTION_KEYS: `k1:${K1}` }, "workers").encryptionKeys?.current).toBe("k1");
  });

  it.each([
    ["a short key", `k1:${btoa("0123456789abcdef")}`, /k1 is 16 bytes; AES-256 needs 32/],
    ["a long key", `k1:${btoa("x".repeat(33))}`, /k1 is 33 bytes/],
    ["bad base64", "k1:not*base64!", /k1 is not valid base64/],
    ["a duplicate id", `k1:${K1},k1:${K2}`, /k1.*appears twice/],
    ["no id", `${K1}`, /item 1 is not id:base64/],
    ["a bad id", `k 1:${K1}`, /key id "k 1" is invalid/],
    ["no key at all", " , ", /needs at least one key/],
  ])("refuses %s with a ConfigError naming the variable, not the key", (_, value, message) => {
    let error: unknown;
    try {
      readEnv({ QML_ENCRYPTION_KEYS: value });
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).code).toBe("CONFIG");
    expect((error as Error).message).toMatch(/^QML_ENCRYPTION_KEYS/);
    expect((error as Error).message).toMatch(message);
    for (const k of [K1, K2]) expect((error as Error).message).not.toContain(k);
  });

  it("takes raw bytes too, and refuses a Storage option that is not a Keyring", () => {
    expect(new Keyring([{ id: "raw", key: new Uint8Array(32) }]).ids).toEqual(["raw"]);
    expect(() => new Storage(memoryBackend(), { encryption: { ids: ["k1"] } as unknown as Keyring })).toThrow(ConfigError);
  });
});

describe("sealing at enqueue", () => {
  it("stores envelopes only: all arguments, or the named fields of object arguments", async () => {
    const storage = new Storage(memoryBackend(), { encryption: Keyring.parse(`k1:${K1}`) });
    const whole = await storage.enqueue(new Job("charge", [SECRET, 42], { encrypt: true }));
    const fields = await storage.enqueue(
      new Job("charge", [{ card: SECRET, amount: 5, pin: 1234 }, "plain", { other: 1 }], { encrypt: ["card", "pin", "absent"] }),
    );
    const w = await storedArgs(storage.driver, whole);
    expect(w).toHaveLength(1);
    expect(w[0]).toMatchObject({ "qml:enc": 1, kid: "k1" });
    const f = await storedArgs(storage.driver, fields);
    expect(f[0]).toMatchObject({ amount: 5, card: { "qml:enc": 1, kid: "k1" }, pin: { "qml:enc": 1, kid: "k1" } });
    expect(f.slice(1)).toEqual(["plain", { other: 1 }]);
    expect(JSON.stringify([w, f])).not.toContain(SECRET);
    expect(JSON.stringify(f)).not.toContain("1234");
    // What the API shows is the stored record.
    expect(JSON.stringify(await storage.get(fields))).not.toContain(SECRET);
    // Every seal has its own IV.
    const again = await storedArgs(storage.driver, await storage.enqueue(new Job("charge", [SECRET, 42], { encrypt: true })));
    expect((again[0] as { iv: string }).iv).not.toBe((w[0] as { iv: string }).iv);
    expect((again[0] as { ct: string }).ct).not.toBe((w[0] as { ct: string }).ct);
  });

  it("refuses, before anything is stored: no keyring, a bad field list, debounce, recurring", async () => {
    const plain = new Storage(memoryBackend());
    await expect(plain.enqueue(new Job("charge", [SECRET], { encrypt: true }))).rejects.toThrow(ConfigError);
    expect((await plain.list()).items).toHaveLength(0);
    const storage = new Storage(memoryBackend(), { encryption: Keyring.parse(`k1:${K1}`) });
    await expect(storage.enqueue(new Job("charge", [{ card: SECRET }], { encrypt: [] }))).rejects.toThrow(ValidationError);
    await expect(storage.enqueue(new Job("charge", [{ card: SECRET }], { encrypt: ["card", "card"] }))).rejects.toThrow(ValidationError);
    await expect(storage.enqueue(new Job("charge", [{ card: SECRET }], { encrypt: "card" as never }))).rejects.toThrow(ValidationError);
    await expect(storage.enqueue(new Job("charge", [SECRET], { encrypt: true, uniqueKey: "u", uniqueMode: "debounce" }))).rejects.toThrow(/debounce/);
    // A batch with one bad job stores none.
    await expect(storage.enqueue([new Job("charge", [SECRET], { encrypt: true }), new Job("charge", [SECRET], { encrypt: [] })])).rejects.toThrow(
      ValidationError,
    );
    expect((await storage.list()).items).toHaveLength(0);
    // A recurring definition keeps its arguments as given: its options take no `encrypt` (a cast gets a ValidationError).
    await expect(storage.addOrUpdateRecurring("r", "* * * * *", "charge", [SECRET], { encrypt: true } as never)).rejects.toThrow(/recurring/);
    // encrypt: false is no encryption.
    const id = await plain.enqueue(new Job("charge", ["visible"], { encrypt: false }));
    expect(await storedArgs(plain.driver, id)).toEqual(["visible"]);
  });
});

describe("opening for the handler", () => {
  it("round trip with rotation: the old key opens, the new one seals; without the old key its jobs fail with a typed error", async () => {
    const backend = memoryBackend();
    const before = new Storage(backend, { encryption: Keyring.parse(`k1:${K1}`) });
    const old = await before.enqueue(new Job("charge", [{ card: SECRET, amount: 5 }], { encrypt: ["card"] }));
    // Rotation: k2 added first (it seals), k1 kept (it opens).
    const rotated = new Storage(backend, { encryption: Keyring.parse(`k2:${K2},k1:${K1}`) });
    const fresh = await rotated.enqueue(new Job("charge", [SECRET, { n: [1, null, "x"] }], { encrypt: true }));
    expect(((await storedArgs(backend, fresh))[0] as { kid: string }).kid).toBe("k2");
    expect(((await storedArgs(backend, old))[0] as { card: { kid: string } }).card.kid).toBe("k1");

    const { seen } = await runJobs(rotated, 2);
    expect(seen.get(old)).toEqual([{ card: SECRET, amount: 5 }]);
    expect(seen.get(fresh)).toEqual([SECRET, { n: [1, null, "x"] }]);
    // The stored job keeps the ciphertext after the run.
    expect(JSON.stringify(await rotated.get(old))).not.toContain(SECRET);

    // k1 dropped too early: a job still sealed with it fails at once, without retries, and says why.
    const left = await before.enqueue(new Job("charge", [{ card: SECRET }], { encrypt: ["card"], maxAttempts: 5 }));
    const onlyNew = new Storage(backend, { encryption: Keyring.parse(`k2:${K2}`) });
    const run = await runJobs(onlyNew, 1);
    expect(run.seen.size).toBe(0);
    const failed = await onlyNew.get(left);
    expect(failed?.state).toBe("failed");
    expect(failed?.attempts).toBe(1);
    expect(failed?.error).toMatchObject({ name: "EncryptionKeyMissingError", code: "ENCRYPTION_KEY_MISSING" });
    expect(failed?.error?.message).toContain('"k1"');
    expect(JSON.stringify(failed)).not.toContain(SECRET);

    // A server with no keyring at all: the same typed error.
    const none = new Storage(backend);
    const id = await rotated.enqueue(new Job("charge", [SECRET], { encrypt: true }));
    await runJobs(none, 1);
    expect((await none.get(id))?.error?.code).toBe("ENCRYPTION_KEY_MISSING");
    // With the key back, a requeue runs it.
    await rotated.requeue(left);
    expect((await runJobs(rotated, 1)).seen.get(left)).toEqual([{ card: SECRET }]);
  });

  it("refuses tampering: a flipped byte, another job's ciphertext, a field moved", async () => {
    const ring = Keyring.parse(`k1:${K1}`);
    const sealed = await sealArguments("job-a", [{ card: SECRET, pin: "1234" }], ["card", "pin"], ring);
    expect(await openArguments("job-a", sealed, ring)).toEqual([{ card: SECRET, pin: "1234" }]);
    const env = (sealed[0] as Record<string, { ct: string; iv: string }>).card!;

    const flip = (b64: string) => {
      const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
      bytes[3] = bytes[3]! ^ 0x01;
      return btoa(String.fromCharCode(...bytes));
    };
    const tampered = [{ ...(sealed[0] as object), card: { ...env, ct: flip(env.ct) } }];
    await expect(openArguments("job-a", tampered, ring)).rejects.toThrow(DecryptionError);
    await expect(openArguments("job-a", [{ ...(sealed[0] as object), card: { ...env, iv: flip(env.iv) } }], ring)).rejects.toThrow(DecryptionError);
    // The same ciphertext under another job id.
    await expect(openArguments("job-b", sealed, ring)).rejects.toMatchObject({ code: "DECRYPTION_FAILED" });
    // The pin's ciphertext put in the card's place.
    const s = sealed[0] as Record<string, unknown>;
    await expect(openArguments("job-a", [{ card: s.pin, pin: s.card }], ring)).rejects.toThrow(DecryptionError);
    // A same-named key with other bytes.
    await expect(openArguments("job-a", sealed, Keyring.parse(`k1:${K2}`))).rejects.toThrow(DecryptionError);
    await expect(openArguments("job-a", sealed, Keyring.parse(`k9:${K2}`))).rejects.toThrow(EncryptionKeyMissingError);

    // Through a server: a sealed argument copied to another job fails that job at once, with the code.
    const storage = new Storage(memoryBackend(), { encryption: ring });
    const victim = await storage.enqueue(new Job("charge", [SECRET], { encrypt: true }));
    const stolen = await storedArgs(storage.driver, victim);
    await storage.delete(victim);
    const copy = await storage.enqueue(new Job("charge", stolen, { maxAttempts: 3 }));
    const { seen } = await runJobs(storage, 1);
    expect(seen.size).toBe(0);
    const failed = await storage.get(copy);
    expect(failed?.state).toBe("failed");
    expect(failed?.attempts).toBe(1);
    expect(failed?.error).toMatchObject({ name: "DecryptionError", code: "DECRYPTION_FAILED" });
  });

  it("a flow's jobs and a continuation are sealed like any enqueue and opened for their handlers", async () => {
    const storage = new Storage(memoryBackend(), { encryption: Keyring.parse(`k1:${K1}`) });
    const tree = await storage.enqueueFlow({
      job: new Job("charge", [SECRET], { encrypt: true }),
      children: [{ job: new Job("charge", [{ card: SECRET }], { encrypt: ["card"] }) }],
    });
    const after = await storage.continueWith(tree.id, new Job("charge", [{ card: SECRET }], { encrypt: ["card"] }));
    for (const id of [tree.id, tree.children[0]!.id, after]) expect(JSON.stringify(await storedArgs(storage.driver, id))).not.toContain(SECRET);
    const { seen } = await runJobs(storage, 3);
    expect(seen.get(tree.id)).toEqual([SECRET]);
    expect(seen.get(tree.children[0]!.id)).toEqual([{ card: SECRET }]);
    expect(seen.get(after)).toEqual([{ card: SECRET }]);
  });

  it("a handler's events and the stored outcome carry the ciphertext, not the plaintext", async () => {
    const storage = new Storage(memoryBackend(), { encryption: Keyring.parse(`k1:${K1}`) });
    const registry = new WorkerRegistry().register("charge", (job) => {
      expect(job.arguments).toEqual([SECRET]);
    });
    const server = testServer(storage, registry);
    const events: unknown[] = [];
    for (const e of ["job:start", "job:succeeded"] as const) server.on(e, (p) => events.push(p));
    const done = waitForEvents(server, "job:succeeded");
    await storage.enqueue(new Job("charge", [SECRET], { encrypt: true }));
    await server.start();
    await done;
    await server.stop();
    expect(events).toHaveLength(2);
    expect(JSON.stringify(events)).not.toContain(SECRET);
  });
});

describe("wiring", () => {
  it("a typed job's payload is checked in the clear at enqueue, stored sealed, and parsed by its handler after opening", async () => {
    const charge = defineJob(`charge_${crypto.randomUUID().slice(0, 8)}`, z.object({ card: z.string().length(16), amount: z.number().default(1) }));
    const storage = new Storage(memoryBackend(), { encryption: Keyring.parse(`k1:${K1}`) });
    await expect(charge.enqueue(storage, { card: "short" }, { encrypt: ["card"] })).rejects.toThrow(ValidationError);
    const id = await charge.enqueue(storage, { card: "4242424242424242" }, { encrypt: ["card"] });
    expect(JSON.stringify(await storedArgs(storage.driver, id))).not.toContain("4242424242424242");
    const seen: unknown[] = [];
    const registry = new WorkerRegistry().register(charge.worker((p) => void seen.push(p)));
    await tick({ storage, registry, deadline: Date.now() + 5_000 });
    expect(seen).toEqual([{ card: "4242424242424242", amount: 1 }]);
  });

  it("npm start and the Workers deployment hand QML_ENCRYPTION_KEYS to their storage; a bad key stops the start", async () => {
    const env = { QML_STORAGE: "memory", QML_ENCRYPTION_KEYS: `k2:${K2},k1:${K1}` };
    const node = await nodeStorageFromEnv(loadEnvConfig(env));
    expect(node.encryption?.ids).toEqual(["k2", "k1"]);
    await node.close();
    expect(() => loadEnvConfig({ QML_STORAGE: "memory", QML_ENCRYPTION_KEYS: "k1:c2hvcnQ=" })).toThrow(ConfigError);
    const worker = workersStorageFromEnv({ QML_STORAGE: "postgres", DATABASE_URL: "postgres://u@127.0.0.1:5432/db", QML_ENCRYPTION_KEYS: `k1:${K1}` } as never);
    expect(worker.encryption?.current).toBe("k1");
    expect(workersStorageFromEnv({ QML_STORAGE: "postgres", DATABASE_URL: "postgres://u@127.0.0.1:5432/db" } as never).encryption).toBeUndefined();
  });

  it("POST /api/jobs and /api/flows take encrypt: the API answers with the sealed job; a server without keys answers 422", async () => {
    const registry = new WorkerRegistry().register("charge", () => {});
    const storage = new Storage(memoryBackend(), { encryption: Keyring.parse(`k1:${K1}`) });
    const app = createApp({ storage, registry, auth: { adminTokens: [ADMIN] }, logger: silentLogger });
    const res = await call(app, "POST", "/api/jobs", { body: { name: "charge", args: [{ card: SECRET, amount: 5 }], encrypt: ["card"] } });
    expect(res.status).toBe(201);
    const text = await res.text();
    expect(text).not.toContain(SECRET);
    const { id, job } = JSON.parse(text) as { id: string; job: { arguments: unknown[] } };
    expect(job.arguments[0]).toMatchObject({ amount: 5, card: { "qml:enc": 1, kid: "k1" } });
    expect(JSON.stringify(await storedArgs(storage.driver, id))).not.toContain(SECRET);
    const bad = await call(app, "POST", "/api/jobs", { body: { name: "charge", args: [{ card: SECRET }], encrypt: [] } });
    expect(bad.status).toBe(422);

    const keyless = createApp({ storage: new Storage(memoryBackend()), registry, auth: { adminTokens: [ADMIN] }, logger: silentLogger });
    const refused = await call(keyless, "POST", "/api/jobs", { body: { name: "charge", args: [SECRET], encrypt: true } });
    expect(refused.status).toBe(422);
    expect((await problem(refused)).detail).toContain("QML_ENCRYPTION_KEYS");

    // POST /api/flows: each node may ask for it.
    const flow = await call(app, "POST", "/api/flows", {
      body: { name: "charge", args: [SECRET], encrypt: true, children: [{ name: "charge", args: [{ card: SECRET }], encrypt: ["card"] }] },
    });
    expect(flow.status).toBe(201);
    const { flow: ids } = (await flow.json()) as { flow: { id: string; children: Array<{ id: string }> } };
    for (const fid of [ids.id, ids.children[0]!.id]) expect(JSON.stringify(await storedArgs(storage.driver, fid))).not.toContain(SECRET);
    expect((await call(keyless, "POST", "/api/flows", { body: { name: "charge", args: [SECRET], encrypt: true } })).status).toBe(422);
  });
});
