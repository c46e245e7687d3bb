// Building the DOM. Every job field (names, arguments, results, errors,
// stacks, history reasons, metadata) is attacker-controlled. It reaches the
// page only as text nodes (`textContent`, `createTextNode`) or attribute
// values set through `setAttribute` on non-URL, non-event attributes; links
// pass through safeHref. No module of the UI assigns HTML strings.

const SVG_NS = "http://www.w3.org/2000/svg";

/** h("div", { class: "x", on: { click } }, child, "text", [more]) */
export function h(tag, props, ...children) {
  const el = document.createElement(tag);
  applyProps(el, props);
  append(el, children);
  return el;
}

export function svg(tag, props, ...children) {
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

/** Appends nodes as they are and anything else as a text node. */
export function append(el, children) {
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

export function clear(el) {
  while (el.firstChild) el.removeChild(el.firstChild);
}
