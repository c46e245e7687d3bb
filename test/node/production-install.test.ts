/**
 * The production install, without a Docker engine: the Dockerfile's steps
 * replayed in a temporary folder. Build (tsc into a temporary outDir, never
 * a stale dist/), `npm pack` the package's published contents, install its
 * production dependencies from the lockfile with the Dockerfile's own
 * `npm ci --omit=dev …` command, and run the Dockerfile's CMD with plain
 * `node`: no dev dependency, no TypeScript tooling. Then the same tarball
 * as a dependency of an app that brings its own workers (QML_WORKERS_MODULE).
 *
 * Slow by nature (a compile and two installs from the npm registry,
 * cache-first), so it is one file with one shared build.
 */
import { execFile } from "node:child_process";
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { all, envPairs, execForm, last, parseDockerfile } from "./helpers/dockerfile.js";
import { REPO, eventually, killLeftovers, listeningUrl, spawnServer, type ServerProcess } from "./helpers/process.js";

const run = promisify(execFile);
const TOKEN = "prod-install-token-0123456789";
const auth = { Authorization: `Bearer ${TOKEN}` };
const pkg = JSON.parse(readFileSync(join(REPO, "package.json"), "utf8")) as {
  name: string;
  version: string;
  bin?: string | Record<string, string>;
  devDependencies: Record<string, string>;
};
const dockerfile = parseDockerfile(readFileSync(join(REPO, "deploy/node/Dockerfile"), "utf8"));
const build = dockerfile.stages[0]!;
const runtime = dockerfile.stages.at(-1)!;
/** examples/docker: the user's workers layered on the image. */
const example = parseDockerfile(readFileSync(join(REPO, "examples/docker/Dockerfile"), "utf8")).stages.at(-1)!;

/** What a child process may inherit: nothing that could load TypeScript tooling (NODE_OPTIONS, vitest's own variables). */
function cleanEnv(extra: Record<string, string>): Record<string, string> {
  const env: Record<string, string> = { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: process.env.HOME ?? tmpdir() };
  for (const k of ["npm_config_cache", "npm_config_registry", "HTTPS_PROXY", "HTTP_PROXY", "NO_PROXY"]) if (process.env[k]) env[k] = process.env[k]!;
  return { ...env, ...extra };
}

async function sh(file: string, args: string[], cwd: string, timeoutMs = 200_000): Promise<string> {
  try {
    const { stdout } = await run(file, args, { cwd, env: cleanEnv({}), timeout: timeoutMs, maxBuffer: 64 * 1024 * 1024 });
    return stdout;
  } catch (e) {
    const err = e as { stdout?: string; stderr?: string; message: string };
    throw new Error(`${file} ${args.join(" ")} failed in ${cwd}: ${err.message}\n${err.stdout ?? ""}\n${err.stderr ?? ""}`);
  }
}

function installedDevDependencies(nodeModules: string): string[] {
  const dev = [...new Set([...Object.keys(pkg.devDependencies), "typescript", "tsx", "vitest", "wrangler"])];
  return dev.filter((name) => existsSync(join(nodeModules, name)));
}

async function json(res: Response): Promise<any> {
  return res.json();
}

let tmp: string;
let tarball: string;
let packedFiles: string[];

beforeAll(async () => {
  tmp = mkdtempSync(join(tmpdir(), "qml-prod-install-"));
  const stage = join(tmp, "stage");
  mkdirSync(stage);
  // `npm run build`, into the stage instead of dist/. Type errors are
  // `npm run typecheck`'s to report; skipping the check halves the time
  // and emits the same files.
  const tsc = [join(REPO, "node_modules/typescript/bin/tsc"), "-p", "tsconfig.build.json", "--outDir", join(stage, "dist"), "--noCheck"];
  await sh(process.execPath, tsc, REPO, 150_000).catch((e: Error) => {
    throw new Error(`the build fails, as \`npm run build\` in the Dockerfile would:\n${e.message}`);
  });
  for (const f of ["package.json", "README.md", "LICENSE"]) if (existsSync(join(REPO, f))) cpSync(join(REPO, f), join(stage, f));
  const packed = JSON.parse(await sh("npm", ["pack", "--ignore-scripts", "--json", "--pack-destination", tmp], stage)) as Array<{
    filename: string;
    files: Array<{ path: string }>;
  }>;
  tarball = join(tmp, packed[0]!.filename);
  packedFiles = packed[0]!.files.map((f) => f.path);
}, 180_000);

