/**
 * Compiles qml (src/ and the gateways of infra/) to plain JavaScript for the
 * benchmark children, so that qml runs as its users run it: compiled, like
 * the peers from their npm packages. Run through tsx, the sources carry its
 * `keepNames` helper: a `__name(fn, "…")` call (a defineProperty) for every
 * closure created, measured at about 5 % of the memory contender's CPU
 * time on the processing path. esbuild transpiles file by file (no bundle),
 * so the module graph is the one tsc builds; about a second.
 */
import { readdirSync } from "node:fs";
import { rm } from "node:fs/promises";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { build } from "esbuild";

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..");
/**
 * Under the root node_modules, so that the compiled code resolves its
 * dependencies (ioredis, pg…) from the main install as a user's would, not
 * from bench/node_modules (the peers' copies).
 */
export const BUILD_DIR = join(ROOT, "node_modules", ".cache", "qml-bench");
/** Folders compiled; the resolve hook (build-hooks.mjs) maps exactly these. */
export const COMPILED = ["src", "infra"];

function tsFiles(dir: string): string[] {
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile() && e.name.endsWith(".ts") && !e.name.endsWith(".d.ts") && !e.name.endsWith(".test.ts"))
    .map((e) => join(e.parentPath, e.name));
}

export async function buildQml(outDir: string = BUILD_DIR): Promise<string> {
  await rm(outDir, { recursive: true, force: true });
  await build({
    entryPoints: COMPILED.flatMap((d) => tsFiles(join(ROOT, d))),
    outbase: ROOT,
    outdir: outDir,
    bundle: false,
    format: "esm",
    platform: "node",
    target: "node20",
    tsconfig: join(ROOT, "tsconfig.json"),
    sourcemap: false,
    logLevel: "warning",
  });
  return outDir;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  buildQml().then((dir) => console.log(dir));
}
