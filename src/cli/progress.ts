/**
 * A progress bar for long bulk work, on stderr and only when stderr is a
 * terminal: piped or captured output (scripts, CI logs) gets none, so it
 * never mixes with a result or fills a log with carriage returns.
 */
const WIDTH = 30;
/** Redraws at most this often: a bulk action over 100,000 jobs does 200 chunks. */
const REDRAW_MS = 100;

export interface Progress {
  /** `done` of `total` (undefined: not known, a counter instead of a bar). */
  update(done: number, total?: number): void;
  /** Clears the line. */
  end(): void;
}

const silent: Progress = { update() {}, end() {} };

export function progress(label: string, stream: NodeJS.WriteStream = process.stderr): Progress {
  if (!stream.isTTY) return silent;
  let last = 0;
  let drawn = false;
  return {
    update(done, total) {
      const now = Date.now();
      if (drawn && now - last < REDRAW_MS && (total === undefined || done < total)) return;
      last = now;
      drawn = true;
      let text: string;
      if (total !== undefined && total > 0) {
        const share = Math.min(1, done / total);
        const filled = Math.round(share * WIDTH);
        text = `${label} [${"#".repeat(filled)}${"-".repeat(WIDTH - filled)}] ${done}/${total} ${Math.floor(share * 100)}%`;
      } else {
        text = `${label} ${done}`;
      }
      stream.write(`\r${text}\x1b[K`);
    },
    end() {
      if (drawn) stream.write("\r\x1b[K");
    },
  };
}
