/** Picks the storage `npm start` runs on, from the environment. */
import { ConfigError, MemoryStorage, type Storage } from "../../../index.js";
import type { NodeEnvConfig } from "./env.js";

export async function storageFromEnv(cfg: NodeEnvConfig): Promise<Storage> {
  switch (cfg.storage) {
    case "memory":
      return new MemoryStorage();
    default:
      throw new ConfigError(`QML_STORAGE=${cfg.storage} is not available in this build`);
  }
}
