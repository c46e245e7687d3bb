/** `qml/node`: the Node server (`npm start`, `qml-server`) and the dashboard on Node. */
export { loadEnvConfig, type NodeEnvConfig, type StorageKind, type DemoMode } from "./env.js";
export { startNodeServer, type DashboardMode, type NodeServerHandle, type StartNodeServerOptions } from "./node-server.js";
export type { ReadinessPhase, ReadinessReport } from "./readiness.js";
export type { RegisterWorkers, WorkersModuleContext } from "./workers-module.js";
export { DashboardServer, type DashboardAddress, type DashboardServerOptions } from "./dashboard-server.js";
