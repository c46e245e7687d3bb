/**
 * `qml/lambda`: the AWS Lambda runtime (handlers) and the SQS notifier for
 * clients. Signing, the AWS JSON client and the wake-up format are
 * internal; the deployment in deploy/aws reads its secret through
 * `./secrets.js` directly.
 */
export {
  createLambdaHandlers,
  type HttpHandler,
  type HttpResult,
  type LambdaHandlers,
  type LambdaHandlersOptions,
  type LambdaHttpOptions,
  type ScheduleHandler,
  type SqsHandler,
} from "./handlers.js";
export { createSqsNotifier, type SqsNotifierOptions, type SqsSenderOptions } from "./sqs-notifier.js";
export type { AwsCredentials, CredentialsSource } from "./aws.js";
export { configFromEnv, SERVERLESS_ENV_VARS, type ServerlessConfig, type ServerlessEnvConfig } from "../serverless/index.js";
