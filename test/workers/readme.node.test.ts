/**
 * What the README says about Workers that no other test reads: which Neon
 * drivers run there. The sentence is held to the lists in
 * neon-on-workers.ts, which the workerd tests run on (backends.ts) and the
 * reference deployment builds; the bundle size has its own check in
 * deploy.node.test.ts.
 */
import { readFile } from "node:fs/promises";
import { describe, expect, it } from "vitest";
import { storageFromEnv } from "../../deploy/cloudflare/src/storage.js";
import { NEON_DRIVERS_NODE_ONLY, NEON_DRIVERS_ON_WORKERS } from "./neon-on-workers.js";

const names = (s: string) => [...s.matchAll(/`([a-z-]+)`/g)].map((m) => m[1]!).sort();

describe("README: Neon drivers on Workers", () => {
  it("names as working on Workers exactly the drivers the workerd tests and the deployment use, and the others as Node-only", async () => {
    const readme = await readFile(new URL("../../README.md", import.meta.url), "utf8");
    const section = readme.slice(readme.search(/^## Deploy to Cloudflare$/m));
    const m = /Neon drivers on Workers: (.+?) works? \(.*?\); (.+?) are for Node and Lambda/.exec(section);
    expect(m, 'README "Deploy to Cloudflare" says "Neon drivers on Workers: `…` works (…); `…` and `…` are for Node and Lambda"').not.toBeNull();
    expect(names(m![1]!)).toEqual([...NEON_DRIVERS_ON_WORKERS].sort());
    expect(names(m![2]!)).toEqual([...NEON_DRIVERS_NODE_ONLY].sort());
  });

  it("the reference deployment builds its Postgres store on that driver", () => {
    const storage = storageFromEnv({ QML_STORAGE: "postgres", DATABASE_URL: "postgres://u:p@ep-example.neon.tech/db" });
    expect(NEON_DRIVERS_ON_WORKERS).toContain(storage.driver.transport);
  });
});
