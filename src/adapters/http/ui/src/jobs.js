// Job lists: every job, or the failed, processing or scheduled ones, with
// filters, search, cursor pages, selection and bulk actions (over the
// selected ids, or over the whole filter: "Retry all", "Delete all").
import { api } from "./api.js";
import { clear, h } from "./dom.js";
import { FINISHED, LABEL, STATES, num, preview, shortId } from "./format.js";
import { countsChanged } from "./live.js";
import { newJobForm } from "./new-job.js";
import { app } from "./state.js";
import { jobHref, qs, setQuery } from "./url.js";
import { actionButton, badge, confirmButton, fail, toast, when } from "./widgets.js";

const KIND = {
  jobs: { title: "Jobs", sub: "Every job the store holds, newest first." },
  failed: { title: "Failed jobs", sub: "Jobs that used up their attempts or failed for good. Retry them once the cause is fixed." },
  processing: { title: "Processing", sub: "Jobs a worker holds right now, under a lease." },
  scheduled: { title: "Scheduled", sub: "Jobs waiting for their run time, soonest first." },
};

export function jobsView(params, preset) {
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
    h(
      "button",
      {
        type: "button",
        class: "btn btn-sm",
        on: {
          click: () => {
            selected.clear();
            renderRows();
          },
        },
      },
      "Clear selection",
    ),
  );

  const search = h("input", {
    class: "input search",
    type: "search",
    placeholder: "Search id, name or arguments",
    value: f.q,
    "aria-label": "Search",
    "data-role": "search",
  });
  const nameInput = h("input", { class: "input", type: "text", placeholder: "Job name", value: f.name, list: "job-names", "aria-label": "Job name" });
  const names = h(
    "datalist",
    { id: "job-names" },
    ((app.session && app.session.jobNames) || []).map((n) => h("option", { value: n })),
  );
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
      h(
        "button",
        {
          type: "button",
          class: "btn btn-primary admin-only",
          on: {
            click: () => {
              newJob.hidden = !newJob.hidden;
              newJob.open = !newJob.hidden;
              if (!newJob.hidden) newJob.querySelector("input").focus();
            },
          },
        },
        "New job",
      ),
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
      const data = await api(
        "GET",
        `api/jobs${qs({ state: f.state, queue: f.queue, name: f.name, q: f.q, sort: f.sort, order: f.order, limit, cursor: append ? cursor : undefined })}`,
      );
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