afterAll(() => {
  killLeftovers();
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

describe("production install", () => {
  it("the package holds the compiled server and no sources or tests", () => {
    expect(packedFiles).toContain("dist/adapters/runtime/node/main.js");
    expect(packedFiles).toContain("package.json");
    expect(packedFiles.filter((f) => /^(src|test|deploy)\//.test(f) || (f.endsWith(".ts") && !f.endsWith(".d.ts")))).toEqual([]);
    expect(readFileSync(join(tmp, "stage/dist/adapters/runtime/node/main.js"), "utf8").startsWith("#!/usr/bin/env node\n")).toBe(true);
  });

  it("the image's steps: npm ci --omit=dev of the packed package, then its CMD serves, runs the demo and the example's workers, and drains on SIGTERM", async () => {
    // COPY --from=build /pkg ./ (the unpacked tarball) and COPY package-lock.json ./
    // A folder of its own per try: a retry (CI) must not meet the last try's leftovers.
    const app = mkdtempSync(join(tmp, "app-"));
    await sh("tar", ["-xzf", tarball, "-C", app, "--strip-components=1"], tmp);
    cpSync(join(REPO, "package-lock.json"), join(app, "package-lock.json"));
    // The runtime stage's install, as written there (its cache cleanup is the image's business, not this machine's).
    const install = all(runtime, "RUN")
      .flatMap((r) => r.args.split("&&").map((s) => s.trim()))
      .find((s) => /^npm ci\b/.test(s))!;
    expect(install).toMatch(/--omit=dev/);
    const [npm, ...args] = install.split(/\s+/);
    await sh(npm!, [...args, "--prefer-offline"], app);
    expect(installedDevDependencies(join(app, "node_modules"))).toEqual([]);
    expect(existsSync(join(app, "node_modules/hono"))).toBe(true);
    // COPY --from=build of what the build stage compiled (better-sqlite3's
    // native module): the build stage's folder is this repository, whose
    // `npm ci` built it the same way.
    const buildDir = last(build, "WORKDIR")!.args;
    for (const copy of all(runtime, "COPY").filter((c) => c.args.startsWith(`--from=build ${buildDir}/`))) {
      const [, from, to] = copy.args.split(" ");
      const source = join(REPO, from!.slice(buildDir.length + 1));
      const target = join(app, to!);
      mkdirSync(to!.endsWith("/") ? target : join(target, ".."), { recursive: true });
      cpSync(source, to!.endsWith("/") ? join(target, source.split("/").at(-1)!) : target);
    }

    // examples/docker/Dockerfile on top: COPY workers.mjs /app/workers.mjs, ENV QML_WORKERS_MODULE=…
    const workdir = last(runtime, "WORKDIR")!.args;
    const inApp = (path: string) => join(app, path.replace(new RegExp(`^${workdir}/?`), ""));
    for (const copy of all(example, "COPY")) {
      const [from, to] = copy.args.split(" ");
      cpSync(join(REPO, "examples/docker", from!), inApp(to!));
    }
    const exampleEnv = Object.fromEntries(
      all(example, "ENV")
        .flatMap((i) => envPairs(i.args))
        .map(([k, v]) => [k, v.startsWith(workdir) ? inApp(v) : v]),
    );

    const cmd = execForm(last(runtime, "CMD")!.args);
    expect(cmd[0]).toBe("node");
    // Paths in the image (the SQLite file in /app/data) land in the app folder.
    const imageEnv = Object.fromEntries(
      all(runtime, "ENV")
        .flatMap((i) => envPairs(i.args))
        .map(([k, v]) => [k, v.startsWith(`${workdir}/`) ? inApp(v) : v]),
    );
    // The image's environment, on a free port and on loopback (this is a shared machine).
    const server = spawnServer([process.execPath, ...cmd.slice(1)], {
      cwd: app,
      env: cleanEnv({ ...imageEnv, ...exampleEnv, PORT: "0", QML_HOST: "127.0.0.1", QML_DASHBOARD_TOKEN: TOKEN, QML_POLL_MS: "20", QML_DEMO: "seed" }),
    });
    const url = await listeningUrl(server);
    expect(await json(await fetch(`${url}/healthz`))).toEqual({ ok: true });
    await eventually(async () => ((await fetch(`${url}/readyz`)).status === 200 ? true : undefined), "/readyz 200");
    expect((await fetch(`${url}/api/stats`)).status).toBe(401);
    // The demo jobs (in the image's default store, a SQLite file) all leave enqueued/processing.
    const stats = await eventually(async () => {
      const st = await json(await fetch(`${url}/api/stats`, { headers: auth }));
      return st.total === 24 && st.states.enqueued === 0 && st.states.processing === 0 ? st : undefined;
    }, "the demo jobs to be processed");
    expect(stats.states.succeeded).toBeGreaterThan(0);

    // The example's worker (its module imports "qml": the package itself, by self-reference).
    const created = await fetch(`${url}/api/jobs`, {
      method: "POST",
      headers: { ...auth, "Content-Type": "application/json" },
      body: JSON.stringify({ name: "resize_image", args: ["https://example.com/cat.png", 256] }),
    });
    expect(created.status).toBe(201);
    const { id } = await json(created);
    await eventually(async () => {
      const { job } = await json(await fetch(`${url}/api/jobs/${id}`, { headers: auth }));
      return job.state === "succeeded" ? job : undefined;
    }, "the example's job to succeed");
    await eventually(async () => {
      const page = await json(await fetch(`${url}/api/jobs?name=notify_owner&state=succeeded`, { headers: auth }));
      return page.items.length === 1 ? true : undefined;
    }, "the example's follow-up job to succeed");

    const login = await fetch(`${url}/login`);
    expect(login.status).toBe(200);
    expect(await login.text()).toContain("<form");
    await drains(server);
    expect(existsSync(imageEnv.QML_SQLITE_PATH!)).toBe(true);
  }, 240_000);

  it("as an app's dependency: the server runs the app's own workers (QML_WORKERS_MODULE importing qml)", async () => {
    const app = mkdtempSync(join(tmp, "consumer-"));
    writeFileSync(
      join(app, "package.json"),
      JSON.stringify({ name: "qml-consumer", private: true, type: "module", dependencies: { [pkg.name]: `file:${tarball}` } }, null, 2),
    );
    writeFileSync(
      join(app, "workers.mjs"),
      [
        `import { WorkerResult } from "${pkg.name}";`,
        "export function register(registry) {",
        '  registry.register("greet", async (job) => WorkerResult.success({ greeting: `hello ${job.arguments[0]}` }));',
        "}",
      ].join("\n"),
    );
    await sh("npm", ["install", "--omit=dev", "--ignore-scripts", "--no-audit", "--no-fund", "--prefer-offline"], app);
    expect(installedDevDependencies(join(app, "node_modules"))).toEqual([]);

    // The package's bin when it declares one, else the path the Dockerfile uses.
    const binName = typeof pkg.bin === "string" ? pkg.name : pkg.bin ? Object.keys(pkg.bin)[0] : undefined;
    const command = binName
      ? [join(app, "node_modules/.bin", binName)]
      : [process.execPath, join(app, "node_modules", pkg.name, "dist/adapters/runtime/node/main.js")];
    const server = spawnServer(command, {
      cwd: app,
      // --ignore-scripts above leaves better-sqlite3 unbuilt (the image's steps, above, run the SQLite default): memory here.
      env: cleanEnv({
        PORT: "0",
        QML_HOST: "127.0.0.1",
        QML_DASHBOARD_TOKEN: TOKEN,
        QML_WORKERS_MODULE: "./workers.mjs",
        QML_POLL_MS: "20",
        QML_STORAGE: "memory",
      }),
    });
    const url = await listeningUrl(server);
    const registered = await server.waitForLog((l) => l.msg === "workers registered", "the workers module");
    expect(registered.names).toEqual(["greet"]);

    const post = (body: unknown) =>
      fetch(`${url}/api/jobs`, { method: "POST", headers: { ...auth, "Content-Type": "application/json" }, body: JSON.stringify(body) });
    const created = await post({ name: "greet", args: ["world"] });
    expect(created.status).toBe(201);
    const { id } = await json(created);
    const job = await eventually(async () => {
      const { job } = await json(await fetch(`${url}/api/jobs/${id}`, { headers: auth }));
      return job.state === "succeeded" ? job : undefined;
    }, "the app's job to succeed");
    expect(job.result).toEqual({ greeting: "hello world" });
    // The dashboard knows the registry: a name no worker takes is refused.
    expect((await post({ name: "nobody_takes_this", args: [] })).status).toBe(422);
    await drains(server);
  }, 240_000);
});

async function drains(server: ServerProcess): Promise<void> {
  server.child.kill("SIGTERM");
  expect(await server.exited).toBe(0);
  expect(server.stderr()).toBe("");
  const lines = server.stdout().trim().split("\n");
  for (const line of lines) expect(() => JSON.parse(line), line).not.toThrow();
  expect(lines.at(-1)).toContain("drained: exiting");
}
