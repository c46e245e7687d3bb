// The qml dashboard: a small hash-routed page over the REST API, live over
// WebSocket, else Server-Sent Events, else polling. scripts/embed-assets.ts
// bundles this entry and its imports into assets/app.js.
import { api } from "./api.js";
import { clear, h } from "./dom.js";
import { ago } from "./format.js";
import { startLive } from "./live.js";
import { route } from "./router.js";
import { app } from "./state.js";
import { confirmButton, fail } from "./widgets.js";

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
  // Ends every session on every server, this one too: the next request goes to the login page.
  if (!app.session.open && app.session.role === "admin") {
    const endAll = confirmButton(
      "End all sessions",
      "End every session?",
      async () => {
        try {
          await api("POST", "api/sessions/end-all");
          location.href = "login";
        } catch (e) {
          fail(e);
        }
      },
      "btn-sm end-all-sessions",
    );
    document.querySelector(".sidebar-foot").appendChild(endAll);
  }
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
  startLive();
  // Relative times ("5s ago") age even when nothing changes.
  setInterval(() => {
    for (const t of document.querySelectorAll("time.cell-time[datetime]")) t.textContent = ago(t.getAttribute("datetime"));
  }, 10000);
}

if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", boot);
else boot();
