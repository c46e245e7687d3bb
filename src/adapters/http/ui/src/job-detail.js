// One job: its fields, durable steps, history, last error, arguments,
// result and metadata, with the actions its state allows. Reloaded when the live feed
// shows it changed.
import { api } from "./api.js";
import { clear, h } from "./dom.js";
import { FINISHED, LABEL, STATES, absTime, ago, json, preview, shortId } from "./format.js";
import { qs } from "./url.js";
import { actionButton, badge, confirmButton, fail, toast } from "./widgets.js";

export function jobView(id) {
  const el = h("div", null, h("div", { class: "loading" }, "Loading job…"));
  let job = null;
  let flow = null;
  let busy = false;
  let lastSeen = "";

  async function load() {
    if (busy) return;
    busy = true;
    try {
      const data = await api("GET", `api/jobs/${encodeURIComponent(id)}`);
      job = data.job;
      lastSeen = job.updatedAt;
      flow = await api("GET", `api/jobs/${encodeURIComponent(id)}/flow`);
      render();
    } catch (e) {
      if (e.status === 404) {
        clear(el);
        el.appendChild(h("div", { class: "empty" }, "This job does not exist (it may have been pruned). ", h("a", { href: "#/jobs" }, "Back to jobs")));
      } else fail(e);
    } finally {
      busy = false;
    }
  }

  async function act(action) {
    try {
      const data = await api("POST", `api/jobs/${encodeURIComponent(id)}/${action}`);
      job = data.job;
      toast(
        action === "retry" ? "Job requeued for another try." : action === "requeue" ? "Job enqueued." : action === "cancel" ? "Job cancelled." : "Job deleted.",
      );
      render();
    } catch (e) {
      fail(e);
    }
  }

  function render() {
    const j = job;
    clear(el);
    const actions = h("div", { class: "page-actions" });
    if (j.state === "failed" || j.state === "awaiting_retry") actions.appendChild(actionButton("Retry", () => act("retry"), "btn-primary"));
    if (j.state !== "processing" && j.state !== "enqueued" && j.state !== "awaiting")
      actions.appendChild(actionButton(j.state === "scheduled" ? "Run now" : "Requeue", () => act("requeue")));
    if (["scheduled", "enqueued", "processing", "awaiting_retry", "awaiting"].includes(j.state))
      actions.appendChild(confirmButton("Cancel", "Cancel this job?", () => act("cancel"), "btn-cancel"));
    if (j.state !== "deleted") actions.appendChild(confirmButton("Delete", "Delete this job?", () => act("delete")));

    const props = h("dl", { class: "props" });
    const prop = (k, v) => {
      if (v === undefined || v === null || v === "") return;
      props.appendChild(h("dt", null, k));
      props.appendChild(h("dd", null, v));
    };
    prop("Id", h("span", { class: "mono" }, j.id));
    prop("Queue", h("a", { href: `#/jobs${qs({ queue: j.queue })}` }, j.queue));
    prop("Priority", String(j.priority));
    prop("Attempts", `${j.attempts} of ${j.maxAttempts}`);
    prop("Created", absTime(j.createdAt));
    prop("Updated", absTime(j.updatedAt));
    prop(j.state === "scheduled" || j.state === "awaiting_retry" ? "Runs at" : "Run at", absTime(j.runAt));
    if (j.finishedAt) prop("Finished", absTime(j.finishedAt));
    if (j.leaseOwner) prop("Lease", `${j.leaseOwner} until ${new Date(j.leaseUntil).toLocaleTimeString()}`);
    if (j.uniqueKey) prop("Unique key", h("span", { class: "mono" }, j.uniqueKey));
    if (j.concurrency)
      prop(
        "Concurrency",
        h("span", { "data-role": "concurrency" }, h("span", { class: "mono" }, j.concurrency.key), ` · at most ${j.concurrency.limit} at once`),
      );
    if (j.rateLimit)
      prop(
        "Rate limit",
        h("span", { "data-role": "rate-limit" }, h("span", { class: "mono" }, j.rateLimit.key), ` · ${j.rateLimit.limit} per ${j.rateLimit.interval} ms`),
      );
    if (j.timeout) prop("Timeout", `${j.timeout} ms`);
    if (j.retry) prop("Retry policy", h("span", { class: "mono" }, preview(j.retry, 200)));
    const origin = recurringOrigin(j.metadata);
    if (origin)
      prop(
        "Recurring",
        h(
          "span",
          { "data-role": "recurring-origin" },
          h("a", { href: "#/recurring", class: "mono" }, origin.id),
          origin.manual ? " · triggered by hand" : origin.slot ? ` · slot ${absTime(origin.slot)}` : "",
        ),
      );

    const history = h("ol", { class: "timeline" });
    for (const e of [...j.history].reverse()) {
      const s = STATES.includes(e.state) ? e.state : "deleted";
      history.appendChild(
        h(
          "li",
          { class: `tl-item s-${s}` },
          h("span", { class: "tl-dot" }),
          h(
            "div",
            { class: "tl-head" },
            h("span", { class: "tl-state" }, LABEL[e.state] || e.state),
            h("time", { class: "tl-time", datetime: e.at, title: new Date(e.at).toLocaleString() }, `${new Date(e.at).toLocaleTimeString()} · ${ago(e.at)}`),
          ),
          e.reason ? h("div", { class: "tl-reason" }, e.reason) : null,
          e.worker ? h("div", { class: "tl-worker" }, e.worker) : null,
        ),
      );
    }

    el.appendChild(h("div", { class: "crumbs" }, h("a", { href: "#/jobs" }, "Jobs"), " / ", h("span", { class: "mono" }, shortId(j.id))));
    el.appendChild(
      h(
        "header",
        { class: "job-head" },
        h(
          "div",
          null,
          h("h1", { "data-role": "job-name" }, j.name),
          h("div", { class: "job-meta" }, badge(j.state), h("span", null, "queue ", j.queue), h("span", { class: "mono" }, j.id)),
        ),
        actions,
      ),
    );
    el.appendChild(
      h(
        "div",
        { class: "grid-detail" },
        h("section", { class: "panel" }, h("div", { class: "panel-head" }, h("h2", null, "Details")), props),
        h(
          "section",
          { class: "panel" },
          h("div", { class: "panel-head" }, h("h2", null, "History"), h("span", { class: "hint" }, `${j.history.length} transitions, newest first`)),
          history,
        ),
      ),
    );
    if (j.steps && j.steps.length > 0) el.appendChild(stepsPanel(j));
    if (j.error) {
      el.appendChild(
        h(
          "section",
          { class: "panel error-panel" },
          h("div", { class: "panel-head" }, h("h2", null, "Last error"), j.error.code ? h("span", { class: "hint mono" }, j.error.code) : null),
          h("div", { class: "error-title", "data-role": "error-message" }, `${j.error.name}: ${j.error.message}`),
          j.error.stack ? h("pre", { class: "stack", "data-role": "error-stack" }, j.error.stack) : null,
        ),
      );
    }
    el.appendChild(
      h(
        "section",
        { class: "panel" },
        h("div", { class: "panel-head" }, h("h2", null, "Arguments")),
        h("pre", { class: "code", "data-role": "arguments" }, json(j.arguments)),
      ),
    );
    if (j.result !== undefined && j.result !== null)
      el.appendChild(h("section", { class: "panel" }, h("div", { class: "panel-head" }, h("h2", null, "Result")), h("pre", { class: "code" }, json(j.result))));
    if (j.progress !== undefined && j.progress !== null)
      el.appendChild(
        h("section", { class: "panel" }, h("div", { class: "panel-head" }, h("h2", null, "Progress")), h("pre", { class: "code" }, json(j.progress))),
      );
    if (flow && (flow.tree.children.length > 0 || flow.neededBy.length > 0)) el.appendChild(flowPanel(j, flow));
    if (j.metadata && Object.keys(j.metadata).length > 0)
      el.appendChild(
        h("section", { class: "panel" }, h("div", { class: "panel-head" }, h("h2", null, "Metadata")), h("pre", { class: "code" }, json(j.metadata))),
      );
  }

  function onLive(snap) {
    if (!job) return;
    const r = snap.recent.find((x) => x.id === id);
    if ((r && r.updatedAt !== lastSeen) || !FINISHED.includes(job.state)) load();
  }

  load();
  return { el, nav: "jobs", onLive };
}

