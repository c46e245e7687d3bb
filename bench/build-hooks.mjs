/**
 * Module resolve hook for the benchmark children (`node --import tsx
 * --import ./bench/build-hooks.mjs`): qml's sources (src/, infra/) resolve
 * to their compiled copy in $QML_BENCH_BUILD (see build.ts), everything
 * else (the harness, the peers) as usual. Plain JavaScript: it runs in the
 * loader thread, before any TypeScript support.
 */
import { existsSync } from "node:fs";
import { register } from "node:module";
import { isMainThread } from "node:worker_threads";
import { fileURLToPath, pathToFileURL } from "node:url";
import { dirname, join, relative } from "node:path";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..");
const BUILD = process.env.QML_BENCH_BUILD;
const MAPPED = ["src", "infra"].map((d) => pathToFileURL(join(ROOT, d)).href + "/");

export async function resolve(specifier, context, next) {
  const r = await next(specifier, context);
  if (BUILD && r.url.endsWith(".ts") && MAPPED.some((m) => r.url.startsWith(m))) {
    const compiled = join(BUILD, relative(ROOT, fileURLToPath(r.url))).replace(/\.ts$/, ".js");
    if (existsSync(compiled)) return { ...r, url: pathToFileURL(compiled).href, format: "module" };
  }
  return r;
}

if (isMainThread && BUILD) register(import.meta.url);
