/**
 * The reference AWS deployment of qml:
 *
 *   EventBridge rate(1 minute) ──► Schedule function ──┐
 *   client / API enqueue ──► SQS wake-ups ──► Consumer function ──┼──► store (Postgres or Redis)
 *                               └─► dead-letter queue (after maxReceiveCount)
 *   Function URL ──► API function (dashboard + REST API, tokens required) ─┘
 *
 * - One bundle, three functions (Node 24, arm64), each with its own role,
 *   log group and timeout.
 * - SQS visibility timeout = 6 × the consumer's timeout (AWS's advice for
 *   Lambda event sources: a message is not redelivered while a batch that
 *   holds it may still run, retries included).
 * - The consumer reports partial batch failures, and its maximum
 *   concurrency caps how many containers (so how many store connections)
 *   the wake-ups can open at once.
 * - Credentials live in one Secrets Manager secret (created by you, not
 *   by this stack, so that it never passes through a template); each role
 *   may read that secret and nothing else.
 * - Least privilege: no managed policies; each role writes its own log
 *   group, reads the secret, sends to the wake-up queue, and (the
 *   consumer only) receives from it.
 * - The Function URL has auth type NONE because the app itself refuses
 *   every request without a valid token (bearer or session cookie); IAM
 *   auth would shut out browsers. Set `urlAuthType: AWS_IAM` for an API
 *   used only by signed clients.
 */
import { CfnOutput, Duration, RemovalPolicy, Stack, type StackProps } from "aws-cdk-lib";
import * as events from "aws-cdk-lib/aws-events";
import * as targets from "aws-cdk-lib/aws-events-targets";
import * as iam from "aws-cdk-lib/aws-iam";
import * as lambda from "aws-cdk-lib/aws-lambda";
import { SqsEventSource } from "aws-cdk-lib/aws-lambda-event-sources";
import * as logs from "aws-cdk-lib/aws-logs";
import * as secretsmanager from "aws-cdk-lib/aws-secretsmanager";
import * as sqs from "aws-cdk-lib/aws-sqs";
import type { Construct } from "constructs";
import { ConfigError } from "../../../src/core/errors.js";

export type QmlStorageKind = "postgres" | "redis";

export interface QmlStackProps extends StackProps {
  /** The bundled handler: a directory with `index.mjs` (see lib/bundle.ts). */
  code: lambda.Code;
  /** Name of the Secrets Manager secret with DATABASE_URL or the Redis URL/token, and QML_DASHBOARD_TOKEN. */
  secretName: string;
  storage: QmlStorageKind;
  /** Queues the functions run, in priority order (default ["default"]). */
  queues?: string[];
  /** Postgres driver on Lambda: pg (TCP, pool of `postgresMaxConnections`) or neon-http (no connection held). Default pg. */
  postgresDriver?: "pg" | "neon-http" | "neon-ws";
  /** Pool size per container with pg (default 2). */
  postgresMaxConnections?: number;
  /** Timeout of the schedule and consumer functions (default 5 minutes). Jobs that would not fit are left for later. */
  workerTimeout?: Duration;
  /** Timeout of the API function (default 30 s). */
  apiTimeout?: Duration;
  memorySize?: number;
  /** Receives before a wake-up goes to the dead-letter queue (default 5). */
  maxReceiveCount?: number;
  /** Most consumer containers at once (default 10; 2-1000). Bounds the store connections wake-ups can open. */
  consumerMaxConcurrency?: number;
  /** Messages per consumer invocation (default 10). */
  batchSize?: number;
  logRetention?: logs.RetentionDays;
  /** Default NONE: the app authenticates every request itself. */
  urlAuthType?: lambda.FunctionUrlAuthType;
  runtime?: lambda.Runtime;
}

type Role = "schedule" | "consumer" | "api";

export class QmlStack extends Stack {
  readonly queue: sqs.Queue;
  readonly deadLetterQueue: sqs.Queue;
  readonly scheduleFunction: lambda.Function;
  readonly consumerFunction: lambda.Function;
  readonly apiFunction: lambda.Function;
  readonly url: lambda.FunctionUrl;

