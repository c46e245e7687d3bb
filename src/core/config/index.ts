export { ServerConfig, type ResolvedServerConfig } from "./server-config.js";
export { bounds, check, describeIssue, type BoundName } from "./bounds.js";
