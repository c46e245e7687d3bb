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
export { LiveFeed, type LiveError, type LiveSnapshot, type RecentJob } from "./live.js";
export { HttpProblem, problemResponse, toProblem, type FieldIssue, type Problem } from "./problem.js";
