// The REST API client: JSON in and out, the session's CSRF token on every
// mutation, problem documents turned into ApiError, and back to the login
// page when the session ends.
import { app } from "./state.js";
import { BASE } from "./url.js";

export class ApiError extends Error {
  constructor(status, detail, problem) {
    super(detail);
    this.status = status;
    this.problem = problem;
  }
}

export async function api(method, path, body) {
  const headers = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (method !== "GET" && app.session && app.session.csrfToken) headers["X-CSRF-Token"] = app.session.csrfToken;
  const res = await fetch(new URL(path, BASE), {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    credentials: "same-origin",
    cache: "no-store",
  });
  if (res.status === 401) {
    location.assign(new URL("login", BASE).href);
    throw new ApiError(401, "your session ended; log in again");
  }
  const type = res.headers.get("content-type") || "";
  const data = type.includes("json") ? await res.json().catch(() => null) : null;
  if (!res.ok) throw new ApiError(res.status, (data && data.detail) || `request failed (HTTP ${res.status})`, data);
  return data;
}
