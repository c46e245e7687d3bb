import { Storage, memoryBackend } from "../../src/index.js";
import { runStorageConformance } from "./conformance.js";
import { runKvConformance } from "./kv-conformance.js";

runStorageConformance("memory", async (clock) => new Storage(memoryBackend(), { clock }));
runKvConformance("memory", async (clock) => new Storage(memoryBackend(), { clock }));
