/**
 * Runs in Node before the workerd tests: starts the local Upstash and Neon
 * gateways on random ports (node-services.ts, a child process) and hands their addresses to
 * the tests (`inject`). Inside workerd the tests reach them with `fetch`,
 * through the same driver packages a deployment uses. Teardown stops the
 * gateways and removes the run's keys and schemas.
 */
import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import type { TestProject } from "vitest/node";
import type { ServicesForWorkers } from "./node-services.js";

type Provided = ServicesForWorkers["provided"];

declare module "vitest" {
  export interface ProvidedContext {
    ci: boolean;
    redisUp: boolean;
    postgresUp: boolean;
    upstashUrl: string;
    upstashToken: string;
    redisPrefix: string;
    databaseUrl: string;
    neonFetchEndpoint: string;
    pgSchemaPrefix: string;
  }
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const script = fileURLToPath(new URL("./node-services.ts", import.meta.url));
  const child = spawn(process.execPath, ["--import", "tsx", script], { stdio: ["pipe", "pipe", "inherit"] });
  const exited = new Promise<number | null>((resolve) => child.once("exit", resolve));
  const provided = await new Promise<Provided>((resolve, reject) => {
    let out = "";
    child.stdout.setEncoding("utf8");
    child.stdout.on("data", (chunk: string) => {
      out += chunk;
      const nl = out.indexOf("\n");
      if (nl >= 0) {
        try {
          resolve(JSON.parse(out.slice(0, nl)) as Provided);
        } catch (e) {
          reject(e);
        }
      }
    });
    void exited.then((code) => reject(new Error(`[qml] workers test services exited early (code ${code})`)));
  });
  for (const [key, value] of Object.entries(provided)) project.provide(key as keyof Provided, value as never);
  return async () => {
    // Closing its stdin tells it to clean up and exit.
    child.stdin.end();
    await exited;
  };
}
