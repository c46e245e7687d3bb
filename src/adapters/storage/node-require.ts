/**
 * Loads a CommonJS package (`pg`, `ws`, `ioredis`) on Node only when a
 * driver needs it.
 *
 * Deliberately not an `import()` expression: bundlers follow a literal one
 * (and would pull `pg` and its `net`/`tls` imports into a Worker bundle),
 * and miniflare's module walker refuses a non-literal one. A require made
 * at run time from Node's own `module` builtin is invisible to both, and
 * never runs in workerd, where these drivers are not used.
 *
 * Bundles for Node (Lambda) that want the package inlined pass it in
 * instead (`createPgDriver({ pg })`, `webSocketConstructor: ws`,
 * `new IoredisDriver({ url, ioredis })`).
 */
import { ConfigError } from "../../core/errors.js";

type NodeProcess = { getBuiltinModule?: (id: string) => unknown; cwd?: () => string };

export function nodeRequire(spec: string, scope: string): unknown {
  const proc = (globalThis as { process?: NodeProcess }).process;
  const getBuiltin = proc?.getBuiltinModule;
  if (typeof getBuiltin !== "function") {
    throw new ConfigError(`cannot load "${spec}" here (it needs Node >= 20.16); pass the module in instead`, { scope });
  }
  const { createRequire } = getBuiltin("module") as { createRequire(from: string | URL): (id: string) => unknown };
  // import.meta.url is absent once bundled to CommonJS: resolve from the working directory then.
  const from = typeof import.meta.url === "string" && import.meta.url.length > 0 ? import.meta.url : `${proc?.cwd?.() ?? "."}/`;
  return createRequire(from)(spec);
}
