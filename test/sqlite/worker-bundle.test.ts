/**
 * `qml/sqlite` must load in workerd, where it runs over D1: its module graph
 * holds no better-sqlite3 and no `node:*` import (better-sqlite3 is required
 * on Node at the first database opened, by a driver a Worker does not use).
 * Checked on an esbuild bundle for the browser/worker platform, as wrangler
 * would build it.
 */
import { fileURLToPath } from "node:url";
import { build, type BuildOptions } from "esbuild";
import { expect, it } from "vitest";

const ENTRY = fileURLToPath(new URL("../../src/adapters/storage/sqlite/index.ts", import.meta.url));

it("bundles for workers without better-sqlite3 or node builtins", async () => {
  const options: BuildOptions = {
    entryPoints: [ENTRY],
    bundle: true,
    write: false,
    format: "esm",
    platform: "browser",
    conditions: ["workerd", "worker", "browser"],
    logLevel: "silent",
  };
  const result = await build({ ...options, metafile: true, write: false });
  const inputs = Object.keys(result.metafile.inputs);
  expect(inputs.filter((p) => /node_modules\/(better-sqlite3|bindings|prebuild-install)\//.test(p))).toEqual([]);
  const imports = Object.values(result.metafile.outputs).flatMap((o) => o.imports.map((i) => i.path));
  expect(imports.filter((p) => p.startsWith("node:") || p === "better-sqlite3")).toEqual([]);
  // No import() either: miniflare's module walker refuses non-literal ones.
  const minified = await build({ ...options, minify: true, write: false });
  expect(minified.outputFiles[0]!.text).not.toMatch(/\bimport\(/);
});
