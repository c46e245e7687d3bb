/**
 * The storage conformance suite, unchanged, on the Redis backend over the
 * Upstash REST driver inside workerd: the scripts and the driver as a
 * Worker runs them, against the local Upstash gateway in front of the real
 * Redis (global-setup.ts), one key prefix per storage (backends.ts,
 * `makeStorage("upstash")`).
 */
import { runStorageConformance } from "../storage/conformance.js";
import { runKvConformance } from "../storage/kv-conformance.js";
import { makeStorage, suiteFor } from "./backends.js";

suiteFor("upstash", "redis (upstash) in workerd", () => {
  runStorageConformance("redis (upstash, workerd)", (clock) => makeStorage("upstash", clock));
  runKvConformance("redis (upstash, workerd)", (clock) => makeStorage("upstash", clock));
});
