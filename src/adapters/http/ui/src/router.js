// Hash routes (#/jobs, #/jobs/<id>, …): each builds a view { el, nav,
// onLive?, dispose? } that replaces the one on screen.
import { clear, h } from "./dom.js";
import { jobView } from "./job-detail.js";
import { jobsView } from "./jobs.js";
import { overviewView } from "./overview.js";
import { queuesView } from "./queues.js";
import { recurringView } from "./recurring.js";
import { app } from "./state.js";

const routes = [
  [/^\/$/, () => overviewView()],
  [/^\/jobs$/, (m, p) => jobsView(p, { kind: "jobs" })],
  [/^\/failed$/, (m, p) => jobsView(p, { kind: "failed", state: "failed" })],
  [/^\/processing$/, (m, p) => jobsView(p, { kind: "processing", state: "processing" })],
  [/^\/scheduled$/, (m, p) => jobsView(p, { kind: "scheduled", state: "scheduled" })],
  [/^\/jobs\/([^/]+)$/, (m) => jobView(decodeURIComponent(m[1]))],
  [/^\/recurring$/, () => recurringView()],
  [/^\/queues$/, () => queuesView()],
];

export function route() {
  const raw = location.hash.replace(/^#/, "") || "/";
  const [path, query] = raw.split("?");
  const params = new URLSearchParams(query || "");
  if (app.view && app.view.dispose) app.view.dispose();
  app.view = null;
  const main = document.getElementById("view");
  clear(main);
  let view = null;
  for (const [re, make] of routes) {
    const m = re.exec(path);
    if (m) {
      view = make(m, params);
      break;
    }
  }
  if (!view) view = { el: h("div", { class: "empty" }, "Nothing here. ", h("a", { href: "#/" }, "Back to the overview")), nav: "" };
  app.view = view;
  main.appendChild(view.el);
  for (const a of document.querySelectorAll("[data-nav]")) a.classList.toggle("active", a.getAttribute("data-nav") === view.nav);
  if (app.live && view.onLive) view.onLive(app.live, null);
}
