// Queues: jobs per queue and state, from the live snapshot; an admin pauses and resumes them.
import { api } from "./api.js";
import { clear, h } from "./dom.js";
import { LABEL, STATES, num } from "./format.js";
import { qs } from "./url.js";
import { actionButton, fail, toast } from "./widgets.js";

export function queuesView() {
  const tbody = h("tbody");
  const el = h(
    "div",
    null,
    h("header", { class: "page-head" }, h("div", null, h("h1", null, "Queues"), h("p", { class: "sub" }, "Jobs per queue and state, live."))),
    h(
      "section",
      { class: "panel" },
      h(
        "div",
        { class: "table-wrap" },
        h(
          "table",
          { class: "t", "data-role": "queues" },
          h(
            "thead",
            null,
            h(
              "tr",
              null,
              h("th", null, "Queue"),
              STATES.map((s) => h("th", { class: "num" }, LABEL[s])),
              h("th", { class: "num" }, "Total"),
              h("th", null, "Status"),
            ),
          ),
          tbody,
        ),
      ),
    ),
  );
  function onLive(snap) {
    clear(tbody);
    const paused = new Set(snap.paused || []);
    const queues = [...snap.queues];
    for (const name of paused) if (!queues.some((q) => q.name === name)) queues.push({ name, counts: {} });
    if (queues.length === 0) tbody.appendChild(h("tr", null, h("td", { colspan: STATES.length + 3, class: "empty" }, "No queues yet.")));
    for (const q of queues) {
      const isPaused = paused.has(q.name);
      const total = STATES.reduce((a, s) => a + (q.counts[s] || 0), 0);
      tbody.appendChild(
        h(
          "tr",
          null,
          h("td", null, h("a", { href: `#/jobs${qs({ queue: q.name })}` }, q.name)),
          STATES.map((s) =>
            h(
              "td",
              { class: `num${q.counts[s] ? "" : " zero"}` },
              q.counts[s] ? h("a", { href: `#/jobs${qs({ queue: q.name, state: s })}` }, num(q.counts[s])) : "0",
            ),
          ),
          h("td", { class: "num" }, num(total)),
          h(
            "td",
            { "data-role": "queue-status" },
            h("span", { class: `badge ${isPaused ? "s-paused" : "s-running"}` }, isPaused ? "Paused" : "Running"),
            " ",
            actionButton(
              isPaused ? "Resume" : "Pause",
              async () => {
                try {
                  await api("POST", `api/queues/${encodeURIComponent(q.name)}/${isPaused ? "resume" : "pause"}`);
                  toast(isPaused ? `Queue ${q.name} resumed.` : `Queue ${q.name} paused: it accepts jobs and claims none.`);
                } catch (e) {
                  fail(e);
                }
              },
              "btn-sm",
            ),
          ),
        ),
      );
    }
  }
  return { el, nav: "queues", onLive };
}
