/**
 * QML_WORKERS_MODULE: how a team adds its own workers to the stock server
 * without writing a server. The module (plain JavaScript in production: no
 * TypeScript tooling runs there) exports
 *
 *   export function register(registry, { storage, logger, config }) {
 *     registry.register("send_email", async (job, ctx) => { … });
 *   }
 *
 * (or the same function as its default export); it may be async. It runs
 * before the server has reached the store (which may still be booting), so
 * it should only register: `storage` is there for the workers themselves,
 * e.g. to enqueue follow-up jobs.
 */
import { isAbsolute, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { ConfigError, type Logger, type Storage, type WorkerRegistry } from "../../../index.js";
import type { NodeEnvConfig } from "./env.js";

export interface WorkersModuleContext {
  /** For use inside workers; not yet migrated or even reachable while register() runs. */
  storage: Storage;
  logger: Logger;
  config: NodeEnvConfig;
}

export type RegisterWorkers = (registry: WorkerRegistry, context: WorkersModuleContext) => void | Promise<void>;

/**
 * A path (absolute, or relative to the working directory) is imported as a
 * file; anything else as a package name, resolved from qml's own location
 * upwards, which finds the packages of the app that installed qml.
 */
export function workersModuleSpecifier(spec: string, cwd: string = process.cwd()): string {
  const looksLikePath = spec.startsWith(".") || isAbsolute(spec) || /\.(?:[cm]?js|[cm]?ts)$/.test(spec);
  return looksLikePath ? pathToFileURL(resolve(cwd, spec)).href : spec;
}

export async function loadWorkersModule(spec: string, registry: WorkerRegistry, context: WorkersModuleContext): Promise<string[]> {
  let mod: Record<string, unknown>;
  try {
    mod = (await import(workersModuleSpecifier(spec))) as Record<string, unknown>;
  } catch (e) {
    throw new ConfigError(`QML_WORKERS_MODULE=${JSON.stringify(spec)} could not be loaded: ${e instanceof Error ? e.message : String(e)}`);
  }
  const register = typeof mod.register === "function" ? mod.register : typeof mod.default === "function" ? mod.default : undefined;
  if (!register)
    throw new ConfigError(`QML_WORKERS_MODULE=${JSON.stringify(spec)} is invalid: expected a module exporting register(registry) (named or default export)`);
  const before = new Set(registry.names());
  await (register as RegisterWorkers)(registry, context);
  const added = registry.names().filter((n) => !before.has(n));
  if (added.length === 0) context.logger.warn("QML_WORKERS_MODULE registered no worker", { module: spec });
  return added;
}
