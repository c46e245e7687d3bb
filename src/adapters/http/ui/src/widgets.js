// Small pieces every view uses: state badges, times, toasts, and buttons
// that act (admin only) with a second click to confirm what destroys.
import { h } from "./dom.js";
import { LABEL, STATES, ago, num } from "./format.js";

export function badge(state) {
  return h("span", { class: `badge s-${STATES.includes(state) ? state : "deleted"}`, "data-state": state }, LABEL[state] || String(state));
}

/** A relative time that main.js keeps current, with the absolute one on hover. */
export function when(iso) {
  if (!iso) return h("span", { class: "cell-time" }, "—");
  return h("time", { datetime: iso, title: new Date(iso).toLocaleString(), class: "cell-time" }, ago(iso));
}

export function countCell(n) {
  return h("td", { class: `num${n ? "" : " zero"}` }, num(n));
}

export function toast(message, kind) {
  const el = h("div", { class: `toast${kind === "error" ? " error" : ""}`, role: kind === "error" ? "alert" : "status" }, message);
  document.getElementById("toasts").appendChild(el);
  setTimeout(() => el.remove(), kind === "error" ? 7000 : 3500);
}

/** Shows a failed request; a 401 is already on its way to the login page. */
export function fail(e) {
  if (e && e.status === 401) return;
  toast(e && e.message ? e.message : String(e), "error");
}

/** A destructive button asks once more in place instead of a blocking dialog. */
export function confirmButton(label, confirmLabel, action, extraClass) {
  let armed = false;
  let timer;
  const btn = h(
    "button",
    {
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
    },
    label,
  );
  return btn;
}

export function actionButton(label, action, cls) {
  const btn = h(
    "button",
    {
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
    },
    label,
  );
  return btn;
}
