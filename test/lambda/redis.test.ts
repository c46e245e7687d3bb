/** The Lambda handlers on Redis: over TCP (ioredis) and over Upstash's REST API (the real client against the local gateway). */
import { describeWithService, serviceUp } from "../helpers/services.js";
import { prefixes, redisStoragesFor } from "../redis/helpers.js";
import { runConsumerSuite } from "../serverless/consumer-suite.js";
import { lambdaHarness } from "./consumer-harness.js";
import { runLambdaHandlerSuite } from "./handler-suite.js";

const keys = prefixes("lambda");

describeWithService("redis", await serviceUp("redis"), "lambda handlers on redis", () => {
  const open = redisStoragesFor(keys);
  runLambdaHandlerSuite("redis (ioredis, TCP)", (clock) => open("tcp", clock));
  runLambdaHandlerSuite("redis (@upstash/redis, REST gateway)", (clock) => open("upstash", clock));
  runConsumerSuite(
    "lambda/redis (ioredis)",
    lambdaHarness((clock) => open("tcp", clock)),
  );
  runConsumerSuite(
    "lambda/redis (upstash)",
    lambdaHarness((clock) => open("upstash", clock)),
  );
});
