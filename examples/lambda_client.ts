/**
 * Enqueue from anywhere, run on AWS Lambda: a client writes the job to the
 * store the deployment uses and sends an SQS wake-up, so the consumer
 * function starts it within about a second instead of at the next minute.
 *
 *   QML_QUEUE_URL=https://sqs.eu-west-1.amazonaws.com/123456789012/Qml-WakeUpQueue… \
 *   DATABASE_URL=postgres://… \
 *   AWS_ACCESS_KEY_ID=… AWS_SECRET_ACCESS_KEY=… [AWS_SESSION_TOKEN=…] \
 *   npx tsx examples/lambda_client.ts ada@example.com
 *
 * QML_QUEUE_URL is the stack's `WakeUpQueueUrl` output. The credentials need
 * only `sqs:SendMessage` on that queue. Inside a Lambda, the function's own
 * credentials are used and nothing needs setting.
 */
import { Storage, createClient } from "../src/index.js";
import { createSqsNotifier } from "../src/adapters/runtime/lambda/index.js";
import { PostgresConfig, postgresBackend } from "../src/adapters/storage/postgres/index.js";

const queueUrl = process.env.QML_QUEUE_URL;
const databaseUrl = process.env.DATABASE_URL;
if (!queueUrl || !databaseUrl) {
  console.error("set QML_QUEUE_URL (the stack's WakeUpQueueUrl output) and DATABASE_URL (the deployment's database); see the comment at the top");
  process.exit(2);
}

// The store the deployment uses (same schema); NOTIFY off: the wake-up goes over SQS.
const storage = new Storage(postgresBackend(new PostgresConfig().withDatabaseUrl(databaseUrl).withMaxConnections(1).withNotify(false)));
const client = createClient({ storage, notifier: createSqsNotifier({ queueUrl }) });

// Returns once the wake-up is sent: one message per enqueue.
const id = await client.enqueue("send_email", [process.argv[2] ?? "ada@example.com"]);
console.log(`enqueued ${id}; a consumer is being woken`);
await storage.close();
