// Addresses: the app's base URL (it may be mounted under a path), in-app
// hash links, and the query string of the current view.

/** The app's root: every request and link is relative to it. */
export const BASE = new URL(".", location.href);

export function qs(params) {
  const u = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== "") u.set(k, String(v));
  const s = u.toString();
  return s ? `?${s}` : "";
}

export function jobHref(id) {
  return `#/jobs/${encodeURIComponent(id)}`;
}

/** Rewrites the current view's query without a navigation. */
export function setQuery(path, params) {
  history.replaceState(null, "", `#${path}${qs(params)}`);
}
