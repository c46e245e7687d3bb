/**
 * The CDK stack, synthesized offline and checked with CDK assertions: every
 * resource, the IAM scope of each role, and the visibility-timeout /
 * function-timeout relation.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { App, Duration } from "aws-cdk-lib";
import { Match, Template } from "aws-cdk-lib/assertions";
import * as lambda from "aws-cdk-lib/aws-lambda";
import { afterAll, describe, expect, it } from "vitest";
import { QmlStack, type QmlStackProps } from "../../deploy/aws/lib/qml-stack.js";

// Synth output and the stand-in asset go to temp dirs, removed at the end.
const dirs: string[] = [];
function tempDir(prefix: string): string {
  const d = mkdtempSync(join(tmpdir(), prefix));
  dirs.push(d);
  return d;
}
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

// The real bundle is built and run in bundle.test.ts; here any asset will do.
const assetDir = tempDir("qml-asset-");
writeFileSync(join(assetDir, "index.mjs"), "export const scheduleHandler = () => {}, sqsHandler = () => {}, httpHandler = () => {};\n");

function synth(props: Partial<QmlStackProps> = {}): { template: Template; stack: QmlStack } {
  const app = new App({ outdir: tempDir("qml-cdk.out-") });
  const stack = new QmlStack(app, "QmlTest", {
    code: lambda.Code.fromAsset(assetDir),
    secretName: "qml/test",
    storage: "postgres",
    env: { account: "123456789012", region: "eu-west-1" },
    ...props,
  });
  return { template: Template.fromStack(stack), stack };
}

type Resources = Record<string, { Type: string; Properties: Record<string, any> }>;
type Statement = { Effect: string; Action: string | string[]; Resource: unknown; Principal?: unknown };

function logicalId(template: Template, type: string, props: object): string {
  const found = Object.keys(template.findResources(type, { Properties: props }));
  expect(found, `${type} matching ${JSON.stringify(props)}`).toHaveLength(1);
  return found[0]!;
}

function statementsOfRole(template: Template, roleId: string): Statement[] {
  const policies = template.findResources("AWS::IAM::Policy", { Properties: { Roles: [{ Ref: roleId }] } }) as Resources;
  return Object.values(policies).flatMap((p) => p.Properties.PolicyDocument.Statement as Statement[]);
}

const actions = (s: Statement) => (Array.isArray(s.Action) ? s.Action : [s.Action]);

describe("QmlStack", () => {
  const { template } = synth();
  const resources = template.toJSON().Resources as Resources;
  const fnId = (handler: string) => logicalId(template, "AWS::Lambda::Function", { Handler: handler });
  const schedule = fnId("index.scheduleHandler");
  const consumer = fnId("index.sqsHandler");
  const api = fnId("index.httpHandler");
  const queue = logicalId(template, "AWS::SQS::Queue", { RedrivePolicy: Match.anyValue() });
  const dlq = Object.keys(template.findResources("AWS::SQS::Queue")).find((k) => k !== queue)!;

  it("has exactly the resources of the design", () => {
    template.resourceCountIs("AWS::Lambda::Function", 3);
    template.resourceCountIs("AWS::SQS::Queue", 2);
    template.resourceCountIs("AWS::Lambda::EventSourceMapping", 1);
    template.resourceCountIs("AWS::Events::Rule", 1);
    template.resourceCountIs("AWS::Lambda::Url", 1);
    template.resourceCountIs("AWS::Logs::LogGroup", 3);
    template.resourceCountIs("AWS::IAM::Role", 3);
    // No secret is created: it is yours, made outside any template.
    template.resourceCountIs("AWS::SecretsManager::Secret", 0);
    template.hasOutput("DashboardUrl", {});
    template.hasOutput("WakeUpQueueUrl", {});
    template.hasOutput("DeadLetterQueueUrl", {});
  });

  it("functions: a supported Node that CI tests, on arm64, their own role and log group, configuration without credentials", () => {
    // 20 is past end of life; .ci/node-versions lists the versions CI runs the suite on besides 20.
    const tested = readFileSync(new URL("../../.ci/node-versions", import.meta.url), "utf8").match(/^\d+(?=\.)/gm) ?? [];
    for (const id of [schedule, consumer, api]) {
      const p = resources[id]!.Properties;
      const major = /^nodejs(\d+)\.x$/.exec(p.Runtime)?.[1];
      expect(Number(major)).toBeGreaterThanOrEqual(22);
      expect(tested).toContain(major);
      expect(p.Architectures).toEqual(["arm64"]);
      expect(p.Role["Fn::GetAtt"][0]).toMatch(/Role/);
      expect(p.LoggingConfig.LogGroup.Ref).toMatch(/Logs/);
      expect(p.Environment.Variables).toMatchObject({
        QML_STORAGE: "postgres",
        QML_SECRET_ID: "qml/test",
        QML_QUEUE_URL: { Ref: queue },
        QML_QUEUES: "default",
        QML_POSTGRES_DRIVER: "pg",
        QML_POSTGRES_MAX_CONNECTIONS: "2",
      });
      // Secrets come from Secrets Manager at run time, never from the template.
      expect(JSON.stringify(p.Environment.Variables)).not.toMatch(/DATABASE_URL|TOKEN|postgres:\/\//);
    }
    const roles = new Set([schedule, consumer, api].map((id) => resources[id]!.Properties.Role["Fn::GetAtt"][0]));
    const groups = new Set([schedule, consumer, api].map((id) => resources[id]!.Properties.LoggingConfig.LogGroup.Ref));
    expect(roles.size).toBe(3);
    expect(groups.size).toBe(3);
    expect(resources[schedule]!.Properties.Timeout).toBe(300);
    expect(resources[consumer]!.Properties.Timeout).toBe(300);
    expect(resources[api]!.Properties.Timeout).toBe(30);
  });

  it("log groups keep logs for a bounded time", () => {
    for (const g of Object.values(template.findResources("AWS::Logs::LogGroup")) as Resources[string][]) {
      expect(g.Properties.RetentionInDays).toBe(30);
    }
  });

  it("wake-up queue: visibility timeout at least 6 × the consumer's timeout, dead-letter queue after maxReceiveCount, encrypted, TLS only", () => {
    const q = resources[queue]!.Properties;
    expect(q.VisibilityTimeout).toBeGreaterThanOrEqual(6 * resources[consumer]!.Properties.Timeout);
    expect(q.RedrivePolicy).toEqual({ deadLetterTargetArn: { "Fn::GetAtt": [dlq, "Arn"] }, maxReceiveCount: 5 });
    expect(q.SqsManagedSseEnabled).toBe(true);
    expect(resources[dlq]!.Properties).toMatchObject({ MessageRetentionPeriod: 14 * 24 * 3600, SqsManagedSseEnabled: true });
    for (const target of [queue, dlq]) {
      template.hasResourceProperties("AWS::SQS::QueuePolicy", {
        Queues: [{ Ref: target }],
        PolicyDocument: {
          Statement: Match.arrayWith([Match.objectLike({ Effect: "Deny", Condition: { Bool: { "aws:SecureTransport": "false" } } })]),
        },
      });
    }
  });

  it("the relation holds for any worker timeout", () => {
    for (const minutes of [1, 2, 15]) {
      const { template: t } = synth({ workerTimeout: Duration.minutes(minutes) });
      const r = t.toJSON().Resources as Resources;
      const fn = Object.values(r).find((x) => x.Type === "AWS::Lambda::Function" && x.Properties.Handler === "index.sqsHandler")!;
      const q = Object.values(r).find((x) => x.Type === "AWS::SQS::Queue" && x.Properties.RedrivePolicy)!;
      expect(fn.Properties.Timeout).toBe(minutes * 60);
      expect(q.Properties.VisibilityTimeout).toBe(6 * minutes * 60);
    }
  });

  it("SQS event source: partial batch failures, bounded concurrency", () => {
    template.hasResourceProperties("AWS::Lambda::EventSourceMapping", {
      EventSourceArn: { "Fn::GetAtt": [queue, "Arn"] },
      FunctionName: { Ref: consumer },
      FunctionResponseTypes: ["ReportBatchItemFailures"],
      BatchSize: 10,
      MaximumBatchingWindowInSeconds: 1,
      ScalingConfig: { MaximumConcurrency: 10 },
    });
  });

  it("EventBridge rule: every minute, to the schedule function, no retries piling up", () => {
    template.hasResourceProperties("AWS::Events::Rule", {
      ScheduleExpression: "rate(1 minute)",
      State: "ENABLED",
      Targets: [Match.objectLike({ Arn: { "Fn::GetAtt": [schedule, "Arn"] }, RetryPolicy: { MaximumRetryAttempts: 0, MaximumEventAgeInSeconds: 60 } })],
    });
    template.hasResourceProperties("AWS::Lambda::Permission", {
      Action: "lambda:InvokeFunction",
      FunctionName: { "Fn::GetAtt": [schedule, "Arn"] },
      Principal: "events.amazonaws.com",
    });
  });

  it("Function URL on the API function; the app authenticates (auth type NONE is a choice, AWS_IAM possible)", () => {
    template.hasResourceProperties("AWS::Lambda::Url", { TargetFunctionArn: { "Fn::GetAtt": [api, "Arn"] }, AuthType: "NONE", InvokeMode: "BUFFERED" });
    const { template: iamOnly } = synth({ urlAuthType: lambda.FunctionUrlAuthType.AWS_IAM });
    iamOnly.hasResourceProperties("AWS::Lambda::Url", { AuthType: "AWS_IAM" });
  });

  describe("least privilege", () => {
    const roleOf = (fn: string) => resources[fn]!.Properties.Role["Fn::GetAtt"][0] as string;
    const logGroupOf = (fn: string) => resources[fn]!.Properties.LoggingConfig.LogGroup.Ref as string;
    const secretArn = { "Fn::Join": ["", ["arn:", { Ref: "AWS::Partition" }, ":secretsmanager:eu-west-1:123456789012:secret:qml/test-??????"]] };

    it("roles: assumed by Lambda only, no managed policies (AWSLambdaBasicExecutionRole would open every log group)", () => {
      for (const fn of [schedule, consumer, api]) {
        const role = resources[roleOf(fn)]!.Properties;
        expect(role.ManagedPolicyArns).toBeUndefined();
        expect(role.AssumeRolePolicyDocument.Statement).toEqual([
          { Action: "sts:AssumeRole", Effect: "Allow", Principal: { Service: "lambda.amazonaws.com" } },
        ]);
      }
    });

    it("each role: its own log group, the one secret, the wake-up queue; nothing else", () => {
      for (const fn of [schedule, consumer, api]) {
        const statements = statementsOfRole(template, roleOf(fn));
        for (const s of statements) {
          expect(s.Effect).toBe("Allow");
          const acts = actions(s);
          if (acts.some((a) => a.startsWith("logs:"))) {
            expect(acts.sort()).toEqual(["logs:CreateLogStream", "logs:PutLogEvents"]);
            expect(s.Resource).toEqual({ "Fn::GetAtt": [logGroupOf(fn), "Arn"] });
          } else if (acts.some((a) => a.startsWith("secretsmanager:"))) {
            expect(acts.sort()).toEqual(["secretsmanager:DescribeSecret", "secretsmanager:GetSecretValue"]);
            expect(s.Resource).toEqual(secretArn);
          } else {
            expect(acts.every((a) => a.startsWith("sqs:"))).toBe(true);
            expect(s.Resource).toEqual({ "Fn::GetAtt": [queue, "Arn"] });
          }
        }
        const all = statements.flatMap(actions);
        expect(all).toContain("sqs:SendMessage");
        expect(all).toContain("secretsmanager:GetSecretValue");
        expect(all).toContain("logs:PutLogEvents");
      }
    });

    it("only the consumer receives and deletes wake-ups", () => {
      const all = (fn: string) => statementsOfRole(template, roleOf(fn)).flatMap(actions);
      expect(all(consumer)).toEqual(expect.arrayContaining(["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility"]));
      for (const fn of [schedule, api]) expect(all(fn)).not.toContain("sqs:ReceiveMessage");
    });

    it("no Allow anywhere grants a wildcard action or a wildcard resource", () => {
      const policies = Object.values(template.findResources("AWS::IAM::Policy")) as Resources[string][];
      expect(policies.length).toBe(3);
      for (const p of policies) {
        for (const s of p.Properties.PolicyDocument.Statement as Statement[]) {
          for (const a of actions(s)) expect(a === "*" || a.endsWith(":*"), `action ${a}`).toBe(false);
          const res = Array.isArray(s.Resource) ? s.Resource : [s.Resource];
          for (const r of res) expect(r === "*", "resource *").toBe(false);
        }
      }
    });
  });

  it("redis: no postgres settings; bad queue names are refused at synth", () => {
    const { template: t } = synth({ storage: "redis", queues: ["critical", "default"] });
    const fns = Object.values(t.findResources("AWS::Lambda::Function")) as Resources[string][];
    for (const f of fns) {
      expect(f.Properties.Environment.Variables).toMatchObject({ QML_STORAGE: "redis", QML_QUEUES: "critical,default" });
      expect(f.Properties.Environment.Variables.QML_POSTGRES_DRIVER).toBeUndefined();
    }
    expect(() => synth({ queues: ["bad:queue"] })).toThrow(/invalid queue name/);
  });
});
