import { BackgroundJobServer, ServerConfig, silentLogger, type JobEventMap, type Storage, type WorkerRegistry } from "../../src/index.js";

/** A server with test-friendly defaults: fast polls, no logs. */
export function testServer(storage: Storage, registry: WorkerRegistry, configure: (c: ServerConfig) => ServerConfig = (c) => c): BackgroundJobServer {
  const config = new ServerConfig(`test-${Math.random().toString(36).slice(2, 8)}`)
    .pollingInterval(20)
    .maxPollingInterval(100)
    .schedulerInterval(50)
    .logger(silentLogger);
  return new BackgroundJobServer(storage, registry, configure(config));
}

/** Resolves when `event` has fired `count` times (waits on events, not on time). */
export function waitForEvents<K extends keyof JobEventMap>(
  server: { on: (e: K, fn: (p: JobEventMap[K]) => void) => () => void },
  event: K,
  count = 1,
  filter: (p: JobEventMap[K]) => boolean = () => true,
): Promise<JobEventMap[K][]> {
  return new Promise((resolve) => {
    const seen: JobEventMap[K][] = [];
    const off = server.on(event, (p) => {
      if (!filter(p)) return;
      seen.push(p);
      if (seen.length === count) {
        off();
        resolve(seen);
      }
    });
  });
}
