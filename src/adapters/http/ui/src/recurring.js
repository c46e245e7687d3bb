// Recurring jobs: the definitions with their next and last firing, a form
// to add or replace one, and trigger, edit and delete per row.
import { api } from "./api.js";
import { clear, h } from "./dom.js";
import { preview } from "./format.js";
import { app } from "./state.js";
import { jobHref, qs } from "./url.js";
import { actionButton, confirmButton, fail, toast, when } from "./widgets.js";

export function recurringView() {
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
  const names = h(
    "datalist",
    { id: "job-names-r" },
    ((app.session && app.session.jobNames) || []).map((n) => h("option", { value: n })),
  );
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
    h(
      "header",
      { class: "page-head" },
      h(
        "div",
        null,
        h("h1", null, "Recurring jobs"),
        h("p", { class: "sub" }, "Each slot of a cron expression enqueues its job once, however many servers tick."),
      ),
    ),
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
          h(
            "thead",
            null,
            h(
              "tr",
              null,
              h("th", null, "Id"),
              h("th", null, "Schedule"),
              h("th", null, "Job"),
              h("th", null, "Queue"),
              h("th", null, "Next run"),
              h("th", null, "Last fired"),
              h("th", { class: "admin-only" }, ""),
            ),
          ),
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
                actionButton(
                  "Trigger now",
                  async () => {
                    try {
                      const r = await api("POST", `api/recurring/${encodeURIComponent(d.id)}/trigger`);
                      toast("Enqueued.");
                      location.hash = jobHref(r.id);
                    } catch (e) {
                      fail(e);
                    }
                  },
                  "btn-sm",
                ),
                actionButton(
                  "Edit",
                  async () => {
                    f.id.value = d.id;
                    f.cron.value = d.cron;
                    f.name.value = d.name;
                    f.queue.value = (d.options && d.options.queue) || "";
                    f.timezone.value = d.timezone === "UTC" ? "" : d.timezone;
                    f.args.value = JSON.stringify(d.args);
                    form.parentElement.open = true;
                    form.parentElement.scrollIntoView({ block: "nearest" });
                  },
                  "btn-sm",
                ),
                confirmButton(
                  "Delete",
                  "Delete?",
                  async () => {
                    try {
                      await api("DELETE", `api/recurring/${encodeURIComponent(d.id)}`);
                      toast("Recurring job deleted.");
                      load();
                    } catch (e) {
                      fail(e);
                    }
                  },
                  "btn-sm",
                ),
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