  constructor(scope: Construct, id: string, props: QmlStackProps) {
    super(scope, id, props);
    const workerTimeout = props.workerTimeout ?? Duration.minutes(5);
    const apiTimeout = props.apiTimeout ?? Duration.seconds(30);
    const retention = props.logRetention ?? logs.RetentionDays.ONE_MONTH;
    const queues = props.queues ?? ["default"];
    for (const q of queues) if (!/^[A-Za-z0-9_.-]{1,64}$/.test(q)) throw new ConfigError(`invalid queue name ${JSON.stringify(q)}`, { scope: "aws" });

    this.deadLetterQueue = new sqs.Queue(this, "DeadLetterQueue", {
      retentionPeriod: Duration.days(14),
      encryption: sqs.QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
    });
    this.queue = new sqs.Queue(this, "WakeUpQueue", {
      visibilityTimeout: Duration.seconds(workerTimeout.toSeconds() * 6),
      // A wake-up older than a day has long been covered by the scheduled ticks.
      retentionPeriod: Duration.days(1),
      deadLetterQueue: { queue: this.deadLetterQueue, maxReceiveCount: props.maxReceiveCount ?? 5 },
      encryption: sqs.QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
    });

    const secret = secretsmanager.Secret.fromSecretNameV2(this, "Secret", props.secretName);

    const environment: Record<string, string> = {
      QML_STORAGE: props.storage,
      QML_SECRET_ID: props.secretName,
      QML_QUEUE_URL: this.queue.queueUrl,
      QML_QUEUES: queues.join(","),
      NODE_OPTIONS: "--enable-source-maps",
    };
    if (props.storage === "postgres") {
      environment.QML_POSTGRES_DRIVER = props.postgresDriver ?? "pg";
      environment.QML_POSTGRES_MAX_CONNECTIONS = String(props.postgresMaxConnections ?? 2);
    }

    const fn = (role: Role, handler: string, timeout: Duration, description: string): lambda.Function => {
      const name = role[0]!.toUpperCase() + role.slice(1);
      const logGroup = new logs.LogGroup(this, `${name}Logs`, { retention, removalPolicy: RemovalPolicy.DESTROY });
      // A role of our own: the default one carries AWSLambdaBasicExecutionRole, whose log rights cover every log group.
      const execRole = new iam.Role(this, `${name}Role`, {
        assumedBy: new iam.ServicePrincipal("lambda.amazonaws.com"),
        description: `qml ${role} function`,
      });
      logGroup.grantWrite(execRole);
      secret.grantRead(execRole);
      // Jobs enqueued here (API, workers enqueuing follow-ups) wake a consumer.
      this.queue.grantSendMessages(execRole);
      return new lambda.Function(this, `${name}Function`, {
        description,
        runtime: props.runtime ?? lambda.Runtime.NODEJS_24_X,
        architecture: lambda.Architecture.ARM_64,
        code: props.code,
        handler,
        timeout,
        memorySize: props.memorySize ?? 512,
        role: execRole,
        logGroup,
        loggingFormat: lambda.LoggingFormat.JSON,
        environment,
      });
    };

    this.scheduleFunction = fn("schedule", "index.scheduleHandler", workerTimeout, "qml: promote, reclaim, recurring, then run jobs (every minute)");
    this.consumerFunction = fn("consumer", "index.sqsHandler", workerTimeout, "qml: run jobs on SQS wake-ups");
    this.apiFunction = fn("api", "index.httpHandler", apiTimeout, "qml: dashboard and REST API");

    new events.Rule(this, "TickRule", {
      description: "qml tick",
      schedule: events.Schedule.rate(Duration.minutes(1)),
      // A missed tick is replaced by the next one a minute later: no retries piling up behind a slow store.
      targets: [new targets.LambdaFunction(this.scheduleFunction, { retryAttempts: 0, maxEventAge: Duration.minutes(1) })],
    });

    this.consumerFunction.addEventSource(
      new SqsEventSource(this.queue, {
        batchSize: props.batchSize ?? 10,
        maxBatchingWindow: Duration.seconds(1),
        reportBatchItemFailures: true,
        maxConcurrency: props.consumerMaxConcurrency ?? 10,
      }),
    );

    this.url = this.apiFunction.addFunctionUrl({
      authType: props.urlAuthType ?? lambda.FunctionUrlAuthType.NONE,
      invokeMode: lambda.InvokeMode.BUFFERED,
    });

    new CfnOutput(this, "DashboardUrl", { value: this.url.url, description: "Dashboard and API (token required)" });
    new CfnOutput(this, "WakeUpQueueUrl", { value: this.queue.queueUrl, description: "Give this to clients: createSqsNotifier({ queueUrl })" });
    new CfnOutput(this, "DeadLetterQueueUrl", { value: this.deadLetterQueue.queueUrl });
  }
}
