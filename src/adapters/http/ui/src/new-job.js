// The "New job" form: enqueues one job through POST /api/jobs and opens it.
import { api } from "./api.js";
import { h } from "./dom.js";
import { jobHref } from "./url.js";
import { toast } from "./widgets.js";

export function newJobForm() {
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
