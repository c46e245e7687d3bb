/**
 * LISTEN on a dedicated session, shared by the drivers that have sessions
 * (`pg`, the Neon Pool). No driver import here: the caller makes the client.
 */
import { quoteIdent } from "../driver.js";

/** The part of a pg-compatible client LISTEN needs (pg Client, Neon Client). */
export interface ListeningClient {
  connect(): Promise<unknown>;
  query(text: string): Promise<unknown>;
  end(): Promise<void>;
  on(event: "notification", fn: (msg: { channel: string; payload?: string }) => void): unknown;
  on(event: "error" | "end", fn: (err?: Error) => void): unknown;
}

/**
 * LISTEN on a dedicated connection that comes back when it drops (backoff
 * from 100 ms to 10 s). Resolves after the first attempt, connected or not:
 * a database that is down at start is retried in the background like a
 * dropped one. Notifications sent while it was down are lost: the server's
 * polling covers them, NOTIFY only shortens the wait.
 */
export async function listenWith(makeClient: () => ListeningClient, channel: string, onPayload: (payload: string) => void): Promise<() => Promise<void>> {
  let stopped = false;
  let client: ListeningClient | undefined;
  let timer: ReturnType<typeof setTimeout> | undefined;
  let delay = 100;

  const connect = async (): Promise<void> => {
    const c = makeClient() as ListeningClient;
    client = c;
    let dropped = false;
    const onDrop = () => {
      if (dropped) return;
      dropped = true;
      c.end().catch(() => {});
      if (stopped) return;
      timer = setTimeout(retry, delay);
      (timer as { unref?: () => void }).unref?.();
      delay = Math.min(delay * 2, 10_000);
    };
    c.on("error", onDrop);
    c.on("end", onDrop);
    c.on("notification", (msg) => {
      if (msg.channel === channel && typeof msg.payload === "string") onPayload(msg.payload);
    });
    try {
      await c.connect();
      await c.query(`LISTEN ${quoteIdent(channel)}`);
      delay = 100;
    } catch {
      onDrop();
    }
  };
  const retry = () => {
    timer = undefined;
    if (!stopped) void connect();
  };

  await connect();
  return async () => {
    stopped = true;
    if (timer) clearTimeout(timer);
    await client?.end().catch(() => {});
  };
}
