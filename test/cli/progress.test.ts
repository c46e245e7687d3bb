/**
 * The bulk progress bar: drawn on a terminal only, on the stream it is
 * given (stderr in `qml`), and cleared at the end.
 */
import { expect, it } from "vitest";
import { progress } from "../../src/cli/progress.js";

function stream(isTTY: boolean): { writes: string[] } & NodeJS.WriteStream {
  const writes: string[] = [];
  return { isTTY, writes, write: (s: string) => writes.push(s) > 0 } as unknown as { writes: string[] } & NodeJS.WriteStream;
}

it("a bar with a total, a counter without; the line cleared at the end", () => {
  const tty = stream(true);
  const bar = progress("deleted", tty);
  bar.update(500, 1000);
  bar.update(1000, 1000);
  bar.end();
  expect(tty.writes).toEqual([
    `\rdeleted [${"#".repeat(15)}${"-".repeat(15)}] 500/1000 50%\x1b[K`,
    `\rdeleted [${"#".repeat(30)}] 1000/1000 100%\x1b[K`,
    "\r\x1b[K",
  ]);
  const counter = stream(true);
  progress("requeued", counter).update(1500);
  expect(counter.writes).toEqual(["\rrequeued 1500\x1b[K"]);
});

it("nothing when the stream is not a terminal (pipes, CI logs)", () => {
  const piped = stream(false);
  const bar = progress("deleted", piped);
  bar.update(1, 2);
  bar.end();
  expect(piped.writes).toEqual([]);
});
