import { MemoryStorage } from "../../src/index.js";
import { runLambdaHandlerSuite } from "./handler-suite.js";

runLambdaHandlerSuite("memory", async (clock) => new MemoryStorage({ clock }));
