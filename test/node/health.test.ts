/**
 * /healthz and /readyz with the store going away and coming back. A TCP
 * proxy stands between the server and the shared Redis/PostgreSQL, so the
 * store disappears for this server only.
 */
import { afterEach, expect, it } from "vitest";
import { silentLogger } from "../../src/index.js";
import { loadEnvConfig, startNodeServer, type NodeServerHandle } from "../../src/adapters/runtime/node/index.js";
import { describeWithService, serviceUp } from "../helpers/services.js";
import { eventually } from "./helpers/process.js";
import { serviceAddress, testStore, viaPort, type ServiceBackend, type TestStore } from "./helpers/stores.js";
import { TcpProxy } from "../helpers/tcp-proxy.js";

interface Probe {
  status: number;
  body: Record<string, unknown>;
}

async function probe(url: string): Promise<Probe> {
  const res = await fetch(url);
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

/** Polls /readyz (it answers from a one-second cache) until it gives `status`. */
function readyzBecomes(handle: NodeServerHandle, status: number): Promise<Probe> {
  return eventually(async () => {
    const p = await probe(`${handle.url}/readyz`);
    return p.status === status ? p : undefined;
  }, `/readyz ${status}`);
}

const backends: ServiceBackend[] = ["redis", "postgres"];
for (const backend of backends) {
  describeWithService(backend, await serviceUp(backend), `health endpoints on ${backend}`, () => {
    let handle: NodeServerHandle | undefined;
    let proxy: TcpProxy | undefined;
    let store: TestStore | undefined;
    afterEach(async () => {
      await proxy?.down();
      await handle?.stop(0);
      await store?.cleanup();
      handle = undefined;
      proxy = undefined;
      store = undefined;
    });

    async function start(options: { storeDownAtStart?: boolean } = {}): Promise<NodeServerHandle> {
      const { host, port } = serviceAddress(backend);
      proxy = new TcpProxy(host, port);
      // The test's own storage goes to the service directly; the server's through the proxy.
      store = await testStore(backend, viaPort(backend, await proxy.up()));
      if (options.storeDownAtStart) await proxy.down();
      const config = loadEnvConfig({ ...store.env, PORT: "0", QML_DEMO: "off", QML_POLL_MS: "50" });
      return startNodeServer({ config, logger: silentLogger, maxStartRetryMs: 100 });
    }

    it("/readyz follows the store down and back up; /healthz stays 200", async () => {
      handle = await start();
      await handle.started;
      expect(await probe(`${handle.url}/healthz`)).toEqual({ status: 200, body: { ok: true } });
      expect((await readyzBecomes(handle, 200)).body).toMatchObject({ ok: true, storage: backend, phase: "ready", migrated: true });

      await proxy!.down();
      const down = await readyzBecomes(handle, 503);
      expect(down.body).toMatchObject({ ok: false, storage: backend, phase: "ready" });
      expect(down.body.error).toEqual(expect.any(String));
      expect((await probe(`${handle.url}/healthz`)).status).toBe(200);

      await proxy!.up();
      expect((await readyzBecomes(handle, 200)).body).toMatchObject({ ok: true, storage: backend });
    });

    it("a store that is down at start-up: the server answers /healthz, is unready, and starts once the store appears", async () => {
      handle = await start({ storeDownAtStart: true });
      expect(await probe(`${handle.url}/healthz`)).toEqual({ status: 200, body: { ok: true } });
      const unready = await probe(`${handle.url}/readyz`);
      expect(unready).toMatchObject({ status: 503, body: { ok: false, storage: backend, phase: "starting", migrated: false } });
      expect(handle.server.isRunning).toBe(false);

      await proxy!.up();
      await handle.started;
      expect(handle.server.isRunning).toBe(true);
      expect((await readyzBecomes(handle, 200)).body).toMatchObject({ ok: true, phase: "ready", migrated: true });
    });
  });
}
