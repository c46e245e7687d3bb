/**
 * Bundles the Lambda entry (lambda/handler.ts) into one ES module with
 * esbuild, ready for `lambda.Code.fromAsset(dir)`: `dir/index.mjs`, handlers
 * `index.scheduleHandler`, `index.sqsHandler`, `index.httpHandler`.
 *
 * Prebuilt once and shared by the three functions (one asset, one upload),
 * rather than NodejsFunction bundling the same entry three times.
 */
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { build, type Metafile } from "esbuild";

export const HANDLER_ENTRY = join(dirname(fileURLToPath(import.meta.url)), "..", "lambda", "handler.ts");

export interface BundleResult {
  dir: string;
  file: string;
  bytes: number;
  metafile: Metafile;
}

/** Builds into `outDir` (default: a fresh temp dir). About 1 s. */
export async function bundleHandler(outDir: string = mkdtempSync(join(tmpdir(), "qml-lambda-"))): Promise<BundleResult> {
  const file = join(outDir, "index.mjs");
  const r = await build({
    entryPoints: [HANDLER_ENTRY],
    outfile: file,
    bundle: true,
    platform: "node",
    target: "node24",
    format: "esm",
    minify: true,
    sourcemap: "linked",
    metafile: true,
    logLevel: "silent",
    legalComments: "none",
    // Optional native add-ons the drivers try and do without.
    external: ["pg-native", "bufferutil", "utf-8-validate"],
    // CommonJS dependencies (pg, ws, ioredis) call require(): give the ES module one.
    banner: { js: "import { createRequire as __qmlCreateRequire } from 'node:module'; const require = __qmlCreateRequire(import.meta.url);" },
  });
  const out = r.metafile.outputs[Object.keys(r.metafile.outputs).find((k) => k.endsWith("index.mjs"))!]!;
  return { dir: outDir, file, bytes: out.bytes, metafile: r.metafile };
}
