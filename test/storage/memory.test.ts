import { MemoryStorage } from "../../src/index.js";
import { runStorageConformance } from "./conformance.js";

runStorageConformance("memory", async (clock) => new MemoryStorage({ clock }));
