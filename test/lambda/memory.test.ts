import { Storage, memoryBackend } from "../../src/index.js";
import { runConsumerSuite } from "../serverless/consumer-suite.js";
import { lambdaHarness } from "./consumer-harness.js";
import { runLambdaHandlerSuite } from "./handler-suite.js";

runLambdaHandlerSuite("memory", async (clock) => new Storage(memoryBackend(), { clock }));
runConsumerSuite(
  "lambda/memory",
  lambdaHarness(async (clock) => new Storage(memoryBackend(), { clock })),
);
