/**
 * Reads a Dockerfile into stages and instructions, enough for the tests to
 * check the image's contract (user, env, port, health check, entry command)
 * and to replay its runtime stage without a Docker engine.
 */

export interface Instruction {
  line: number;
  /** Upper-case: FROM, RUN, ENV… */
  op: string;
  args: string;
}

export interface Stage {
  from: string;
  name: string | undefined;
  instructions: Instruction[];
}

export interface Dockerfile {
  /** ARGs before the first FROM. */
  globalArgs: Instruction[];
  stages: Stage[];
}

export function parseDockerfile(source: string): Dockerfile {
  const out: Dockerfile = { globalArgs: [], stages: [] };
  const lines = source.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const start = i;
    let text = lines[i]!;
    if (/^\s*(#.*)?$/.test(text)) continue;
    // Continuations: a trailing backslash joins the next line; comment lines inside are skipped.
    while (/\\\s*$/.test(text) && i + 1 < lines.length) {
      text = text.replace(/\\\s*$/, " ");
      i++;
      if (/^\s*#/.test(lines[i]!)) {
        text += " \\";
        continue;
      }
      text += lines[i]!;
    }
    const m = /^\s*([A-Za-z]+)\s+([\s\S]*)$/.exec(text);
    if (!m) throw new Error(`Dockerfile line ${start + 1}: cannot read ${JSON.stringify(text)}`);
    const ins: Instruction = { line: start + 1, op: m[1]!.toUpperCase(), args: m[2]!.replace(/\s+/g, " ").trim() };
    if (ins.op === "FROM") {
      const f = /^(?:--\S+\s+)*(\S+)(?:\s+AS\s+(\S+))?$/i.exec(ins.args);
      if (!f) throw new Error(`Dockerfile line ${ins.line}: cannot read FROM ${ins.args}`);
      out.stages.push({ from: f[1]!, name: f[2], instructions: [] });
    } else if (out.stages.length === 0) {
      if (ins.op !== "ARG") throw new Error(`Dockerfile line ${ins.line}: ${ins.op} before FROM`);
      out.globalArgs.push(ins);
    } else {
      out.stages[out.stages.length - 1]!.instructions.push(ins);
    }
  }
  return out;
}

export function all(stage: Stage, op: string): Instruction[] {
  return stage.instructions.filter((i) => i.op === op);
}

/** The last instruction `op` of a stage (the one that counts for CMD, USER, WORKDIR, HEALTHCHECK). */
export function last(stage: Stage, op: string): Instruction | undefined {
  return all(stage, op).at(-1);
}

/** `CMD ["a", "b"]`: the exec form only (the shell form would put a shell between the signal and Node). */
export function execForm(args: string): string[] {
  const parsed = JSON.parse(args) as unknown;
  if (!Array.isArray(parsed) || !parsed.every((a) => typeof a === "string")) throw new Error(`not an exec-form command: ${args}`);
  return parsed as string[];
}

/** `ENV A=1 B="two words"` (and the legacy `ENV A 1`) into pairs. */
export function envPairs(args: string): Array<[string, string]> {
  if (!/^[A-Za-z_][A-Za-z0-9_]*=/.test(args)) {
    const m = /^([A-Za-z_][A-Za-z0-9_]*)\s+(.*)$/.exec(args);
    if (!m) throw new Error(`cannot read ENV ${args}`);
    return [[m[1]!, m[2]!]];
  }
  const out: Array<[string, string]> = [];
  const re = /([A-Za-z_][A-Za-z0-9_]*)=("(?:[^"\\]|\\.)*"|'[^']*'|\S*)\s*/gy;
  let m: RegExpExecArray | null;
  while ((m = re.exec(args))) {
    const raw = m[2]!;
    out.push([m[1]!, raw.startsWith('"') ? (JSON.parse(raw) as string) : raw.startsWith("'") ? raw.slice(1, -1) : raw]);
    if (re.lastIndex >= args.length) break;
  }
  if (re.lastIndex < args.length && out.length === 0) throw new Error(`cannot read ENV ${args}`);
  return out;
}
