/**
 * A strict reader of the Prometheus text exposition format (0.0.4), for the
 * metrics tests: every line must be a HELP, a TYPE or a sample of a family
 * whose HELP and TYPE came first; label values are unescaped; histograms
 * are checked (buckets ascending and cumulative, +Inf equal to _count, a
 * _sum) as they are read.
 */
export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

export interface Family {
  name: string;
  type: "counter" | "gauge" | "histogram" | "summary" | "untyped";
  help: string;
  samples: Sample[];
}

const NAME = "[a-zA-Z_:][a-zA-Z0-9_:]*";
const LABEL = `([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\\\\n]|\\\\[\\\\"n])*)"`;
const VALUE = "(-?(?:\\d+(?:\\.\\d*)?|\\.\\d+)(?:[eE][+-]?\\d+)?|[+-]Inf|NaN)";
const SAMPLE = new RegExp(`^(${NAME})(?:\\{((?:${LABEL})(?:,${LABEL})*,?)?\\})? ${VALUE}$`);
const HELP = new RegExp(`^# HELP (${NAME}) ((?:[^\\\\\\n]|\\\\[\\\\n])*)$`);
const TYPE = new RegExp(`^# TYPE (${NAME}) (counter|gauge|histogram|summary|untyped)$`);

function unescape(v: string): string {
  return v.replace(/\\(["\\n])/g, (_, c: string) => (c === "n" ? "\n" : c));
}

function parseValue(v: string): number {
  return v === "+Inf" ? Infinity : v === "-Inf" ? -Infinity : Number(v);
}

/** The family a sample name belongs to: itself, or a histogram's without _bucket/_sum/_count. */
function familyOf(name: string, families: Map<string, Family>): Family | undefined {
  const own = families.get(name);
  if (own) return own;
  const m = /^(.*)_(bucket|sum|count)$/.exec(name);
  const base = m ? families.get(m[1]!) : undefined;
  return base && (base.type === "histogram" || base.type === "summary") ? base : undefined;
}

export function parseExposition(text: string): Map<string, Family> {
  if (!text.endsWith("\n")) throw new Error("the exposition must end with a line feed");
  const families = new Map<string, Family>();
  const helps = new Map<string, string>();
  const lines = text.slice(0, -1).split("\n");
  lines.forEach((line, i) => {
    const where = `line ${i + 1}: ${JSON.stringify(line)}`;
    let m: RegExpExecArray | null;
    if ((m = HELP.exec(line))) {
      if (helps.has(m[1]!)) throw new Error(`${where}: a second HELP`);
      helps.set(m[1]!, m[2]!);
      return;
    }
    if ((m = TYPE.exec(line))) {
      const help = helps.get(m[1]!);
      if (help === undefined) throw new Error(`${where}: TYPE before HELP`);
      if (families.has(m[1]!)) throw new Error(`${where}: a second TYPE`);
      families.set(m[1]!, { name: m[1]!, type: m[2] as Family["type"], help, samples: [] });
      return;
    }
    if (line.startsWith("#")) throw new Error(`${where}: not a HELP or TYPE comment`);
    m = SAMPLE.exec(line);
    if (!m) throw new Error(`${where}: not a valid sample`);
    const labels: Record<string, string> = {};
    const body = /\{(.*)\}/.exec(line)?.[1] ?? "";
    for (const lm of body.matchAll(new RegExp(LABEL, "g"))) {
      if (lm[1]! in labels) throw new Error(`${where}: label ${lm[1]} twice`);
      labels[lm[1]!] = unescape(lm[2]!);
    }
    const family = familyOf(m[1]!, families);
    if (!family) throw new Error(`${where}: a sample before its family's HELP and TYPE`);
    family.samples.push({ name: m[1]!, labels, value: parseValue(m[m.length - 1]!) });
  });
  for (const f of families.values()) if (f.type === "histogram") checkHistogram(f);
  return families;
}

function checkHistogram(f: Family): void {
  const series = new Map<string, Sample[]>();
  for (const s of f.samples) {
    const { le: _le, ...rest } = s.labels;
    const key = JSON.stringify(Object.entries(rest).sort());
    series.set(key, [...(series.get(key) ?? []), s]);
  }
  for (const [key, samples] of series) {
    const buckets = samples.filter((s) => s.name === `${f.name}_bucket`);
    const count = samples.find((s) => s.name === `${f.name}_count`);
    const sum = samples.find((s) => s.name === `${f.name}_sum`);
    if (!count || !sum || buckets.length === 0) throw new Error(`${f.name} ${key}: buckets, _sum and _count are all needed`);
    let prevLe = -Infinity;
    let prev = 0;
    for (const b of buckets) {
      const le = parseValue(b.labels.le ?? "");
      if (!(le > prevLe)) throw new Error(`${f.name} ${key}: bucket bounds must ascend`);
      if (b.value < prev) throw new Error(`${f.name} ${key}: buckets must be cumulative`);
      prevLe = le;
      prev = b.value;
    }
    if (prevLe !== Infinity) throw new Error(`${f.name} ${key}: the last bucket must be le="+Inf"`);
    if (prev !== count.value) throw new Error(`${f.name} ${key}: the +Inf bucket (${prev}) must equal _count (${count.value})`);
  }
}

/** The value of the one sample of `name` with exactly these labels (0 when absent, as Prometheus would read an unseen counter). */
export function valueOf(families: Map<string, Family>, name: string, labels: Record<string, string> = {}): number {
  const family = familyOf(name, families);
  if (!family) throw new Error(`no family for ${name}`);
  const want = JSON.stringify(Object.entries(labels).sort());
  const found = family.samples.filter((s) => s.name === name && JSON.stringify(Object.entries(s.labels).sort()) === want);
  if (found.length > 1) throw new Error(`${name} ${want}: ${found.length} samples`);
  return found[0]?.value ?? 0;
}

/** Every sample name the exposition can hold: each family's, and a histogram's _bucket, _sum and _count. */
export function exposedNames(families: Map<string, Family>): Set<string> {
  const names = new Set<string>();
  for (const f of families.values()) {
    names.add(f.name);
    if (f.type === "histogram") for (const s of ["_bucket", "_sum", "_count"]) names.add(f.name + s);
  }
  return names;
}
