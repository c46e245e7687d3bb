import { afterAll } from "vitest";
import { Storage } from "../../src/index.js";
import { SqliteConfig, sqliteBackend } from "../../src/adapters/storage/sqlite/index.js";
import { TempFiles } from "../sqlite/helpers.js";
import { runStorageConformance } from "./conformance.js";
import { runKvConformance } from "./kv-conformance.js";

const files = new TempFiles();
afterAll(() => files.removeAll());

runStorageConformance("sqlite/better-sqlite3", async (clock) => new Storage(sqliteBackend(new SqliteConfig(files.next()).withAutoMigrate(true)), { clock }));
runKvConformance("sqlite/better-sqlite3", async (clock) => new Storage(sqliteBackend(new SqliteConfig(files.next()).withAutoMigrate(true)), { clock }));
