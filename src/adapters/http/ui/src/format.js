// Job states and how values read on the page: counts, relative times, JSON.

export const STATES = ["enqueued", "processing", "scheduled", "awaiting_retry", "awaiting", "succeeded", "failed", "deleted"];
export const LABEL = {
  enqueued: "Enqueued",
  processing: "Processing",
  scheduled: "Scheduled",
  awaiting_retry: "Awaiting retry",
  awaiting: "Awaiting",
  succeeded: "Succeeded",
  failed: "Failed",
  deleted: "Deleted",
};
export const FINISHED = ["succeeded", "failed", "deleted"];

const nf = new Intl.NumberFormat();
export function num(n) {
  return nf.format(Number(n) || 0);
}

export function shortId(id) {
  const s = String(id);
  return s.length > 13 ? `${s.slice(0, 8)}…${s.slice(-4)}` : s;
}

export function ago(iso) {
  if (!iso) return "—";
  const t = typeof iso === "number" ? iso : Date.parse(iso);
  if (!Number.isFinite(t)) return "—";
  const d = Math.round((Date.now() - t) / 1000);
  const a = Math.abs(d);
  let s;
  if (a < 5) return d >= 0 ? "just now" : "now";
  if (a < 60) s = `${a}s`;
  else if (a < 3600) s = `${Math.floor(a / 60)}m`;
  else if (a < 86400) s = `${Math.floor(a / 3600)}h ${Math.floor((a % 3600) / 60)}m`;
  else s = `${Math.floor(a / 86400)}d`;
  return d >= 0 ? `${s} ago` : `in ${s}`;
}

export function absTime(iso) {
  if (!iso) return "—";
  const d = new Date(iso);
  return `${d.toLocaleString()} (${ago(iso)})`;
}

export function hhmm(ms, withDay) {
  const d = new Date(ms);
  const t = d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  return withDay ? `${d.toLocaleDateString([], { weekday: "short" })} ${t}` : t;
}

export function json(v) {
  try {
    return JSON.stringify(v, null, 2);
  } catch {
    return String(v);
  }
}

export function preview(v, max = 140) {
  let s;
  try {
    s = JSON.stringify(v);
  } catch {
    s = String(v);
  }
  if (s === undefined) return "";
  return s.length > max ? `${s.slice(0, max)}…` : s;
}