/**
 * The recurring job a firing came from: the scheduler and the manual
 * trigger both write `recurringId` (the trigger adds `trigger: "manual"`,
 * the scheduler the `slot`).
 */
function recurringOrigin(metadata) {
  const id = metadata && metadata.recurringId;
  if (typeof id !== "string" || id === "") return null;
  return { id, manual: metadata.trigger === "manual", slot: typeof metadata.slot === "string" ? metadata.slot : null };
}

const STEP_KIND = { run: "run", sleep: "sleep", wait: "wait for event" };
const STEP_STATUS = { completed: "succeeded", waiting: "scheduled", failed: "failed" };

/** Milliseconds as a short duration: "850 ms", "12.4 s", "3 min". */
function duration(ms) {
  if (ms < 1000) return `${ms} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)} s`;
  return `${Math.round(ms / 60_000)} min`;
}

/** What a step did or waits for, in words. */
function stepDetail(s) {
  if (s.kind === "sleep") return s.status === "completed" ? "slept" : `until ${absTime(new Date(s.until).toISOString())}`;
  if (s.kind === "wait") {
    const what = `event ${s.event}${s.match ? ` matching ${preview(s.match, 80)}` : ""}`;
    if (s.status === "waiting") return `${what}, until ${absTime(new Date(s.until).toISOString())}`;
    return s.result ? `received ${what}` : `timed out waiting for ${what}`;
  }
  if (s.status === "failed") return `${s.failures} failed ${s.failures === 1 ? "try" : "tries"}: ${s.error ? s.error.message : ""}`;
  return s.failures ? `after ${s.failures} failed ${s.failures === 1 ? "try" : "tries"}` : "";
}

