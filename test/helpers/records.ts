/** The stored record of a job (times as epoch ms, lease fields included), read through the driver: what engine tests assert on. */
import type { JobRecord, Storage } from "../../src/index.js";

export async function record(storage: Storage, id: string): Promise<JobRecord | null> {
  return (await storage.driver.get([id]))[0] ?? null;
}
