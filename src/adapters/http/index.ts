/** qml/http: the dashboard and REST API as one hono app, for every runtime. Web Standards only. */
export { createApp, type AppEnv, type AppOptions } from "./app.js";
export {
  Authenticator,
  SESSION_COOKIE,
  isLoopbackHost,
  secretsEqual,
  type AuthOptions,
  type OpenAuthOptions,
  type Principal,
  type Role,
  type TokenAuthOptions,
} from "./auth.js";
export { METRICS_CONTENT_TYPE, MetricsEndpoint, type MetricsOptions } from "./metrics.js";
export { LiveFeed, type LiveError, type LiveFrame, type LiveSnapshot, type RecentJob } from "./live.js";
export { HttpProblem, problemResponse, toProblem, type FieldIssue, type Problem } from "./problem.js";
export { throttleOption, type ThrottleOptions } from "./throttle.js";
