/**
 * The neon-http driver inside workerd (miniflare): the bundle of a Worker
 * that uses qml/postgres runs migrate, enqueue, claim and complete against
 * the real Postgres through the local gateway's /sql endpoint.
 */
import { fileURLToPath } from "node:url";
import { build } from "esbuild";
import { Miniflare } from "miniflare";
import { afterAll, beforeAll, expect, it } from "vitest";
import { startNeonGateway, type NeonGateway } from "../../infra/neon-gateway.js";
import { describeWithService, serviceUp } from "../helpers/services.js";
import { DATABASE_URL, SchemaJanitor } from "./helpers.js";

const janitor = new SchemaJanitor();
const ENTRY = fileURLToPath(new URL("./fixtures/neon-worker.ts", import.meta.url));

describeWithService("postgres", await serviceUp("postgres"), "postgres over neon-http inside workerd", () => {
  let gw: NeonGateway;
  let mf: Miniflare | undefined;
  beforeAll(async () => {
    gw = await startNeonGateway({ databaseUrl: DATABASE_URL });
  });
  afterAll(async () => {
    await mf?.dispose();
    await gw?.close();
    await janitor.dropAll();
  });

  it("migrates, enqueues, claims and completes from a Worker", async () => {
    const bundle = await build({
      entryPoints: [ENTRY],
      bundle: true,
      write: false,
      format: "esm",
      platform: "browser",
      conditions: ["workerd", "worker", "browser"],
      logLevel: "silent",
    });
    mf = new Miniflare({
      modules: true,
      script: bundle.outputFiles[0]!.text,
      compatibilityDate: "2026-04-01",
      cf: false,
      bindings: { DATABASE_URL, FETCH_ENDPOINT: gw.fetchEndpoint, SCHEMA: janitor.next() },
    });
    const res = await mf.dispatchFetch("http://worker/");
    const body = (await res.json()) as { ok: boolean; state?: string; error?: string };
    expect(body).toEqual({ ok: true, state: "succeeded" });
    expect(gw.counts.http).toBeGreaterThanOrEqual(5);
  });
});