/** The job's durable steps (ctx.step), in the order first reached: state, timing and result of each. */
function stepsPanel(j) {
  const rows = j.steps.map((s) =>
    h(
      "tr",
      { "data-role": "step", "data-step": s.id, "data-status": s.status },
      h("td", { class: "mono" }, s.id),
      h("td", null, STEP_KIND[s.kind] || s.kind),
      h("td", null, h("span", { class: `badge s-${STEP_STATUS[s.status] || "deleted"}` }, s.status)),
      h("td", null, absTime(new Date(s.startedAt).toISOString())),
      h("td", { class: "num" }, s.durationMs !== undefined ? duration(s.durationMs) : s.finishedAt ? duration(s.finishedAt - s.startedAt) : ""),
      h("td", null, stepDetail(s)),
      h("td", { class: "mono", title: s.result !== undefined ? json(s.result) : "" }, s.result !== undefined && s.kind === "run" ? preview(s.result, 80) : ""),
    ),
  );
  const done = j.steps.filter((s) => s.status === "completed").length;
  return h(
    "section",
    { class: "panel", "data-role": "steps" },
    h("div", { class: "panel-head" }, h("h2", null, "Steps"), h("span", { class: "hint" }, `${done} of ${j.steps.length} completed`)),
    h(
      "div",
      { class: "table-wrap" },
      h(
        "table",
        { class: "t" },
        h(
          "thead",
          null,
          h(
            "tr",
            null,
            h("th", null, "Step"),
            h("th", null, "Kind"),
            h("th", null, "Status"),
            h("th", null, "Started"),
            h("th", { class: "num" }, "Took"),
            h("th", null, "Detail"),
            h("th", null, "Result"),
          ),
        ),
        h("tbody", null, ...rows),
      ),
    ),
  );
}

const ON = { success: "succeeded", failure: "failed", any: "finished" };
const OTHERWISE = {
  fail: "fails if one ends another way",
  delete: "is deleted if one ends another way",
  ignore: "runs anyway once all have finished",
  remove: "runs without those that end another way",
};

/**
 * What a job waits for (a flow's children, a continuation's parent), as a
 * tree with each job's state, and which waiting jobs wait for it.
 */
function flowPanel(j, flow) {
  const panel = h("section", { class: "panel", "data-role": "flow" }, h("div", { class: "panel-head" }, h("h2", null, "Flow")));
  if (j.flow) {
    const rule = `Runs when ${j.flow.dependsOn.length === 1 ? "this job has" : `all ${j.flow.dependsOn.length} have`} ${ON[j.flow.on]}; ${OTHERWISE[j.flow.otherwise]}.`;
    panel.appendChild(h("p", { class: "hint", "data-role": "flow-rule" }, j.state === "awaiting" ? `Waiting. ${rule}` : rule));
  }
  const node = (n) =>
    h(
      "li",
      { "data-role": "flow-node", "data-state": n.state },
      badge(n.state),
      " ",
      h("a", { href: `#/jobs/${encodeURIComponent(n.id)}`, class: "mono" }, shortId(n.id)),
      " ",
      n.name,
      n.children.length > 0 ? h("ul", { class: "flow-tree" }, ...n.children.map(node)) : null,
      n.more ? h("div", { class: "hint" }, `and ${n.more} more`) : null,
    );
  if (flow.tree.children.length > 0) panel.appendChild(h("ul", { class: "flow-tree", "data-role": "flow-tree" }, ...flow.tree.children.map(node)));
  if (flow.neededBy.length > 0)
    panel.appendChild(
      h(
        "p",
        { "data-role": "flow-needed-by" },
        "Waited for by ",
        ...flow.neededBy.flatMap((x, i) => [i > 0 ? ", " : "", h("a", { href: `#/jobs/${encodeURIComponent(x)}`, class: "mono" }, shortId(x))]),
      ),
    );
  return panel;
}
