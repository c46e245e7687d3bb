/**
 * Embeds the dashboard UI into src/adapters/http/ui/assets.generated.ts, so
 * that workerd and Lambda serve it without reading files:
 *
 * - ui/src/main.js and the ES modules it imports, bundled by esbuild into
 *   one script, served as assets/app.js;
 * - ui/*.html, ui/*.css and ui/*.svg as they are.
 *
 * It refuses a UI that breaks the rules the CSP and the XSS model rely on:
 * a script that writes HTML strings or runs strings as code, a page with an
 * inline script, style or event handler. The generated file is committed;
 * test/http/assets.test.ts and `--check` (run by prebuild) fail when it is
 * stale.
 *
 *   npx tsx scripts/embed-assets.ts           # rewrite the generated file
 *   npx tsx scripts/embed-assets.ts --check   # exit 1 if it is stale
 */
import { createHash } from "node:crypto";
import { readFile, readdir } from "node:fs/promises";
import { dirname, extname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { build } from "esbuild";
import { writeOrCheck } from "./generated-file.js";

export const UI_DIR = join(dirname(fileURLToPath(import.meta.url)), "..", "src", "adapters", "http", "ui");
export const UI_SRC = join(UI_DIR, "src");
export const GENERATED = join(UI_DIR, "assets.generated.ts");
/** The bundle's name among the assets (index.html loads assets/app.js). */
export const SCRIPT = "app.js";

const TYPES: Record<string, string> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".svg": "image/svg+xml",
};

/** What no UI script may contain: each writes HTML from a string, runs a string as code, or sets an inline handler. */
export const SCRIPT_SINKS = [
  "innerHTML",
  "outerHTML",
  "insertAdjacentHTML",
  "document.write",
  "eval(",
  "new Function",
  'setAttribute("on',
  "createContextualFragment",
  "DOMParser",
];

/** The UI script: every ES module under ui/src bundled from main.js into one classic script (index.html loads it with `defer`). */
export async function bundleScript(): Promise<string> {
  const out = await build({
    entryPoints: [join(UI_SRC, "main.js")],
    // Relative to ui/, so that the module comments in the bundle do not depend on the checkout's path.
    absWorkingDir: UI_DIR,
    bundle: true,
    format: "iife",
    platform: "browser",
    target: "es2022",
    charset: "utf8",
    legalComments: "none",
    // Not minified: the bundle stays readable in a browser's devtools and in review.
    minify: false,
    // esbuild adds "use strict" to an IIFE of ES modules (modules are strict); the banner goes above it.
    banner: { js: "// qml dashboard, bundled from src/adapters/http/ui/src by scripts/embed-assets.ts." },
    write: false,
    logLevel: "silent",
  });
  return out.outputFiles[0]!.text;
}

/** Refuses a UI that breaks the CSP or the XSS rules. */
export function checkUiRules(files: ReadonlyMap<string, string>): void {
  const broken: string[] = [];
  for (const [name, text] of files) {
    if (name.endsWith(".js")) {
      const code = text.replace(/^\s*\/\/.*$/gm, "");
      for (const sink of SCRIPT_SINKS) if (code.includes(sink)) broken.push(`${name} uses ${sink}`);
      // style-src 'self' refuses style attributes, including ones set from script.
      if (/\.style\.|"style"/.test(code)) broken.push(`${name} sets an inline style`);
    }
    if (name.endsWith(".html")) {
      for (const m of text.matchAll(/<script\b([^>]*)>([\s\S]*?)<\/script>/gi)) {
        if (!/\bsrc=/.test(m[1]!) || m[2]!.trim() !== "") broken.push(`${name} has an inline script`);
      }
      if (/<style\b|\sstyle=/i.test(text)) broken.push(`${name} has an inline style`);
      if (/\son[a-z]+=/i.test(text)) broken.push(`${name} has an inline event handler`);
      if (/javascript:/i.test(text)) broken.push(`${name} has a javascript: URL`);
    }
  }
  if (broken.length > 0) throw new Error(`[embed-assets] the UI breaks its rules:\n  ${broken.join("\n  ")}`);
}

/** The generated module's text, deterministic (sorted, no timestamps, no absolute paths). */
export async function renderAssetsModule(): Promise<string> {
  const files = new Map<string, string>();
  for (const file of (await readdir(UI_DIR)).filter((f) => TYPES[extname(f)] !== undefined && f !== SCRIPT).sort()) {
    // Normalised line endings: a checkout with CRLF must not make the file look stale.
    files.set(file, (await readFile(join(UI_DIR, file), "utf8")).replace(/\r\n/g, "\n"));
  }
  for (const file of (await readdir(UI_SRC)).filter((f) => f.endsWith(".js")).sort()) {
    files.set(`src/${file}`, await readFile(join(UI_SRC, file), "utf8"));
  }
  files.set(SCRIPT, await bundleScript());
  checkUiRules(files);
  const entries: string[] = [];
  for (const [file, body] of [...files].filter(([f]) => !f.startsWith("src/")).sort(([a], [b]) => (a < b ? -1 : 1))) {
    const etag = createHash("sha256").update(body).digest("hex").slice(0, 20);
    entries.push(
      `  ${JSON.stringify(file)}: {\n    contentType: ${JSON.stringify(TYPES[extname(file)])},\n    etag: ${JSON.stringify(etag)},\n    body: ${JSON.stringify(body)},\n  },`,
    );
  }
  return [
    "// @generated by scripts/embed-assets.ts from src/adapters/http/ui/ (app.js: the ES modules in ui/src,",
    "// bundled by esbuild). Do not edit: edit the UI files and run `npx tsx scripts/embed-assets.ts`.",
    "",
    "export interface EmbeddedAsset {",
    "  contentType: string;",
    "  etag: string;",
    "  body: string;",
    "}",
    "",
    "export const ASSETS: Readonly<Record<string, EmbeddedAsset>> = {",
    ...entries,
    "};",
    "",
  ].join("\n");
}

async function main(): Promise<void> {
  writeOrCheck(GENERATED, await renderAssetsModule(), "npx tsx scripts/embed-assets.ts");
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().catch((e: unknown) => {
    console.error(e);
    process.exit(1);
  });
}
