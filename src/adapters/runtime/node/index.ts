export { loadEnvConfig, ENV_VARS, type NodeEnvConfig, type StorageKind, type DemoMode } from "./env.js";
export { startNodeServer, createNodeApp, type NodeServerHandle, type StartNodeServerOptions } from "./node-server.js";
export { registerDemoWorkers, seedDemoJobs, startDemoProducer } from "./demo.js";
export { storageFromEnv } from "./storage-from-env.js";
