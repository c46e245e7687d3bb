/**
 * Smoke test of the benchmark harness (bench/): the quick run on the memory
 * contender, in process, checking that every job ran exactly once and that
 * the report is produced. No timing assertions: numbers belong to
 * `npm run bench`. Plus the request counters of the idle phase's proxy, fed
 * byte streams split at awkward places.
 */
import { describe, expect, it } from "vitest";
import { PostgresCounter, RespCounter } from "../../bench/proxy.js";
import { chartSvg } from "../../bench/report.js";
import { main } from "../../bench/run.js";

describe("bench harness", () => {
  it("runs the quick benchmark on qml-memory, every job exactly once", async () => {
    const lines: string[] = [];
    const report = await main(["--quick", "--only=qml-memory", "--in-process", "--no-write"], (l) => lines.push(l));
    expect(report.results.map((r) => r.name)).toEqual(["qml-memory"]);
    const r = report.results[0]!;
    expect(r.error).toBeUndefined();
    expect(Object.keys(r.process)).toEqual(["1", "20", "100"]);
    for (const p of Object.values(r.process)) {
      expect(p.error).toBeUndefined();
      expect(p.complete).toBe(true);
      expect(p.exactlyOnce).toEqual({ expected: 500, ran: 500, distinct: 500, duplicates: 0, missing: 0, ok: true });
      expect(p.perSecond).toBeGreaterThan(0);
    }
    expect(r.enqueueSingle?.jobs).toBe(500);
    expect(r.enqueueBulk?.jobs).toBe(500);
    expect(r.latency?.error).toBeUndefined();
    expect(r.latency?.exactlyOnce.ok).toBe(true);
    expect(r.latency!.p50).toBeLessThanOrEqual(r.latency!.p99);
    expect(r.idle?.unit).toBe("storage calls");
    expect(Number.isFinite(r.idle?.requestsPerMinute)).toBe(true);
    const out = lines.join("\n");
    expect(out).toContain("| qml · memory |");
    expect(report.targets.find((t) => t.target === "Memory: processing")?.met).not.toBeNull();
    expect(chartSvg(report)).toMatch(/^<svg[\s\S]*qml · memory[\s\S]*<\/svg>\n$/);
  });

  it("rejects unknown contenders and flags", async () => {
    await expect(main(["--only=nope", "--no-write"], () => {})).rejects.toThrow(/unknown contender/);
    await expect(main(["--fast"], () => {})).rejects.toThrow(/unknown flag/);
  });
});

describe("idle request counters", () => {
  function feedSplit(counter: { feed(b: Buffer): void }, bytes: Buffer, at: number[]): void {
    let prev = 0;
    for (const i of [...at, bytes.length]) {
      counter.feed(bytes.subarray(prev, i));
      prev = i;
    }
  }

  it("counts RESP commands across chunk boundaries, bulk payloads with CRLF inside included", () => {
    const cmd = (...parts: string[]) => `*${parts.length}\r\n${parts.map((p) => `$${Buffer.byteLength(p)}\r\n${p}\r\n`).join("")}`;
    const stream = Buffer.from(cmd("GET", "k") + cmd("SET", "k", "a\r\n*3\r\nnot a command") + cmd("EVALSHA", "abc", "0") + cmd("PING"));
    for (const splits of [[], [1], [3, 4, 5, 17], Array.from({ length: stream.length - 1 }, (_, i) => i + 1)]) {
      const c = new RespCounter();
      feedSplit(c, stream, splits);
      expect(c.requests).toBe(4);
    }
  });

  it("counts Postgres Query and Execute messages, not the startup or the framing", () => {
    const msg = (type: string, body: Buffer) => {
      const head = Buffer.alloc(5);
      head.write(type, 0, "latin1");
      head.writeInt32BE(body.length + 4, 1);
      return Buffer.concat([head, body]);
    };
    const ssl = Buffer.alloc(8);
    ssl.writeInt32BE(8, 0);
    ssl.writeInt32BE(80877103, 4);
    const startupBody = Buffer.from("\0\x03\0\0user\0postgres\0\0", "latin1");
    const startup = Buffer.alloc(4);
    startup.writeInt32BE(startupBody.length + 4, 0);
    const stream = Buffer.concat([
      ssl,
      startup,
      startupBody,
      msg("Q", Buffer.from("select 1\0")),
      msg("P", Buffer.from("\0select $1\0\0\0")),
      msg("B", Buffer.alloc(10)),
      msg("D", Buffer.from("P\0")),
      msg("E", Buffer.from("\0\0\0\0\0")),
      msg("S", Buffer.alloc(0)),
      msg("X", Buffer.alloc(0)),
    ]);
    for (const splits of [[], [2, 9, 30], Array.from({ length: stream.length - 1 }, (_, i) => i + 1)]) {
      const c = new PostgresCounter();
      feedSplit(c, stream, splits);
      expect(c.requests).toBe(2);
    }
  });
});
