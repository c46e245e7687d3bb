/**
 * The deployment files in deploy/node, checked without a Docker engine or a
 * cluster: they parse; every variable they give the server is one it reads,
 * with values it accepts; probes, ports and grace periods agree with the
 * server and with each other. (The image's entry command itself runs in
 * production-install.test.ts.)
 */
import { existsSync, readFileSync, readdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { describe, expect, it } from "vitest";
import { parse as parseYaml } from "yaml";
import { ConfigError } from "../../src/index.js";
import { ENV_VARS, loadEnvConfig } from "../../src/adapters/runtime/node/env.js";
import { all, envPairs, execForm, last, parseDockerfile, type Stage } from "./helpers/dockerfile.js";
import { REPO } from "./helpers/process.js";

const DEPLOY = join(REPO, "deploy/node");
const read = (path: string) => readFileSync(join(DEPLOY, path), "utf8");
/** Variables Node itself reads, which an image may set besides the server's own. */
const RUNTIME_VARS = new Set(["NODE_ENV", "NODE_OPTIONS"]);
const SERVER_VARS = new Set<string>(ENV_VARS);

type Obj = { [key: string]: unknown };
const obj = (v: unknown): Obj => {
  expect(v !== null && typeof v === "object" && !Array.isArray(v), `expected a mapping, got ${JSON.stringify(v)}`).toBe(true);
  return v as Obj;
};
const list = (v: unknown): unknown[] => {
  expect(Array.isArray(v), `expected a sequence, got ${JSON.stringify(v)}`).toBe(true);
  return v as unknown[];
};
/** "30s", "1m30s" (Compose durations) in ms. */
function durationMs(v: string): number {
  let total = 0;
  const re = /(\d+(?:\.\d+)?)(ms|s|m|h)/gy;
  let m: RegExpExecArray | null;
  while ((m = re.exec(v))) total += Number(m[1]) * { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[m[2] as "ms" | "s" | "m" | "h"];
  expect(re.lastIndex === v.length || total > 0, `duration ${v}`).toBe(true);
  return total;
}
/** Compose interpolation, as `docker compose` does it with `.env` absent: defaults, or `sample` for required ones. */
function interpolate(v: string, sample: (name: string) => string): string {
  return v.replace(/\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}/g, (_, name: string, op: string | undefined, arg: string | undefined) => {
    if (op === ":-" || op === "-") return arg ?? "";
    return sample(name);
  });
}
const TOKEN = "a-token-of-sixteen-or-more-characters";

describe("deploy/node/Dockerfile", () => {
  const file = parseDockerfile(read("Dockerfile"));
  const build = file.stages[0]!;
  const runtime = file.stages.at(-1)!;
  const runtimeEnv = new Map(all(runtime, "ENV").flatMap((i) => envPairs(i.args)));

  it("is multi-stage: builds in one stage, runs with production dependencies only in another", () => {
    expect(file.stages.length).toBeGreaterThanOrEqual(2);
    const nodeArg = file.globalArgs.map((a) => /^NODE_VERSION=(\d+)$/.exec(a.args)?.[1]).find(Boolean);
    // A supported Node (20 is past end of life), one that CI runs the suite on.
    const tested = readFileSync(join(REPO, ".ci/node-versions"), "utf8").match(/^\d+(?=\.)/gm) ?? [];
    expect(Number(nodeArg)).toBeGreaterThanOrEqual(22);
    expect(tested).toContain(nodeArg);
    for (const s of file.stages) expect(s.from).toMatch(/^node:(\$\{NODE_VERSION\}|\d+)-slim$/);
    const buildRuns = all(build, "RUN").map((r) => r.args);
    expect(buildRuns.some((r) => /\bnpm ci\b/.test(r) && !/--omit=dev/.test(r))).toBe(true);
    expect(buildRuns.some((r) => /\bnpm run build\b/.test(r) && /\bnpm pack\b/.test(r))).toBe(true);
    const installs = all(runtime, "RUN").filter((r) => /\bnpm (ci|install|i)\b/.test(r.args));
    expect(installs).toHaveLength(1);
    expect(installs[0]!.args).toMatch(/\bnpm ci\b[^&]*--omit=dev/);
    // The runtime stage takes the packed package from the build stage, never the sources.
    expect(all(runtime, "COPY").some((c) => /--from=\S+/.test(c.args))).toBe(true);
    expect(all(runtime, "COPY").some((c) => /\bsrc\b/.test(c.args))).toBe(false);
    expect(runtimeEnv.get("NODE_ENV")).toBe("production");
  });

  it("builds better-sqlite3 where the compiler is, and copies only its compiled file into the runtime stage", () => {
    const buildRuns = all(build, "RUN").map((r) => r.args);
    const toolchain = buildRuns.findIndex((r) => /apt-get install\b.*\bpython3\b/.test(r) && /\bmake\b/.test(r) && /\bg\+\+/.test(r));
    const install = buildRuns.findIndex((r) => /\bnpm ci\b/.test(r) && !/--omit=dev/.test(r));
    expect(toolchain).toBeGreaterThanOrEqual(0);
    expect(toolchain).toBeLessThan(install);
    expect(all(runtime, "RUN").some((r) => /apt-get|\bg\+\+|node-gyp/.test(r.args))).toBe(false);
    const buildDir = last(build, "WORKDIR")!.args;
    const native = all(runtime, "COPY").find((c) => c.args.includes("better_sqlite3.node"));
    expect(native?.args).toBe(
      `--from=build ${buildDir}/node_modules/better-sqlite3/build/Release/better_sqlite3.node node_modules/better-sqlite3/build/Release/`,
    );
  });

  it("keeps the default SQLite file in a volume the node user can write", () => {
    expect(runtimeEnv.get("QML_STORAGE")).toBe("sqlite");
    const dataDir = dirname(runtimeEnv.get("QML_SQLITE_PATH")!);
    expect(dataDir.startsWith(`${last(runtime, "WORKDIR")!.args}/`)).toBe(true);
    expect(execForm(last(runtime, "VOLUME")!.args)).toEqual([dataDir]);
    expect(all(runtime, "RUN").some((r) => r.args.includes(`mkdir -p ${dataDir}`) && r.args.includes(`chown node:node ${dataDir}`))).toBe(true);
  });

  it("runs as the non-root node user, exposes PORT, and checks /healthz", () => {
    expect(last(runtime, "USER")!.args).toBe("node");
    const port = runtimeEnv.get("PORT");
    expect(last(runtime, "EXPOSE")!.args).toBe(port);
    const hc = last(runtime, "HEALTHCHECK")!.args;
    const cmd = execForm(hc.replace(/^(--\S+\s+)*CMD\s+/, ""));
    expect(cmd[0]).toBe("node");
    expect(cmd.join(" ")).toContain("/healthz");
    // Beyond loopback, or probes from outside the container never reach it.
    expect(runtimeEnv.get("QML_HOST")).toBe("0.0.0.0");
  });

  it("sets only variables the server reads, with values it accepts", () => {
    for (const name of runtimeEnv.keys()) expect(SERVER_VARS.has(name) || RUNTIME_VARS.has(name), name).toBe(true);
    expect(() => loadEnvConfig(Object.fromEntries(runtimeEnv))).not.toThrow();
  });

  it("starts the compiled main.js of the Node runtime in exec form (Node gets the signals itself)", () => {
    const cmd = execForm(last(runtime, "CMD")!.args);
    expect(cmd).toEqual(["node", "dist/adapters/runtime/node/main.js"]);
    const source = join(REPO, cmd[1]!.replace(/^dist\//, "src/").replace(/\.js$/, ".ts"));
    expect(readFileSync(source, "utf8").startsWith("#!/usr/bin/env node\n")).toBe(true);
    expect(last(runtime, "WORKDIR")!.args).toBe("/app");
  });

  it("copies files that exist, and its ignore file lets them into the build context", () => {
    const ignore = read("Dockerfile.dockerignore")
      .split("\n")
      .map((l) => l.trim())
      .filter((l) => l && !l.startsWith("#"));
    expect(ignore[0]).toBe("*");
    const stages: Stage[] = file.stages;
    const sources = stages.flatMap((s) =>
      all(s, "COPY")
        .filter((c) => !c.args.startsWith("--from"))
        .flatMap((c) => c.args.split(" ").slice(0, -1)),
    );
    expect(sources.length).toBeGreaterThan(0);
    for (const src of sources) {
      expect(existsSync(join(REPO, src)), src).toBe(true);
      expect(
        ignore.some((l) => l === `!${src}` || l === `!${src}/`),
        `${src} is re-included in Dockerfile.dockerignore`,
      ).toBe(true);
    }
  });
});

describe("deploy/node/docker-compose.yml", () => {
  const compose = obj(parseYaml(read("docker-compose.yml")));
  const services = obj(compose.services);
  const qml = obj(services.qml);
  const environment = obj(qml.environment);
  const env = Object.fromEntries(Object.entries(environment).map(([k, v]) => [k, interpolate(String(v ?? ""), () => TOKEN)]));

  it("has PostgreSQL 16 with a volume and a health check", () => {
    const pg = obj(services.postgres);
    expect(pg.image).toMatch(/^postgres:16\b/);
    expect(list(pg.volumes).some((v) => String(v).endsWith(":/var/lib/postgresql/data"))).toBe(true);
    expect(list(obj(pg.healthcheck).test).join(" ")).toContain("pg_isready");
  });

  it("has Redis 7 with the append-only file on and no eviction", () => {
    const redis = obj(services.redis);
    expect(redis.image).toMatch(/^redis:7\b/);
    const cmd = list(redis.command).map(String).join(" ");
    expect(cmd).toContain("--appendonly yes");
    expect(cmd).toContain("--maxmemory-policy noeviction");
    expect(list(redis.volumes).some((v) => String(v).endsWith(":/data"))).toBe(true);
    expect(obj(redis.healthcheck).test).toBeDefined();
  });

  it("builds qml from the Dockerfile and waits for healthy stores", () => {
    const build = obj(qml.build);
    expect(existsSync(join(DEPLOY, String(build.context), String(build.dockerfile)))).toBe(true);
    expect(join(DEPLOY, String(build.context), String(build.dockerfile))).toBe(join(DEPLOY, "Dockerfile"));
    const deps = obj(qml.depends_on);
    expect(obj(deps.postgres).condition).toBe("service_healthy");
    expect(obj(deps.redis).condition).toBe("service_healthy");
  });

  it("gives the server only variables it reads, with values it accepts, the token from the env file", () => {
    for (const name of Object.keys(environment)) expect(SERVER_VARS.has(name), name).toBe(true);
    expect(() => loadEnvConfig(env)).not.toThrow();
    expect(loadEnvConfig(env)).toMatchObject({ storage: "postgres", host: "0.0.0.0" });
    expect(() => loadEnvConfig({ ...env, QML_STORAGE: "redis" })).not.toThrow();
    // Required, with no default: Compose refuses to start without it.
    expect(String(environment.QML_DASHBOARD_TOKEN)).toMatch(/^\$\{QML_DASHBOARD_TOKEN:\?[^}]+\}$/);
    const example = read(".env.example");
    expect(example).toMatch(/^QML_DASHBOARD_TOKEN=/m);
    for (const m of example.matchAll(/^#?\s*([A-Z][A-Z0-9_]*)=/gm)) {
      expect(read("docker-compose.yml").includes(`\${${m[1]}`), `${m[1]} from .env.example is used by docker-compose.yml`).toBe(true);
    }
  });

  it("mounts a volume on the SQLite file's folder, for QML_STORAGE=sqlite", () => {
    expect(loadEnvConfig({ ...env, QML_STORAGE: "sqlite" })).toMatchObject({ storage: "sqlite", sqlitePath: env.QML_SQLITE_PATH });
    const mounts = list(qml.volumes).map((v) => String(v).split(":"));
    expect(mounts).toContainEqual(["qmldata", dirname(env.QML_SQLITE_PATH!)]);
  });

  it("points the URLs at the bundled services and publishes the server's PORT", () => {
    expect(new URL(env.DATABASE_URL!).hostname).toBe("postgres");
    expect(new URL(env.REDIS_URL!).hostname).toBe("redis");
    const ports = list(qml.ports).map(String);
    expect(ports.some((p) => p.endsWith(`:${env.PORT}`))).toBe(true);
  });

  it("gives the drain its time before Docker's SIGKILL", () => {
    expect(durationMs(String(qml.stop_grace_period))).toBeGreaterThan(Number(env.QML_SHUTDOWN_TIMEOUT_MS));
  });

  it("declares the named volumes it uses", () => {
    const declared = Object.keys(obj(compose.volumes));
    const used = Object.values(services).flatMap((s) => (obj(s).volumes ? list(obj(s).volumes).map((v) => String(v).split(":")[0]!) : []));
    for (const v of used) expect(declared).toContain(v);
  });
});

describe("deploy/node/k8s", () => {
  const dir = join(DEPLOY, "k8s");
  const files = readdirSync(dir).filter((f) => f.endsWith(".yaml"));
  const docs = new Map(files.map((f) => [f, obj(parseYaml(readFileSync(join(dir, f), "utf8")))]));
  const ofKind = (kind: string) => [...docs.values()].filter((d) => d.kind === kind);
  const deployment = ofKind("Deployment")[0]!;
  const secret = ofKind("Secret")[0]!;
  const service = ofKind("Service")[0]!;
  const podSpec = obj(obj(obj(deployment.spec).template).spec);
  const container = obj(list(podSpec.containers)[0]);
  const envList = list(container.env).map(obj);
  const containerPorts = list(container.ports).map(obj);
  const namedPort = (p: unknown) => (typeof p === "number" ? p : Number(containerPorts.find((c) => c.name === p)?.containerPort));

  it("has a Deployment, a Secret, a Service, and a kustomization listing every manifest", () => {
    expect(deployment && secret && service).toBeTruthy();
    const kustomization = docs.get("kustomization.yaml")!;
    expect(new Set(list(kustomization.resources).map(String))).toEqual(new Set(files.filter((f) => f !== "kustomization.yaml")));
  });

  it("runs two replicas, non-root, with resource requests and limits", () => {
    expect(Number(obj(deployment.spec).replicas)).toBeGreaterThanOrEqual(2);
    const sc = obj(podSpec.securityContext);
    expect(sc.runAsNonRoot).toBe(true);
    // The image says `USER node`; the kubelet can only verify a numeric user.
    expect(Number(sc.runAsUser)).toBeGreaterThan(0);
    const resources = obj(container.resources);
    for (const k of ["requests", "limits"]) {
      expect(obj(resources[k]).cpu).toBeDefined();
      expect(obj(resources[k]).memory).toBeDefined();
    }
  });

  it("probes /readyz for readiness and /healthz for liveness, on the port the server listens on", () => {
    const port = Number(envList.find((e) => e.name === "PORT")!.value);
    const readiness = obj(obj(container.readinessProbe).httpGet);
    const liveness = obj(obj(container.livenessProbe).httpGet);
    expect(readiness.path).toBe("/readyz");
    expect(liveness.path).toBe("/healthz");
    expect(namedPort(readiness.port)).toBe(port);
    expect(namedPort(liveness.port)).toBe(port);
    const svcPort = obj(list(obj(service.spec).ports)[0]);
    expect(namedPort(svcPort.targetPort)).toBe(port);
    expect(obj(obj(service.spec).selector)).toEqual(obj(obj(obj(obj(deployment.spec).template).metadata).labels));
  });

  it("waits longer than the drain before SIGKILL", () => {
    const drainMs = Number(envList.find((e) => e.name === "QML_SHUTDOWN_TIMEOUT_MS")!.value);
    expect(Number(podSpec.terminationGracePeriodSeconds) * 1000).toBeGreaterThan(drainMs);
  });

  it("sets only variables the server reads, secrets from the Secret, and the placeholders fail closed", () => {
    const secretData = obj(secret.stringData);
    const env: Record<string, string> = {};
    for (const e of envList) {
      const name = String(e.name);
      expect(SERVER_VARS.has(name), name).toBe(true);
      if (e.value !== undefined) {
        env[name] = String(e.value);
        continue;
      }
      const from = obj(e.valueFrom);
      if (from.secretKeyRef) {
        const ref = obj(from.secretKeyRef);
        expect(ref.name).toBe(obj(secret.metadata).name);
        expect(Object.keys(secretData)).toContain(ref.key);
        env[name] = String(secretData[String(ref.key)]);
      } else {
        expect(obj(from.fieldRef).fieldPath).toBe("metadata.name");
        env[name] = "qml-5d8f7c9b6-x2x7k";
      }
    }
    expect(env.DATABASE_URL).toBeDefined();
    expect(() => loadEnvConfig(env)).toThrow(ConfigError);
    expect(() => loadEnvConfig(env)).toThrow(/QML_DASHBOARD_TOKEN/);
    expect(loadEnvConfig({ ...env, QML_DASHBOARD_TOKEN: TOKEN })).toMatchObject({ storage: "postgres", host: "0.0.0.0", serverId: "qml-5d8f7c9b6-x2x7k" });
  });
});

describe("deploy/node/k8s-sqlite", () => {
  const dir = join(DEPLOY, "k8s-sqlite");
  const files = readdirSync(dir).filter((f) => f.endsWith(".yaml"));
  const docs = new Map(files.map((f) => [f, obj(parseYaml(readFileSync(join(dir, f), "utf8")))]));
  const ofKind = (kind: string) => [...docs.values()].filter((d) => d.kind === kind);
  const set = ofKind("StatefulSet")[0]!;
  const secret = ofKind("Secret")[0]!;
  const service = ofKind("Service")[0]!;
  const spec = obj(set.spec);
  const podSpec = obj(obj(spec.template).spec);
  const container = obj(list(podSpec.containers)[0]);
  const envList = list(container.env).map(obj);
  const value = (name: string) => String(envList.find((e) => e.name === name)?.value);

  it("has a StatefulSet, a Secret, a Service, and a kustomization listing every manifest", () => {
    expect(set && secret && service).toBeTruthy();
    expect(new Set(list(docs.get("kustomization.yaml")!.resources).map(String))).toEqual(new Set(files.filter((f) => f !== "kustomization.yaml")));
    expect(obj(obj(service.spec).selector)).toEqual(obj(obj(spec.template).metadata).labels);
  });

  it("runs one replica on a persistent volume mounted where the SQLite file is, writable by the node user", () => {
    expect(spec.replicas).toBe(1);
    const mount = obj(list(container.volumeMounts)[0]);
    expect(mount.mountPath).toBe(dirname(value("QML_SQLITE_PATH")));
    const claim = obj(list(spec.volumeClaimTemplates)[0]);
    expect(obj(claim.metadata).name).toBe(mount.name);
    expect(list(obj(claim.spec).accessModes)).toEqual(["ReadWriteOnce"]);
    const sc = obj(podSpec.securityContext);
    expect(sc.runAsNonRoot).toBe(true);
    expect(sc.fsGroup).toBe(sc.runAsGroup);
    expect(obj(container.securityContext).readOnlyRootFilesystem).toBe(true);
  });

  it("probes, drains, and sets only variables the server reads; the placeholder fails closed", () => {
    expect(obj(obj(container.readinessProbe).httpGet).path).toBe("/readyz");
    expect(obj(obj(container.livenessProbe).httpGet).path).toBe("/healthz");
    expect(Number(podSpec.terminationGracePeriodSeconds) * 1000).toBeGreaterThan(Number(value("QML_SHUTDOWN_TIMEOUT_MS")));
    const secretData = obj(secret.stringData);
    const env: Record<string, string> = {};
    for (const e of envList) {
      const name = String(e.name);
      expect(SERVER_VARS.has(name), name).toBe(true);
      if (e.value !== undefined) env[name] = String(e.value);
      else if (obj(e.valueFrom).secretKeyRef) env[name] = String(secretData[String(obj(obj(e.valueFrom).secretKeyRef).key)]);
      else env[name] = "qml-0";
    }
    expect(() => loadEnvConfig(env)).toThrow(/QML_DASHBOARD_TOKEN/);
    expect(loadEnvConfig({ ...env, QML_DASHBOARD_TOKEN: TOKEN })).toMatchObject({ storage: "sqlite", sqlitePath: "/app/data/qml.db", host: "0.0.0.0" });
  });
});
