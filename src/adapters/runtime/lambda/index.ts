/** `qml/lambda`: the AWS Lambda runtime (handlers) and the SQS notifier for clients. */
export {
  createLambdaHandlers,
  type LambdaHandlers,
  type LambdaHandlersOptions,
  type LambdaHttpOptions,
  type ScheduleHandler,
  type SqsHandler,
  type HttpHandler,
  type HttpResult,
} from "./handlers.js";
export {
  SqsNotifier,
  createSqsNotifier,
  createSqsSender,
  regionOfQueueUrl,
  type SqsSender,
  type SqsSenderOptions,
  type SqsNotifierOptions,
  type SqsBatchEntry,
  type SqsBatchResult,
} from "./sqs-notifier.js";
export { encodeWakeUp, decodeWakeUp, MAX_IDS_PER_MESSAGE, type WakeUpMessage } from "./wake-up.js";
export { getSecretJson, getSecretString, type SecretOptions } from "./secrets.js";
export { AwsRequestError, awsJsonRequest, envCredentials, envEndpoint, envRegion, type AwsJsonCall, type CredentialsSource, type FetchLike } from "./aws-json.js";
export { signRequest, signingKey, sha256Hex, amzDate, type AwsCredentials, type SignRequest, type SignedRequest } from "./sigv4.js";
