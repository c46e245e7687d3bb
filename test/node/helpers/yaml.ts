/**
 * A small YAML reader for the deployment files' tests (no YAML package is a
 * dependency, and none is added for tests). It reads the block subset those
 * files use: maps, sequences (indented or at their key's indent), plain and
 * quoted scalars, JSON-compatible flow collections, comments and `---`.
 * Anything else (anchors, tags, block scalars, multi-line plain scalars)
 * throws, so a file that grows past the subset fails its test loudly
 * instead of being misread.
 */

export type YamlValue = string | number | boolean | null | YamlValue[] | { [key: string]: YamlValue };

interface Line {
  no: number;
  indent: number;
  text: string;
}

export class YamlError extends Error {}

/** Every document of a stream. */
export function parseYamlAll(source: string): YamlValue[] {
  const docs: Line[][] = [[]];
  source.split(/\r?\n/).forEach((raw, i) => {
    if (/^(---|\.\.\.)\s*(#.*)?$/.test(raw)) {
      docs.push([]);
      return;
    }
    if (/^\s*%/.test(raw)) throw new YamlError(`line ${i + 1}: directives are not supported`);
    const lead = /^[ \t]*/.exec(raw)![0];
    if (lead.includes("\t")) throw new YamlError(`line ${i + 1}: tab in indentation`);
    const text = stripComment(raw.slice(lead.length), i + 1).trimEnd();
    if (text !== "") docs[docs.length - 1]!.push({ no: i + 1, indent: lead.length, text });
  });
  return docs.filter((d) => d.length > 0).map((lines) => new Reader(lines).document());
}

/** A stream of exactly one document. */
export function parseYaml(source: string): YamlValue {
  const docs = parseYamlAll(source);
  if (docs.length !== 1) throw new YamlError(`expected one document, found ${docs.length}`);
  return docs[0]!;
}

function stripComment(text: string, no: number): string {
  let quote: string | null = null;
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (quote) {
      if (c === "\\" && quote === '"') i++;
      else if (c === quote) quote = null;
    } else if (c === '"' || c === "'") {
      // A quote opens a quoted scalar only where a scalar starts.
      if (i === 0 || /[\s[{,:-]/.test(text[i - 1]!)) quote = c;
    } else if (c === "#" && (i === 0 || /\s/.test(text[i - 1]!))) {
      return text.slice(0, i);
    }
  }
  if (quote) throw new YamlError(`line ${no}: unterminated quoted scalar`);
  return text;
}

const KEY = /^("(?:[^"\\]|\\.)*"|'(?:[^']|'')*'|[^\s"'#&*!|>%@`{}[\],?-][^:#]*?)\s*:(?:\s+(.*))?$/;

class Reader {
  private i = 0;
  constructor(private readonly lines: Line[]) {}

  document(): YamlValue {
    const first = this.lines[0]!;
    const value = this.block(first.indent);
    if (this.i < this.lines.length) this.fail(this.lines[this.i]!, "unexpected indentation");
    return value;
  }

  private fail(line: Line, message: string): never {
    throw new YamlError(`line ${line.no}: ${message}: ${JSON.stringify(line.text)}`);
  }

  private peek(): Line | undefined {
    return this.lines[this.i];
  }

  private isItem(line: Line): boolean {
    return line.text === "-" || line.text.startsWith("- ");
  }

  private block(indent: number): YamlValue {
    const line = this.peek()!;
    if (line.indent !== indent) this.fail(line, `expected indentation ${indent}`);
    return this.isItem(line) ? this.sequence(indent) : this.mapping(indent);
  }

  private mapping(indent: number): { [key: string]: YamlValue } {
    const out: { [key: string]: YamlValue } = {};
    for (let line = this.peek(); line && line.indent === indent && !this.isItem(line); line = this.peek()) {
      const m = KEY.exec(line.text);
      if (!m) this.fail(line, "expected `key: value`");
      const key = unquote(m[1]!.trim(), line);
      if (Object.prototype.hasOwnProperty.call(out, key)) this.fail(line, `duplicate key ${JSON.stringify(key)}`);
      this.i++;
      const rest = m[2]?.trim() ?? "";
      if (rest !== "") {
        out[key] = scalar(rest, line);
        continue;
      }
      const next = this.peek();
      if (next && next.indent > indent) out[key] = this.block(next.indent);
      else if (next && next.indent === indent && this.isItem(next)) out[key] = this.sequence(indent);
      else out[key] = null;
    }
    const line = this.peek();
    if (line && line.indent > indent) this.fail(line, "unexpected indentation");
    return out;
  }

  private sequence(indent: number): YamlValue[] {
    const out: YamlValue[] = [];
    for (let line = this.peek(); line && line.indent === indent && this.isItem(line); line = this.peek()) {
      const rest = line.text.slice(1).trimStart();
      if (rest === "") {
        this.i++;
        const next = this.peek();
        out.push(next && next.indent > indent ? this.block(next.indent) : null);
        continue;
      }
      const offset = line.text.length - rest.length;
      if (KEY.test(rest) && !/^["']/.test(rest)) {
        // "- key: value" opens a mapping whose keys line up after the dash.
        this.lines[this.i] = { no: line.no, indent: indent + offset, text: rest };
        out.push(this.mapping(indent + offset));
      } else {
        this.i++;
        out.push(scalar(rest, line));
      }
    }
    return out;
  }
}

function unquote(text: string, line: Line): string {
  if (text.startsWith('"')) return JSON.parse(text) as string;
  if (text.startsWith("'")) return text.slice(1, -1).replace(/''/g, "'");
  if (/[&*!|>%@`]/.test(text[0]!)) throw new YamlError(`line ${line.no}: unsupported syntax ${JSON.stringify(text)}`);
  return text;
}

function scalar(text: string, line: Line): YamlValue {
  if (text.startsWith('"')) {
    if (!/^"(?:[^"\\]|\\.)*"$/.test(text)) throw new YamlError(`line ${line.no}: malformed double-quoted scalar`);
    return JSON.parse(text) as string;
  }
  if (text.startsWith("'")) {
    if (!/^'(?:[^']|'')*'$/.test(text)) throw new YamlError(`line ${line.no}: malformed single-quoted scalar`);
    return text.slice(1, -1).replace(/''/g, "'");
  }
  if (text.startsWith("[") || text.startsWith("{")) {
    try {
      return JSON.parse(text) as YamlValue;
    } catch {
      throw new YamlError(`line ${line.no}: flow collections must be JSON-compatible here: ${text}`);
    }
  }
  if (/^[&*!|>%@`]/.test(text)) throw new YamlError(`line ${line.no}: unsupported syntax ${JSON.stringify(text)}`);
  if (/^(true|false)$/.test(text)) return text === "true";
  if (/^(null|~)$/.test(text)) return null;
  if (/^[-+]?\d+$/.test(text)) return Number(text);
  if (/^[-+]?(\d+\.\d*|\.\d+)([eE][-+]?\d+)?$/.test(text)) return Number(text);
  return text;
}
