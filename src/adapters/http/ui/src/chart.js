// The throughput chart: succeeded and failed jobs per bucket as stacked
// SVG bars, styled by class only (the CSP refuses style attributes).
import { clear, svg } from "./dom.js";
import { hhmm } from "./format.js";

/** A top for the y axis that splits into four round steps. */
function niceMax(v) {
  if (v <= 4) return 4;
  const raw = v / 4;
  const p = 10 ** Math.floor(Math.log10(raw));
  for (const m of [1, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10]) if (Number.isInteger(m * p) && m * p >= raw) return 4 * m * p;
  return 40 * p;
}

export function drawChart(container, series, scale) {
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
    if (b.succeeded > 0)
      g.appendChild(svg("rect", { class: "bar-ok", x, y: y(b.succeeded), width: w, height: Math.max(1, y(0) - y(b.succeeded)), rx: Math.min(2, w / 3) }));
    if (b.failed > 0) {
      const top = y(b.succeeded + b.failed);
      g.appendChild(svg("rect", { class: "bar-fail", x, y: top, width: w, height: Math.max(1, y(b.succeeded) - top), rx: Math.min(2, w / 3) }));
    }
    bars.appendChild(g);
  });
  root.appendChild(bars);
  if (total === 0)
    root.appendChild(svg("text", { class: "empty-note", x: padL + iw / 2, y: padT + ih / 2, "text-anchor": "middle" }, "No jobs finished in this window yet"));
  clear(container);
  container.appendChild(root);
}
