/**
 * The built `qml` binary, run as a child process. It is compiled once per
 * test file (tsc with tsconfig.build.json, as `npm run build`) into a
 * temporary folder of its own, not dist/: other tests and people build
 * there at the same time. The folder gets the package.json (ESM, the
 * version) and a link to node_modules, so it resolves its dependencies as
 * an installed package does. `--noCheck`: type errors are `npm run
 * typecheck`'s to report; this only needs the JavaScript.
 */
import { execFile, spawn } from "node:child_process";
import { copyFileSync, mkdtempSync, rmSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { REPO, baseEnv } from "../node/helpers/process.js";

export interface Built {
  /** dist/cli/main.js of the build. */
  main: string;
  cleanup(): void;
}

export async function buildCli(): Promise<Built> {
  const dir = mkdtempSync(join(tmpdir(), "qmlt-cli-"));
  const tsc = join(REPO, "node_modules/typescript/bin/tsc");
  await promisify(execFile)(process.execPath, [tsc, "-p", "tsconfig.build.json", "--outDir", join(dir, "dist"), "--noCheck"], { cwd: REPO });
  copyFileSync(join(REPO, "package.json"), join(dir, "package.json"));
  symlinkSync(join(REPO, "node_modules"), join(dir, "node_modules"), "dir");
  return { main: join(dir, "dist/cli/main.js"), cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

export interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `qml …args` with `env` (and none of the caller's qml variables); never rejects. */
export function runCli(built: Built, args: string[], env: Record<string, string>): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [built.main, ...args], { cwd: REPO, env: baseEnv(env) as NodeJS.ProcessEnv, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (d: string) => (stdout += d));
    child.stderr.setEncoding("utf8").on("data", (d: string) => (stderr += d));
    child.once("error", reject);
    child.once("close", (code) => resolve({ code: code ?? -1, stdout, stderr }));
  });
}

/** Runs and parses stdout as the one JSON document `--json` promises; fails with stderr when the run did. */
export async function runJson<T = any>(built: Built, args: string[], env: Record<string, string>): Promise<T> {
  const r = await runCli(built, [...args, "--json"], env);
  if (r.code !== 0) throw new Error(`qml ${args.join(" ")} exited ${r.code}: ${r.stderr}`);
  return JSON.parse(r.stdout) as T;
}
