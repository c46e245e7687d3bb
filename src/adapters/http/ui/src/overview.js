// The overview: counts per state, throughput over the last hour or day,
// queues, and the latest changes, all from the live snapshot.
import { drawChart } from "./chart.js";
import { append, clear, h } from "./dom.js";
import { LABEL, STATES, ago, num, shortId } from "./format.js";
import { jobHref, qs } from "./url.js";
import { badge, countCell } from "./widgets.js";

export function overviewView() {
  const cards = {};
  const cardEls = STATES.map((s) => {
    const value = h("div", { class: "card-value", "data-count": s }, "–");
    cards[s] = value;
    return h("a", { class: `card s-${s}`, href: `#/jobs?state=${s}` }, h("div", { class: "card-label" }, LABEL[s]), value);
  });
  const updated = h("span", null, "waiting for the first snapshot…");
  let scale = "minute";
  const chart = h("div", { class: "chart", role: "img", "aria-label": "Jobs finished over time" });
  const segMinute = h("button", { type: "button", class: "on", on: { click: () => setScale("minute") } }, "Last hour");
  const segHour = h("button", { type: "button", on: { click: () => setScale("hour") } }, "Last 24 hours");
  const summary = h("div", { class: "stat-line" });
  const queuesBody = h("tbody");
  const recentList = h("ul", { class: "recent" });
  let last = null;

  function setScale(s) {
    scale = s;
    segMinute.classList.toggle("on", s === "minute");
    segHour.classList.toggle("on", s === "hour");
    if (last) drawChart(chart, s === "minute" ? last.perMinute : last.perHour, s);
  }

  const el = h(
    "div",
    null,
    h("header", { class: "page-head" }, h("div", null, h("h1", null, "Overview"), h("p", { class: "sub" }, "Updated ", updated))),
    h("section", { class: "cards" }, cardEls),
    h(
      "section",
      { class: "panel" },
      h("div", { class: "panel-head" }, h("h2", null, "Throughput"), h("div", { class: "seg" }, segMinute, segHour)),
      summary,
      chart,
      h("div", { class: "legend" }, h("span", null, h("i", { class: "l-ok" }), "Succeeded"), h("span", null, h("i", { class: "l-fail" }), "Failed")),
    ),
    h(
      "div",
      { class: "grid-2" },
      h(
        "section",
        { class: "panel" },
        h("div", { class: "panel-head" }, h("h2", null, "Queues"), h("a", { href: "#/queues", class: "hint" }, "All queues →")),
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
                h("th", null, "Queue"),
                h("th", { class: "num" }, "Enqueued"),
                h("th", { class: "num" }, "Processing"),
                h("th", { class: "num" }, "Scheduled"),
                h("th", { class: "num" }, "Failed"),
              ),
            ),
            queuesBody,
          ),
        ),
      ),
      h(
        "section",
        { class: "panel" },
        h("div", { class: "panel-head" }, h("h2", null, "Recent activity"), h("span", { class: "hint" }, "latest changes first")),
        recentList,
      ),
    ),
  );

  function onLive(snap) {
    last = snap;
    updated.textContent = new Date(snap.at).toLocaleTimeString();
    for (const s of STATES) {
      const v = num(snap.states[s]);
      if (cards[s].textContent !== v) {
        const card = cards[s].parentElement;
        if (cards[s].textContent !== "–") {
          card.classList.remove("flash");
          void card.offsetWidth;
          card.classList.add("flash");
        }
        cards[s].textContent = v;
      }
    }
    const series = scale === "minute" ? snap.perMinute : snap.perHour;
    drawChart(chart, series, scale);
    const lastHourOk = snap.perMinute.reduce((a, b) => a + b.succeeded, 0);
    const lastHourFail = snap.perMinute.reduce((a, b) => a + b.failed, 0);
    const last5 = snap.perMinute.slice(-5).reduce((a, b) => a + b.succeeded + b.failed, 0);
    const rate = lastHourOk + lastHourFail > 0 ? ((lastHourFail / (lastHourOk + lastHourFail)) * 100).toFixed(1) : "0.0";
    clear(summary);
    append(summary, [
      h("span", null, h("b", null, num(lastHourOk)), "succeeded in the last hour"),
      h("span", null, h("b", null, num(lastHourFail)), "failed"),
      h("span", null, h("b", null, `${rate}%`), "failure rate"),
      h("span", null, h("b", null, (last5 / 5).toFixed(1)), "jobs/min (5 min avg)"),
    ]);
    clear(queuesBody);
    if (snap.queues.length === 0) queuesBody.appendChild(h("tr", null, h("td", { colspan: 5, class: "empty" }, "No queues yet.")));
    for (const q of snap.queues) {
      queuesBody.appendChild(
        h(
          "tr",
          null,
          h("td", null, h("a", { href: `#/jobs${qs({ queue: q.name })}` }, q.name)),
          countCell(q.counts.enqueued),
          countCell(q.counts.processing),
          countCell(q.counts.scheduled),
          countCell(q.counts.failed),
        ),
      );
    }
    clear(recentList);
    if (snap.recent.length === 0) recentList.appendChild(h("li", { class: "empty" }, "No jobs yet."));
    for (const r of snap.recent) {
      recentList.appendChild(
        h(
          "li",
          null,
          badge(r.state),
          h("a", { class: "name", href: jobHref(r.id), title: r.id }, r.name, h("span", { class: "mono" }, "  ", shortId(r.id))),
          h("span", { class: "when" }, ago(r.updatedAt)),
        ),
      );
    }
  }

  return { el, nav: "overview", onLive };
}
