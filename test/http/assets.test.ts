/** The embedded UI: the generated module matches the UI files, and the files keep the rules the CSP and the XSS model rely on. */
import { readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { expect, it } from "vitest";
import { GENERATED, UI_DIR, renderAssetsModule } from "../../scripts/embed-assets.js";
import { ASSETS } from "../../src/adapters/http/ui/assets.generated.js";

it("assets.generated.ts is up to date with src/adapters/http/ui (run `npx tsx scripts/embed-assets.ts`)", async () => {
  expect(readFileSync(GENERATED, "utf8")).toBe(await renderAssetsModule());
  expect(Object.keys(ASSETS).sort()).toEqual(["app.css", "app.js", "favicon.svg", "index.html", "login.html"]);
});

it("pages carry no inline script, inline style or inline event handler (the CSP would block them)", () => {
  for (const page of readdirSync(UI_DIR).filter((f) => f.endsWith(".html"))) {
    const html = readFileSync(join(UI_DIR, page), "utf8");
    for (const m of html.matchAll(/<script\b([^>]*)>([\s\S]*?)<\/script>/gi)) {
      expect(m[1], `${page}: script without src`).toMatch(/\bsrc=/);
      expect(m[2]!.trim(), `${page}: inline script body`).toBe("");
    }
    expect(html, `${page}: <style> element`).not.toMatch(/<style\b/i);
    expect(html, `${page}: style attribute`).not.toMatch(/\sstyle=/i);
    expect(html, `${page}: inline handler`).not.toMatch(/\son[a-z]+=/i);
    expect(html, `${page}: javascript: URL`).not.toMatch(/javascript:/i);
  }
});

it("the UI script builds the DOM from text, never from HTML strings", () => {
  const js = readFileSync(join(UI_DIR, "app.js"), "utf8").replace(/^\s*\/\/.*$/gm, "");
  for (const sink of ["innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function", "setAttribute(\"on", "createContextualFragment", "DOMParser"]) {
    expect(js.includes(sink), sink).toBe(false);
  }
  // No style attributes set from script either: the CSP's style-src 'self' would refuse them.
  expect(js).not.toMatch(/\.style\.|"style"/);
});

it("the app (all of src/adapters/http but node.ts) imports no Node module, so workerd and Lambda run it unchanged", () => {
  const dir = join(UI_DIR, "..");
  const files = readdirSync(dir).filter((f) => f.endsWith(".ts") && f !== "node.ts");
  expect(files).toEqual(expect.arrayContaining(["app.ts", "auth.ts", "index.ts", "live.ts", "problem.ts", "schemas.ts"]));
  for (const f of files) {
    const src = readFileSync(join(dir, f), "utf8");
    for (const [, spec] of src.matchAll(/from\s+"([^"]+)"/g)) {
      expect(spec!.startsWith("node:") || spec === "./node.js" || spec!.startsWith("@hono/node"), `${f} imports ${spec}`).toBe(false);
    }
    expect(/\bprocess\.|\bBuffer\b|\brequire\(/.test(src.replace(/\/\*[\s\S]*?\*\//g, "").replace(/\/\/.*$/gm, "")), `${f} uses a Node global`).toBe(false);
  }
});
