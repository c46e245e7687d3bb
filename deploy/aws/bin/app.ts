/**
 * The CDK app. Bundles the Lambda entry with esbuild, then synthesizes the
 * stack. Offline: nothing here calls AWS.
 *
 *   npm run synth:aws                                       # synth to a temp dir, print the template path
 *   npx aws-cdk@2 deploy --app "npx tsx deploy/aws/bin/app.ts" -c qml:secretName=qml/prod
 *
 * Settings (context `-c key=value`, or environment):
 *   qml:secretName  / QML_SECRET_NAME   default "qml/production"
 *   qml:storage     / QML_STORAGE       postgres (default) | redis
 *   qml:queues      / QML_QUEUES        comma-separated, priority order (default "default")
 *   qml:pgDriver    / QML_POSTGRES_DRIVER  pg (default) | neon-http | neon-ws
 *   qml:stackName   / QML_STACK_NAME    default "Qml"
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { App } from "aws-cdk-lib";
import * as lambda from "aws-cdk-lib/aws-lambda";
import { ConfigError } from "../../../src/core/errors.js";
import { bundleHandler } from "../lib/bundle.js";
import { QmlStack, type QmlStorageKind } from "../lib/qml-stack.js";

// Run by the cdk CLI, CDK_OUTDIR says where to write; run by hand (npm run synth:aws), a temp dir does.
const standalone = !process.env.CDK_OUTDIR;
const outdir = standalone ? mkdtempSync(join(tmpdir(), "qml-cdk.out-")) : undefined;
const app = new App(outdir ? { outdir } : {});
const setting = (key: string, envName: string, def: string): string => String(app.node.tryGetContext(key) ?? process.env[envName] ?? def);

const storage = setting("qml:storage", "QML_STORAGE", "postgres");
if (storage !== "postgres" && storage !== "redis") throw new ConfigError(`qml:storage must be postgres or redis; got ${storage}`, { scope: "aws" });
const pgDriver = setting("qml:pgDriver", "QML_POSTGRES_DRIVER", "pg");
if (!["pg", "neon-http", "neon-ws"].includes(pgDriver))
  throw new ConfigError(`qml:pgDriver must be pg, neon-http or neon-ws; got ${pgDriver}`, { scope: "aws" });

const bundle = await bundleHandler();
const stack = new QmlStack(app, setting("qml:stackName", "QML_STACK_NAME", "Qml"), {
  code: lambda.Code.fromAsset(bundle.dir),
  secretName: setting("qml:secretName", "QML_SECRET_NAME", "qml/production"),
  storage: storage as QmlStorageKind,
  queues: setting("qml:queues", "QML_QUEUES", "default")
    .split(",")
    .map((q) => q.trim())
    .filter(Boolean),
  postgresDriver: pgDriver as "pg" | "neon-http" | "neon-ws",
  env: { account: process.env.CDK_DEFAULT_ACCOUNT, region: process.env.CDK_DEFAULT_REGION },
});
const assembly = app.synth();
// The asset was copied into the cloud assembly; the bundle dir is no longer needed.
rmSync(bundle.dir, { recursive: true, force: true });
if (standalone) {
  const template = join(assembly.directory, stack.templateFile);
  console.log(`[qml] synthesized ${stack.stackName} (${storage}, bundle ${(bundle.bytes / 1024).toFixed(0)} KiB)`);
  console.log(`[qml] template: ${template}`);
  console.log(`[qml] cloud assembly: ${assembly.directory} (a temp dir; delete it when done)`);
}
