/**
 * `qml/postgres` must load in workerd: its module graph holds no `pg`, no
 * `ws` and no `node:*` import (those are loaded on Node, by drivers a Worker
 * does not use). Checked on a real esbuild bundle for the browser/worker
 * platform, as wrangler would build it; workerd.test.ts runs such a bundle.
 */
import { fileURLToPath } from "node:url";
import { build } from "esbuild";
import { expect, it } from "vitest";

const ENTRY = fileURLToPath(new URL("../../src/adapters/storage/postgres/index.ts", import.meta.url));

it("bundles for workers without pg, ws or node builtins", async () => {
  const result = await build({
    entryPoints: [ENTRY],
    bundle: true,
    write: false,
    format: "esm",
    platform: "browser",
    conditions: ["workerd", "worker", "browser"],
    metafile: true,
    logLevel: "silent",
  });
  const inputs = Object.keys(result.metafile.inputs);
  expect(inputs.some((p) => p.includes("@neondatabase/serverless"))).toBe(true);
  expect(inputs.filter((p) => /node_modules\/(pg|pg-pool|pg-protocol|ws)\//.test(p))).toEqual([]);
  const imports = Object.values(result.metafile.outputs).flatMap((o) => o.imports.map((i) => i.path));
  expect(imports.filter((p) => p.startsWith("node:") || p === "pg" || p === "ws")).toEqual([]);
  // No import() left either: miniflare's module walker refuses non-literal ones (minified: comments may mention import()).
  const minified = await build({
    entryPoints: [ENTRY],
    bundle: true,
    write: false,
    format: "esm",
    platform: "browser",
    conditions: ["workerd", "worker", "browser"],
    minify: true,
    logLevel: "silent",
  });
  expect(minified.outputFiles[0]!.text).not.toMatch(/\bimport\(/);
});
