// Live updates: a WebSocket, else Server-Sent Events, else polling, each
// falling back by itself. Every snapshot updates the sidebar counts and is
// handed to the view on screen (`view.onLive(snapshot, previous)`).
import { api } from "./api.js";
import { STATES, num } from "./format.js";
import { app } from "./state.js";
import { BASE } from "./url.js";

const live = {
  wsFailures: 0,
  timer: null,
  ws: null,
  es: null,

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
    // "hello" starts the feed on a runtime that does not tell the server a
    // socket opened; "ping" keeps the socket from being closed as idle
    // (the server closes one it has not heard from for 2 minutes).
    let pinger = null;
    ws.addEventListener("open", () => {
      ws.send("hello");
      pinger = setInterval(() => {
        if (ws.readyState === WebSocket.OPEN) ws.send("ping");
      }, 25_000);
    });
    ws.addEventListener("message", (e) => {
      if (typeof e.data !== "string") return;
      got = true;
      this.wsFailures = 0;
      setMode("websocket");
      receive(e.data);
    });
    ws.addEventListener("close", () => {
      clearInterval(pinger);
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

/** Starts the best transport the session offers. */
export function startLive() {
  if (app.session.websocket && "WebSocket" in window) live.websocket();
  else live.sse();
}

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

const MODE_TEXT = {
  connecting: "Connecting…",
  websocket: "Live · WebSocket",
  sse: "Live · Server-Sent Events",
  polling: "Live · polling",
  offline: "Reconnecting…",
  error: "Store unavailable",
};

function setMode(mode, detail) {
  app.liveMode = mode;
  document.body.dataset.liveMode = mode;
  const el = document.getElementById("live-status");
  el.dataset.mode = mode;
  const text = MODE_TEXT[mode];
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

/** Whether two snapshots differ in their counts or their latest change. */
export function countsChanged(a, b) {
  if (!a || !b) return true;
  if (a.total !== b.total) return true;
  for (const s of STATES) if (a.states[s] !== b.states[s]) return true;
  const ra = a.recent[0];
  const rb = b.recent[0];
  return (ra && ra.id + ra.updatedAt) !== (rb && rb.id + rb.updatedAt);
}
