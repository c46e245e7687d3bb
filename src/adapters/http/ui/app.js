// qml dashboard: a small hash-routed page over the REST API, live over
// WebSocket, else Server-Sent Events, else polling.
//
// Every job field (names, arguments, results, errors, stacks, history
// reasons) is attacker-controlled. It reaches the page only as text nodes
// (`textContent`, `createTextNode`) or attribute values set through
// `setAttribute` on non-URL, non-event attributes; links are built from
// `#/…` plus encodeURIComponent. This file never assigns HTML strings.
(() => {
  "use strict";

  const BASE = new URL(".", location.href);
  const SVG_NS = "http://www.w3.org/2000/svg";
  const STATES = ["enqueued", "processing", "scheduled", "awaiting_retry", "succeeded", "failed", "deleted"];
  const LABEL = {
    enqueued: "Enqueued",
    processing: "Processing",
    scheduled: "Scheduled",
    awaiting_retry: "Awaiting retry",
    succeeded: "Succeeded",
    failed: "Failed",
    deleted: "Deleted",
  };
  const FINISHED = ["succeeded", "failed", "deleted"];

  const app = {
    session: null,
    live: null,
    liveMode: "connecting",
    view: null,
  };

  // ------------------------------------------------------------------ DOM

  /** h("div", { class: "x", on: { click } }, child, "text", [more]) */
  function h(tag, props, ...children) {
    const el = document.createElement(tag);
    applyProps(el, props);
    append(el, children);
    return el;
  }

  function svg(tag, props, ...children) {
    const el = document.createElementNS(SVG_NS, tag);
    applyProps(el, props);
    append(el, children);
    return el;
  }

  function applyProps(el, props) {
    if (!props) return;
    for (const [k, v] of Object.entries(props)) {
      if (v === undefined || v === null || v === false) continue;
      if (k === "on") {
        for (const [ev, fn] of Object.entries(v)) el.addEventListener(ev, fn);
      } else if (k === "text") {
        el.textContent = String(v);
      } else if (k === "value") {
        el.value = String(v);
      } else if (k === "checked") {
        el.checked = Boolean(v);
      } else if (k === "href") {
        el.setAttribute("href", safeHref(v));
      } else if (/^on/i.test(k)) {
        throw new Error("event handlers go through `on`, never attributes");
      } else {
        el.setAttribute(k, v === true ? "" : String(v));
      }
    }
  }

  function append(el, children) {
    for (const c of children) {
      if (c === undefined || c === null || c === false) continue;
      if (Array.isArray(c)) append(el, c);
      else if (c instanceof Node) el.appendChild(c);
      else el.appendChild(document.createTextNode(String(c)));
    }
  }

  /** Only in-app hash links and same-origin relative paths; anything else is neutralised. */
  function safeHref(v) {
    const s = String(v);
    return s.startsWith("#/") || /^[a-z0-9/_.-]+$/i.test(s) ? s : "#/";
  }

  function clear(el) {
    while (el.firstChild) el.removeChild(el.firstChild);
  }

  function badge(state) {
    return h("span", { class: `badge s-${STATES.includes(state) ? state : "deleted"}`, "data-state": state }, LABEL[state] || String(state));
  }

  function jobHref(id) {
    return `#/jobs/${encodeURIComponent(id)}`;
  }

  function shortId(id) {
    const s = String(id);
    return s.length > 13 ? `${s.slice(0, 8)}…${s.slice(-4)}` : s;
  }

  // ---------------------------------------------------------------- format

  const nf = new Intl.NumberFormat();
  function num(n) {
    return nf.format(Number(n) || 0);
  }

  function ago(iso) {
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

  function when(iso) {
    if (!iso) return h("span", { class: "cell-time" }, "—");
    return h("time", { datetime: iso, title: new Date(iso).toLocaleString(), class: "cell-time" }, ago(iso));
  }

  function absTime(iso) {
    if (!iso) return "—";
    const d = new Date(iso);
    return `${d.toLocaleString()} (${ago(iso)})`;
  }

  function json(v) {
    try {
      return JSON.stringify(v, null, 2);
    } catch {
      return String(v);
    }
  }

  function preview(v, max = 140) {
    let s;
    try {
      s = JSON.stringify(v);
    } catch {
      s = String(v);
    }
    if (s === undefined) return "";
    return s.length > max ? `${s.slice(0, max)}…` : s;
  }

  function hhmm(ms, withDay) {
    const d = new Date(ms);
    const t = d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
    return withDay ? `${d.toLocaleDateString([], { weekday: "short" })} ${t}` : t;
  }

  // ------------------------------------------------------------------- API

  class ApiError extends Error {
    constructor(status, detail, problem) {
      super(detail);
      this.status = status;
      this.problem = problem;
    }
  }

  async function api(method, path, body) {
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

  function qs(params) {
    const u = new URLSearchParams();
    for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== "") u.set(k, String(v));
    const s = u.toString();
    return s ? `?${s}` : "";
  }

  // ---------------------------------------------------------------- toasts

  function toast(message, kind) {
    const el = h("div", { class: `toast${kind === "error" ? " error" : ""}`, role: kind === "error" ? "alert" : "status" }, message);
    document.getElementById("toasts").appendChild(el);
    setTimeout(() => el.remove(), kind === "error" ? 7000 : 3500);
  }

  function fail(e) {
    if (e && e.status === 401) return;
    toast(e && e.message ? e.message : String(e), "error");
  }

  /** A destructive button asks once more in place instead of a blocking dialog. */
  function confirmButton(label, confirmLabel, action, extraClass) {
    let armed = false;
    let timer;
    const btn = h("button", {
      type: "button",
      class: `btn btn-danger admin-only ${extraClass || ""}`,
      on: {
        click: async () => {
          if (!armed) {
            armed = true;
            btn.textContent = confirmLabel;
            btn.classList.add("confirming");
            timer = setTimeout(() => {
              armed = false;
              btn.textContent = label;
              btn.classList.remove("confirming");
            }, 4000);
            return;
          }
          clearTimeout(timer);
          armed = false;
          btn.textContent = label;
          btn.classList.remove("confirming");
          btn.disabled = true;
          try {
            await action();
          } finally {
            btn.disabled = false;
          }
        },
      },
    }, label);
    return btn;
  }

  function actionButton(label, action, cls) {
    const btn = h("button", {
      type: "button",
      class: `btn admin-only ${cls || ""}`,
      on: {
        click: async () => {
          btn.disabled = true;
          try {
            await action();
          } finally {
            btn.disabled = false;
          }
        },
      },
    }, label);
    return btn;
  }

  // ------------------------------------------------------------------ live

  const live = {
    wsFailures: 0,
    timer: null,
    ws: null,
    es: null,

    start() {
      if (app.session.websocket && "WebSocket" in window) this.websocket();
      else this.sse();
    },

    websocket() {
      const url = new URL("ws", BASE);
      url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
      let got = false;
      let ws;
      try {
        ws = new WebSocket(url.href);
      } catch {
        this.sse();
        return;
      }
      this.ws = ws;
      // workerd never tells the server a socket opened; the first message does.
      ws.addEventListener("open", () => ws.send("hello"));
      ws.addEventListener("message", (e) => {
        if (typeof e.data !== "string") return;
        got = true;
        this.wsFailures = 0;
        setMode("websocket");
        receive(e.data);
      });
      ws.addEventListener("close", () => {
        this.ws = null;
        // A socket that closes before any snapshot (a proxy without upgrades,
        // a runtime without WebSockets) counts against WebSockets here.
        if (!got) this.wsFailures++;
        if (this.wsFailures >= 2) {
          this.sse();
          return;
        }
        setMode("offline");
        this.timer = setTimeout(() => this.websocket(), 1000);
      });
    },

    sse() {
      if (!("EventSource" in window)) {
        this.poll();
        return;
      }
      let got = false;
      const es = new EventSource(new URL("api/events", BASE).href);
      this.es = es;
      const fallBack = () => {
        clearTimeout(watchdog);
        es.close();
        this.poll();
      };
      // A buffering proxy (or a Lambda URL without streaming) delivers nothing until the stream ends.
      const watchdog = setTimeout(() => {
        if (!got) fallBack();
      }, 6000);
      const onData = (e) => {
        got = true;
        setMode("sse");
        receive(e.data);
      };
      es.addEventListener("snapshot", onData);
      es.addEventListener("problem", onData);
      es.addEventListener("error", () => {
        if (!got) fallBack();
        // After data, an error is the server ending the stream (it does so
        // every sseMaxDurationMs): the browser reconnects by itself, unless it gave up.
        else if (es.readyState === EventSource.CLOSED) this.timer = setTimeout(() => this.sse(), 3000);
      });
    },

    async poll() {
      setMode("polling");
      try {
        const snap = await api("GET", "api/live");
        handleSnapshot(snap);
      } catch (e) {
        if (e && e.status === 401) return;
        setMode("error");
      }
      this.timer = setTimeout(() => this.poll(), Math.max(2000, (app.session && app.session.liveIntervalMs) || 2000));
    },
  };

  function receive(text) {
    let msg;
    try {
      msg = JSON.parse(text);
    } catch {
      return;
    }
    if (msg && msg.type === "snapshot") handleSnapshot(msg);
    else if (msg && msg.type === "error") setMode("error", msg.detail);
  }

  function setMode(mode, detail) {
    app.liveMode = mode;
    document.body.dataset.liveMode = mode;
    const el = document.getElementById("live-status");
    el.dataset.mode = mode;
    const text = {
      connecting: "Connecting…",
      websocket: "Live · WebSocket",
      sse: "Live · Server-Sent Events",
      polling: "Live · polling",
      offline: "Reconnecting…",
      error: "Store unavailable",
    }[mode];
    el.querySelector(".live-text").textContent = text || mode;
    el.setAttribute("title", detail || text || mode);
  }

  function handleSnapshot(snap) {
    const prev = app.live;
    app.live = snap;
    if (app.liveMode === "error") setMode("connecting");
    for (const el of document.querySelectorAll("[data-nav-count]")) {
      const key = el.getAttribute("data-nav-count");
      const n = key === "total" ? snap.total : snap.states[key];
      el.textContent = n ? num(n) : "";
      el.classList.toggle("nonzero", Boolean(n));
    }
    if (app.view && app.view.onLive) {
      try {
        app.view.onLive(snap, prev);
      } catch (e) {
        console.error(e);
      }
    }
  }

  function countsChanged(a, b) {
    if (!a || !b) return true;
    if (a.total !== b.total) return true;
    for (const s of STATES) if (a.states[s] !== b.states[s]) return true;
    const ra = a.recent[0];
    const rb = b.recent[0];
    return (ra && ra.id + ra.updatedAt) !== (rb && rb.id + rb.updatedAt);
  }

  // ---------------------------------------------------------------- router

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

  function route() {
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

  function setQuery(path, params) {
    history.replaceState(null, "", `#${path}${qs(params)}`);
  }

  // -------------------------------------------------------------- overview

  function overviewView() {
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
              h("thead", null, h("tr", null, h("th", null, "Queue"), h("th", { class: "num" }, "Enqueued"), h("th", { class: "num" }, "Processing"), h("th", { class: "num" }, "Scheduled"), h("th", { class: "num" }, "Failed"))),
              queuesBody,
            ),
          ),
        ),
        h("section", { class: "panel" }, h("div", { class: "panel-head" }, h("h2", null, "Recent activity"), h("span", { class: "hint" }, "latest changes first")), recentList),
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
          h("li", null, badge(r.state), h("a", { class: "name", href: jobHref(r.id), title: r.id }, r.name, h("span", { class: "mono" }, "  ", shortId(r.id))), h("span", { class: "when" }, ago(r.updatedAt))),
        );
      }
    }

    return { el, nav: "overview", onLive };
  }

  function countCell(n) {
    return h("td", { class: `num${n ? "" : " zero"}` }, num(n));
  }

  /** A top for the y axis that splits into four round steps. */
  function niceMax(v) {
    if (v <= 4) return 4;
    const raw = v / 4;
    const p = 10 ** Math.floor(Math.log10(raw));
    for (const m of [1, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10]) if (Number.isInteger(m * p) && m * p >= raw) return 4 * m * p;
    return 40 * p;
  }

  function drawChart(container, series, scale) {
    const W = 760;
    const H = 210;
    const padL = 40;
    const padR = 8;
    const padT = 10;
    const padB = 24;
    const n = series.length || 1;
    const max = niceMax(Math.max(0, ...series.map((b) => b.succeeded + b.failed)));
    const iw = W - padL - padR;
    const ih = H - padT - padB;
    const bw = iw / n;
    const y = (v) => padT + ih - (v / max) * ih;
    const root = svg("svg", { viewBox: `0 0 ${W} ${H}`, preserveAspectRatio: "xMidYMid meet" });
    const grid = svg("g", { class: "grid" });
    const axis = svg("g", { class: "axis" });
    for (let i = 0; i <= 4; i++) {
      const v = (max / 4) * i;
      grid.appendChild(svg("line", { x1: padL, x2: W - padR, y1: y(v), y2: y(v) }));
      axis.appendChild(svg("text", { x: padL - 6, y: y(v) + 3.5, "text-anchor": "end" }, Number.isInteger(v) ? String(v) : v.toFixed(1)));
    }
    const every = scale === "minute" ? 10 : 4;
    series.forEach((b, i) => {
      if ((series.length - 1 - i) % every === 0) {
        const x = padL + i * bw + bw / 2;
        const edge = x > W - padR - 24;
        axis.appendChild(svg("text", { x: edge ? W - padR : x, y: H - 6, "text-anchor": edge ? "end" : "middle" }, hhmm(b.at, false)));
      }
    });
    root.appendChild(grid);
    root.appendChild(axis);
    const bars = svg("g");
    let total = 0;
    series.forEach((b, i) => {
      total += b.succeeded + b.failed;
      const x = padL + i * bw + Math.max(0.5, bw * 0.14);
      const w = Math.max(1, bw * 0.72);
      const g = svg("g", { class: "bar-group" });
      const label = `${hhmm(b.at, scale === "hour")}: ${b.succeeded} succeeded, ${b.failed} failed`;
      g.appendChild(svg("title", null, label));
      g.appendChild(svg("rect", { class: "bar-hit", x: padL + i * bw, y: padT, width: bw, height: ih }));
      if (b.succeeded > 0) g.appendChild(svg("rect", { class: "bar-ok", x, y: y(b.succeeded), width: w, height: Math.max(1, y(0) - y(b.succeeded)), rx: Math.min(2, w / 3) }));
      if (b.failed > 0) {
        const top = y(b.succeeded + b.failed);
        g.appendChild(svg("rect", { class: "bar-fail", x, y: top, width: w, height: Math.max(1, y(b.succeeded) - top), rx: Math.min(2, w / 3) }));
      }
      bars.appendChild(g);
    });
    root.appendChild(bars);
    if (total === 0) root.appendChild(svg("text", { class: "empty-note", x: padL + iw / 2, y: padT + ih / 2, "text-anchor": "middle" }, "No jobs finished in this window yet"));
    clear(container);
    container.appendChild(root);
  }

  // ------------------------------------------------------------------ jobs

  const KIND = {
    jobs: { title: "Jobs", sub: "Every job the store holds, newest first." },
    failed: { title: "Failed jobs", sub: "Jobs that used up their attempts or failed for good. Retry them once the cause is fixed." },
    processing: { title: "Processing", sub: "Jobs a worker holds right now, under a lease." },
    scheduled: { title: "Scheduled", sub: "Jobs waiting for their run time, soonest first." },
  };

  function jobsView(params, preset) {
    const kind = preset.kind;
    const meta = KIND[kind];
    const f = {
      state: preset.state || params.get("state") || "",
      queue: params.get("queue") || "",
      name: params.get("name") || "",
      q: params.get("q") || "",
      sort: params.get("sort") || (kind === "scheduled" ? "runAt" : ""),
      order: params.get("order") || (kind === "scheduled" ? "asc" : ""),
    };
    const selected = new Set();
    let items = [];
    let cursor = null;
    let loading = false;
    let lastLoad = 0;
    let pending = null;

    const tbody = h("tbody");
    const moreBtn = h("button", { type: "button", class: "btn", on: { click: () => load(true) } }, "Load more");
    const more = h("div", { class: "more" }, moreBtn);
    const headCheck = h("input", { type: "checkbox", class: "check", "aria-label": "Select all shown", on: { change: () => toggleAll(headCheck.checked) } });
    const bulkCount = h("span", { class: "count" });
    const bulkbar = h(
      "div",
      { class: "bulkbar admin-only", hidden: true },
      bulkCount,
      actionButton("Retry", () => bulkIds("retry"), "btn-sm"),
      actionButton("Requeue", () => bulkIds("requeue"), "btn-sm"),
      confirmButton("Delete", "Delete selected?", () => bulkIds("delete"), "btn-sm"),
      h("button", { type: "button", class: "btn btn-sm", on: { click: () => { selected.clear(); renderRows(); } } }, "Clear selection"),
    );

    const search = h("input", { class: "input search", type: "search", placeholder: "Search id, name or arguments", value: f.q, "aria-label": "Search", "data-role": "search" });
    const nameInput = h("input", { class: "input", type: "text", placeholder: "Job name", value: f.name, list: "job-names", "aria-label": "Job name" });
    const names = h("datalist", { id: "job-names" }, ((app.session && app.session.jobNames) || []).map((n) => h("option", { value: n })));
    const queueSelect = h("select", { class: "select", "aria-label": "Queue" }, h("option", { value: "" }, "All queues"));
    const sortSelect = h(
      "select",
      { class: "select", "aria-label": "Sort" },
      h("option", { value: "createdAt:desc" }, "Newest first"),
      h("option", { value: "createdAt:asc" }, "Oldest first"),
      h("option", { value: "updatedAt:desc" }, "Recently updated"),
      h("option", { value: "runAt:asc" }, "Run time, soonest"),
      h("option", { value: "runAt:desc" }, "Run time, latest"),
    );
    sortSelect.value = `${f.sort || "createdAt"}:${f.order || (f.sort === "runAt" ? "asc" : "desc")}`;

    let debounce;
    search.addEventListener("input", () => {
      clearTimeout(debounce);
      debounce = setTimeout(() => {
        f.q = search.value.trim();
        filtersChanged();
      }, 250);
    });
    nameInput.addEventListener("change", () => {
      f.name = nameInput.value.trim();
      filtersChanged();
    });
    queueSelect.addEventListener("change", () => {
      f.queue = queueSelect.value;
      filtersChanged();
    });
    sortSelect.addEventListener("change", () => {
      const [s, o] = sortSelect.value.split(":");
      f.sort = s;
      f.order = o;
      filtersChanged();
    });

    const tabs = h("nav", { class: "tabs", "aria-label": "States" });
    const tabCounts = {};
    function tab(state, label) {
      const n = h("span", { class: "n" }, "");
      tabCounts[state || "all"] = n;
      const a = h("a", { href: `#/jobs${qs({ state, queue: f.queue, name: f.name, q: f.q })}`, class: (f.state || "") === state ? "on" : "" }, label, n);
      return a;
    }
    if (kind === "jobs") {
      tabs.appendChild(tab("", "All"));
      for (const s of STATES) tabs.appendChild(tab(s, LABEL[s]));
    }

    const pageActions = h("div", { class: "page-actions" });
    if (kind === "failed") {
      pageActions.appendChild(actionButton("Retry all", () => bulkFilter("retry"), "btn-primary"));
      pageActions.appendChild(confirmButton("Delete all", "Delete all failed?", () => bulkFilter("delete")));
    } else if (kind === "scheduled") {
      pageActions.appendChild(actionButton("Enqueue all now", () => bulkFilter("requeue")));
    } else if (kind === "jobs") {
      pageActions.appendChild(
        h("button", {
          type: "button",
          class: "btn btn-primary admin-only",
          on: {
            click: () => {
              newJob.hidden = !newJob.hidden;
              newJob.open = !newJob.hidden;
              if (!newJob.hidden) newJob.querySelector("input").focus();
            },
          },
        }, "New job"),
      );
    }

    const newJob = kind === "jobs" ? newJobForm() : null;
    if (newJob) {
      newJob.hidden = params.get("new") !== "1";
      newJob.open = !newJob.hidden;
    }

    const extraCol = kind === "failed" ? "Error" : kind === "scheduled" ? "Runs" : kind === "processing" ? "Lease" : "Arguments";
    const table = h(
      "table",
      { class: "t", "data-role": "jobs" },
      h(
        "thead",
        null,
        h(
          "tr",
          null,
          h("th", { class: "col-check admin-only" }, headCheck),
          h("th", null, "Job"),
          h("th", null, "Queue"),
          h("th", null, "State"),
          h("th", { class: "num" }, "Attempts"),
          h("th", null, extraCol),
          h("th", null, kind === "scheduled" ? "Created" : "Updated"),
          h("th", { class: "admin-only" }, ""),
        ),
      ),
      tbody,
    );

    const el = h(
      "div",
      null,
      h("header", { class: "page-head" }, h("div", null, h("h1", null, meta.title), h("p", { class: "sub" }, meta.sub)), pageActions),
      newJob,
      h(
        "section",
        { class: "panel" },
        kind === "jobs" ? tabs : null,
        h(
          "div",
          { class: "filters" },
          search,
          nameInput,
          names,
          queueSelect,
          sortSelect,
          h("button", { type: "button", class: "btn", on: { click: resetFilters } }, "Clear filters"),
        ),
        bulkbar,
        h("div", { class: "table-wrap" }, table),
        more,
      ),
    );

    function path() {
      return kind === "jobs" ? "/jobs" : `/${kind}`;
    }

    function query() {
      return {
        state: kind === "jobs" ? f.state : undefined,
        queue: f.queue,
        name: f.name,
        q: f.q,
        sort: f.sort,
        order: f.order,
      };
    }

    function resetFilters() {
      f.queue = "";
      f.name = "";
      f.q = "";
      search.value = "";
      nameInput.value = "";
      queueSelect.value = "";
      filtersChanged();
    }

    function filtersChanged() {
      setQuery(path(), query());
      for (const [state, n] of Object.entries(tabCounts)) {
        n.parentElement.setAttribute("href", `#/jobs${qs({ state: state === "all" ? "" : state, queue: f.queue, name: f.name, q: f.q })}`);
      }
      selected.clear();
      load(false);
    }

    function apiFilter() {
      const filter = {};
      if (f.state) filter.state = f.state.split(",");
      if (f.queue) filter.queue = f.queue;
      if (f.name) filter.name = f.name;
      if (f.q) filter.text = f.q;
      return filter;
    }

    async function load(append, keep) {
      if (loading) {
        pending = { append, keep };
        return;
      }
      loading = true;
      lastLoad = Date.now();
      try {
        const limit = keep ? Math.min(500, Math.max(50, items.length)) : 50;
        const data = await api("GET", `api/jobs${qs({ state: f.state, queue: f.queue, name: f.name, q: f.q, sort: f.sort, order: f.order, limit, cursor: append ? cursor : undefined })}`);
        items = append ? items.concat(data.items) : data.items;
        cursor = data.nextCursor;
        renderRows();
      } catch (e) {
        fail(e);
      } finally {
        loading = false;
        if (pending) {
          const p = pending;
          pending = null;
          load(p.append, p.keep);
        }
      }
    }

    function renderRows() {
      for (const id of [...selected]) if (!items.some((j) => j.id === id)) selected.delete(id);
      clear(tbody);
      if (items.length === 0) {
        tbody.appendChild(h("tr", null, h("td", { colspan: 8, class: "empty" }, f.q || f.name || f.queue ? "No jobs match these filters." : "No jobs here.")));
      }
      for (const j of items) tbody.appendChild(row(j));
      more.hidden = !cursor;
      headCheck.checked = items.length > 0 && selected.size === items.length;
      bulkbar.hidden = selected.size === 0;
      bulkCount.textContent = `${selected.size} selected`;
    }

    function row(j) {
      const check = h("input", {
        type: "checkbox",
        class: "check",
        "aria-label": "Select job",
        checked: selected.has(j.id),
        on: {
          change: () => {
            if (check.checked) selected.add(j.id);
            else selected.delete(j.id);
            tr.classList.toggle("selected", check.checked);
            headCheck.checked = items.length > 0 && selected.size === items.length;
            bulkbar.hidden = selected.size === 0;
            bulkCount.textContent = `${selected.size} selected`;
          },
        },
      });
      let extra;
      if (kind === "failed") {
        const err = j.error ? `${j.error.name}: ${j.error.message}` : "";
        extra = h("td", { class: "cell-error", title: err }, h("span", null, err || "—"));
      } else if (kind === "scheduled") {
        extra = h("td", null, when(j.runAt));
      } else if (kind === "processing") {
        extra = h("td", { class: "cell-time", title: j.leaseOwner || "" }, j.leaseUntil ? `until ${new Date(j.leaseUntil).toLocaleTimeString()}` : "—");
      } else {
        extra = h("td", { class: "cell-args" }, h("code", { title: preview(j.arguments, 2000) }, preview(j.arguments)));
      }
      const actions = h("td", { class: "admin-only" });
      if (j.state === "failed" || j.state === "awaiting_retry") actions.appendChild(actionButton("Retry", () => act("retry", j.id), "btn-sm"));
      else if (j.state === "scheduled") actions.appendChild(actionButton("Run now", () => act("requeue", j.id), "btn-sm"));
      else if (FINISHED.includes(j.state)) actions.appendChild(actionButton("Requeue", () => act("requeue", j.id), "btn-sm"));
      const tr = h(
        "tr",
        { class: selected.has(j.id) ? "selected" : "", "data-job-id": j.id },
        h("td", { class: "col-check admin-only" }, check),
        h("td", { class: "cell-job" }, h("a", { href: jobHref(j.id) }, j.name), h("span", { class: "id", title: j.id }, shortId(j.id))),
        h("td", null, j.queue),
        h("td", null, badge(j.state)),
        h("td", { class: "num" }, `${j.attempts}/${j.maxAttempts}`),
        extra,
        h("td", null, when(kind === "scheduled" ? j.createdAt : j.updatedAt)),
        actions,
      );
      return tr;
    }

    function toggleAll(on) {
      selected.clear();
      if (on) for (const j of items) selected.add(j.id);
      renderRows();
    }

    async function act(action, id) {
      try {
        await api("POST", `api/jobs/${encodeURIComponent(id)}/${action}`);
        toast(action === "retry" ? "Job requeued for another try." : action === "requeue" ? "Job enqueued." : "Job deleted.");
        load(false, true);
      } catch (e) {
        fail(e);
      }
    }

    async function bulkIds(action) {
      if (selected.size === 0) return;
      try {
        const r = await api("POST", `api/jobs/bulk/${action}`, { ids: [...selected] });
        report(action, r);
        selected.clear();
        load(false, true);
      } catch (e) {
        fail(e);
      }
    }

    async function bulkFilter(action) {
      try {
        const r = await api("POST", `api/jobs/bulk/${action}`, { filter: apiFilter() });
        report(action, r);
        load(false, true);
      } catch (e) {
        fail(e);
      }
    }

    function report(action, r) {
      const verb = { retry: "retried", requeue: "enqueued", delete: "deleted" }[action];
      let msg = `${num(r.applied)} of ${num(r.matched)} jobs ${verb}.`;
      if (r.skipped.length > 0) msg += ` ${num(r.matched - r.applied)} skipped (their state had changed).`;
      if (r.truncated) msg += " More matched: run it again for the rest.";
      toast(msg);
    }

    function onLive(snap, prev) {
      const queues = snap.queues.map((q) => q.name);
      if (f.queue && !queues.includes(f.queue)) queues.push(f.queue);
      const have = [...queueSelect.options].slice(1).map((o) => o.value);
      if (have.join("\n") !== queues.join("\n")) {
        while (queueSelect.options.length > 1) queueSelect.remove(1);
        for (const q of queues) queueSelect.appendChild(h("option", { value: q }, q));
      }
      queueSelect.value = f.queue;
      if (tabCounts.all) {
        tabCounts.all.textContent = num(snap.total);
        for (const s of STATES) tabCounts[s].textContent = num(snap.states[s]);
      }
      if (prev && countsChanged(snap, prev) && Date.now() - lastLoad > 1500) load(false, true);
    }

    load(false);
    return { el, nav: kind, onLive, dispose: () => clearTimeout(debounce) };
  }

  function newJobForm() {
    const err = h("span", { class: "form-error", role: "alert" });
    const name = h("input", { class: "input", name: "name", required: true, list: "job-names", placeholder: "send_email" });
    const args = h("textarea", { class: "input", name: "args", rows: 3, placeholder: '["user@example.com", {"template": "welcome"}]' });
    const queue = h("input", { class: "input", name: "queue", placeholder: "default" });
    const priority = h("input", { class: "input", name: "priority", type: "number", step: 1, placeholder: "0" });
    const delay = h("input", { class: "input", name: "delay", type: "number", min: 0, step: 1, placeholder: "0" });
    const uniqueKey = h("input", { class: "input", name: "uniqueKey", placeholder: "optional" });
    const form = h(
      "form",
      {
        on: {
          submit: async (e) => {
            e.preventDefault();
            err.textContent = "";
            const body = { name: name.value.trim() };
            try {
              if (args.value.trim()) body.args = JSON.parse(args.value);
            } catch {
              err.textContent = "Arguments must be a JSON array.";
              return;
            }
            if (queue.value.trim()) body.queue = queue.value.trim();
            if (priority.value !== "") body.priority = Number(priority.value);
            if (delay.value !== "") body.delay = Math.round(Number(delay.value) * 1000);
            if (uniqueKey.value.trim()) body.uniqueKey = uniqueKey.value.trim();
            try {
              const r = await api("POST", "api/jobs", body);
              toast(r.created ? "Job enqueued." : "A job with that unique key exists already.");
              location.hash = jobHref(r.id);
            } catch (x) {
              err.textContent = x.message;
            }
          },
        },
      },
      h(
        "div",
        { class: "form-grid" },
        h("label", null, "Name", name),
        h("label", null, "Queue", queue),
        h("label", null, "Priority", priority),
        h("label", null, "Delay (seconds)", delay),
        h("label", null, "Unique key", uniqueKey),
        h("label", { class: "wide" }, "Arguments (JSON array)", args),
      ),
      h("div", { class: "form-actions" }, h("button", { type: "submit", class: "btn btn-primary" }, "Enqueue"), err),
    );
    return h("details", { class: "panel admin-only new-job" }, h("summary", null, "New job"), form);
  }

  // ------------------------------------------------------------ job detail

  function jobView(id) {
    const el = h("div", null, h("div", { class: "loading" }, "Loading job…"));
    let job = null;
    let busy = false;
    let lastSeen = "";

    async function load() {
      if (busy) return;
      busy = true;
      try {
        const data = await api("GET", `api/jobs/${encodeURIComponent(id)}`);
        job = data.job;
        lastSeen = job.updatedAt;
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
        toast(action === "retry" ? "Job requeued for another try." : action === "requeue" ? "Job enqueued." : "Job deleted.");
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
      if (j.state !== "processing" && j.state !== "enqueued") actions.appendChild(actionButton(j.state === "scheduled" ? "Run now" : "Requeue", () => act("requeue")));
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
      if (j.timeout) prop("Timeout", `${j.timeout} ms`);
      if (j.retry) prop("Retry policy", h("span", { class: "mono" }, preview(j.retry, 200)));

      const history = h("ol", { class: "timeline" });
      for (const e of [...j.history].reverse()) {
        const s = STATES.includes(e.state) ? e.state : "deleted";
        history.appendChild(
          h(
            "li",
            { class: `tl-item s-${s}` },
            h("span", { class: "tl-dot" }),
            h("div", { class: "tl-head" }, h("span", { class: "tl-state" }, LABEL[e.state] || e.state), h("time", { class: "tl-time", datetime: e.at, title: new Date(e.at).toLocaleString() }, `${new Date(e.at).toLocaleTimeString()} · ${ago(e.at)}`)),
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
          h("div", null, h("h1", { "data-role": "job-name" }, j.name), h("div", { class: "job-meta" }, badge(j.state), h("span", null, "queue ", j.queue), h("span", { class: "mono" }, j.id))),
          actions,
        ),
      );
      el.appendChild(
        h(
          "div",
          { class: "grid-detail" },
          h("section", { class: "panel" }, h("div", { class: "panel-head" }, h("h2", null, "Details")), props),
          h("section", { class: "panel" }, h("div", { class: "panel-head" }, h("h2", null, "History"), h("span", { class: "hint" }, `${j.history.length} transitions, newest first`)), history),
        ),
      );
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
      el.appendChild(h("section", { class: "panel" }, h("div", { class: "panel-head" }, h("h2", null, "Arguments")), h("pre", { class: "code", "data-role": "arguments" }, json(j.arguments))));
      if (j.result !== undefined && j.result !== null) el.appendChild(h("section", { class: "panel" }, h("div", { class: "panel-head" }, h("h2", null, "Result")), h("pre", { class: "code" }, json(j.result))));
      if (j.progress !== undefined && j.progress !== null) el.appendChild(h("section", { class: "panel" }, h("div", { class: "panel-head" }, h("h2", null, "Progress")), h("pre", { class: "code" }, json(j.progress))));
      if (j.metadata && Object.keys(j.metadata).length > 0) el.appendChild(h("section", { class: "panel" }, h("div", { class: "panel-head" }, h("h2", null, "Metadata")), h("pre", { class: "code" }, json(j.metadata))));
    }

    function onLive(snap) {
      if (!job) return;
      const r = snap.recent.find((x) => x.id === id);
      if ((r && r.updatedAt !== lastSeen) || !FINISHED.includes(job.state)) load();
    }

    load();
    return { el, nav: "jobs", onLive };
  }

  // ------------------------------------------------------------- recurring

  function recurringView() {
    const tbody = h("tbody");
    const err = h("span", { class: "form-error", role: "alert" });
    const f = {
      id: h("input", { class: "input", required: true, placeholder: "nightly-report" }),
      cron: h("input", { class: "input mono", required: true, placeholder: "0 3 * * *" }),
      name: h("input", { class: "input", required: true, list: "job-names-r", placeholder: "build_report" }),
      queue: h("input", { class: "input", placeholder: "default" }),
      timezone: h("input", { class: "input", placeholder: "UTC" }),
      args: h("textarea", { class: "input", rows: 2, placeholder: "[]" }),
    };
    const names = h("datalist", { id: "job-names-r" }, ((app.session && app.session.jobNames) || []).map((n) => h("option", { value: n })));
    const form = h(
      "form",
      {
        on: {
          submit: async (e) => {
            e.preventDefault();
            err.textContent = "";
            const body = { cron: f.cron.value.trim(), name: f.name.value.trim() };
            try {
              if (f.args.value.trim()) body.args = JSON.parse(f.args.value);
            } catch {
              err.textContent = "Arguments must be a JSON array.";
              return;
            }
            if (f.queue.value.trim()) body.queue = f.queue.value.trim();
            if (f.timezone.value.trim()) body.timezone = f.timezone.value.trim();
            try {
              await api("PUT", `api/recurring/${encodeURIComponent(f.id.value.trim())}`, body);
              toast("Recurring job saved.");
              load();
            } catch (x) {
              err.textContent = x.message;
            }
          },
        },
      },
      h(
        "div",
        { class: "form-grid" },
        h("label", null, "Id", f.id),
        h("label", null, "Cron expression", f.cron),
        h("label", null, "Job name", f.name, names),
        h("label", null, "Queue", f.queue),
        h("label", null, "Time zone", f.timezone),
        h("label", { class: "wide" }, "Arguments (JSON array)", f.args),
      ),
      h("div", { class: "form-actions" }, h("button", { type: "submit", class: "btn btn-primary" }, "Save"), err),
    );

    const el = h(
      "div",
      null,
      h("header", { class: "page-head" }, h("div", null, h("h1", null, "Recurring jobs"), h("p", { class: "sub" }, "Each slot of a cron expression enqueues its job once, however many servers tick."))),
      h("details", { class: "panel admin-only" }, h("summary", null, "Add or update a recurring job"), form),
      h(
        "section",
        { class: "panel" },
        h(
          "div",
          { class: "table-wrap" },
          h(
            "table",
            { class: "t" },
            h("thead", null, h("tr", null, h("th", null, "Id"), h("th", null, "Schedule"), h("th", null, "Job"), h("th", null, "Queue"), h("th", null, "Next run"), h("th", null, "Last fired"), h("th", { class: "admin-only" }, ""))),
            tbody,
          ),
        ),
      ),
    );

    async function load() {
      try {
        const data = await api("GET", "api/recurring");
        clear(tbody);
        if (data.items.length === 0) tbody.appendChild(h("tr", null, h("td", { colspan: 7, class: "empty" }, "No recurring jobs.")));
        for (const d of data.items) {
          tbody.appendChild(
            h(
              "tr",
              null,
              h("td", { class: "mono" }, d.id),
              h("td", null, h("code", null, d.cron), h("span", { class: "cell-time" }, "  ", d.timezone)),
              h("td", null, h("a", { href: `#/jobs${qs({ name: d.name })}` }, d.name), h("div", { class: "cell-args" }, h("code", null, preview(d.args, 80)))),
              h("td", null, d.options && d.options.queue ? d.options.queue : "default"),
              h("td", null, when(d.nextRunAt)),
              h("td", null, when(d.lastFiredAt)),
              h(
                "td",
                { class: "admin-only" },
                h(
                  "div",
                  { class: "page-actions" },
                  actionButton("Trigger now", async () => {
                    try {
                      const r = await api("POST", `api/recurring/${encodeURIComponent(d.id)}/trigger`);
                      toast("Enqueued.");
                      location.hash = jobHref(r.id);
                    } catch (e) {
                      fail(e);
                    }
                  }, "btn-sm"),
                  actionButton("Edit", async () => {
                    f.id.value = d.id;
                    f.cron.value = d.cron;
                    f.name.value = d.name;
                    f.queue.value = (d.options && d.options.queue) || "";
                    f.timezone.value = d.timezone === "UTC" ? "" : d.timezone;
                    f.args.value = JSON.stringify(d.args);
                    form.parentElement.open = true;
                    form.parentElement.scrollIntoView({ block: "nearest" });
                  }, "btn-sm"),
                  confirmButton("Delete", "Delete?", async () => {
                    try {
                      await api("DELETE", `api/recurring/${encodeURIComponent(d.id)}`);
                      toast("Recurring job deleted.");
                      load();
                    } catch (e) {
                      fail(e);
                    }
                  }, "btn-sm"),
                ),
              ),
            ),
          );
        }
      } catch (e) {
        fail(e);
      }
    }

    load();
    const timer = setInterval(load, 15000);
    return { el, nav: "recurring", dispose: () => clearInterval(timer) };
  }

  // ---------------------------------------------------------------- queues

  function queuesView() {
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
            h("thead", null, h("tr", null, h("th", null, "Queue"), STATES.map((s) => h("th", { class: "num" }, LABEL[s])), h("th", { class: "num" }, "Total"))),
            tbody,
          ),
        ),
      ),
    );
    function onLive(snap) {
      clear(tbody);
      if (snap.queues.length === 0) tbody.appendChild(h("tr", null, h("td", { colspan: STATES.length + 2, class: "empty" }, "No queues yet.")));
      for (const q of snap.queues) {
        const total = STATES.reduce((a, s) => a + (q.counts[s] || 0), 0);
        tbody.appendChild(
          h(
            "tr",
            null,
            h("td", null, h("a", { href: `#/jobs${qs({ queue: q.name })}` }, q.name)),
            STATES.map((s) => h("td", { class: `num${q.counts[s] ? "" : " zero"}` }, q.counts[s] ? h("a", { href: `#/jobs${qs({ queue: q.name, state: s })}` }, num(q.counts[s])) : "0")),
            h("td", { class: "num" }, num(total)),
          ),
        );
      }
    }
    return { el, nav: "queues", onLive };
  }

  // ------------------------------------------------------------------ boot

  async function boot() {
    try {
      app.session = await api("GET", "api/session");
    } catch (e) {
      const main = document.getElementById("view");
      clear(main);
      main.appendChild(h("div", { class: "empty" }, `Cannot reach the dashboard API: ${e.message}`));
      return;
    }
    document.body.classList.toggle("read-only", app.session.role !== "admin");
    document.getElementById("whoami").textContent = app.session.open
      ? "Open access (loopback only)"
      : `${app.session.role === "admin" ? "Admin" : "Read-only"} · ${app.session.storage} store`;
    document.getElementById("logout-form").hidden = app.session.open || app.session.via !== "cookie";
    window.addEventListener("hashchange", route);
    document.addEventListener("keydown", (e) => {
      if (e.key === "/" && !(e.target instanceof HTMLInputElement || e.target instanceof HTMLTextAreaElement)) {
        const s = document.querySelector('[data-role="search"]');
        if (s) {
          e.preventDefault();
          s.focus();
        }
      }
    });
    route();
    live.start();
    // Relative times ("5s ago") age even when nothing changes.
    setInterval(() => {
      for (const t of document.querySelectorAll("time.cell-time[datetime]")) t.textContent = ago(t.getAttribute("datetime"));
    }, 10000);
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", boot);
  else boot();
})();
