export { loadEnvConfig, ENV_VARS, type NodeEnvConfig, type StorageKind, type DemoMode } from "./env.js";
export {
  startNodeServer,
  createNodeApp,
  dashboardAuth,
  type DashboardMode,
  type NodeServerHandle,
  type StartNodeServerOptions,
} from "./node-server.js";
export { Readiness, type ReadinessOptions, type ReadinessPhase, type ReadinessReport } from "./readiness.js";
export { loadWorkersModule, workersModuleSpecifier, type RegisterWorkers, type WorkersModuleContext } from "./workers-module.js";
export { registerDemoWorkers, seedDemoJobs, startDemoProducer } from "./demo.js";
export { storageFromEnv } from "./storage-from-env.js";
export { DashboardServer, type DashboardServerOptions } from "../../http/node.js";
