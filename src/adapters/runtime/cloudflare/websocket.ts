/**
 * WebSocket upgrades on Workers, as hono/cloudflare-workers does them, plus
 * the `onOpen` call that helper never makes: the live feed starts its
 * snapshots, its idle timer and its connection count when a socket opens,
 * not when the client first writes (a client that never writes would
 * otherwise hold a socket that nothing times out).
 */
import { WSContext, defineWebSocketHelper, type UpgradeWebSocket } from "hono/ws";

interface CfWebSocket {
  accept(): void;
  send(data: string | ArrayBuffer | Uint8Array): void;
  close(code?: number, reason?: string): void;
  addEventListener(type: string, listener: (evt: any) => void): void;
  readonly readyState: number;
  readonly protocol?: string | null;
  readonly url?: string | null;
}

declare const WebSocketPair: { new (): { 0: CfWebSocket; 1: CfWebSocket } };

export const upgradeWebSocket: UpgradeWebSocket<CfWebSocket> = defineWebSocketHelper<CfWebSocket>(async (c, events) => {
  if (c.req.header("upgrade")?.toLowerCase() !== "websocket") return;
  const pair = new WebSocketPair();
  const client = pair[0];
  const server = pair[1];
  const ws = new WSContext<CfWebSocket>({
    close: (code, reason) => server.close(code, reason),
    get protocol() {
      return server.protocol ?? null;
    },
    raw: server,
    get readyState() {
      return server.readyState as 0 | 1 | 2 | 3;
    },
    url: server.url ? new URL(server.url) : null,
    send: (source) => server.send(source),
  });
  if (events.onClose) server.addEventListener("close", (evt) => events.onClose?.(evt, ws));
  if (events.onMessage) server.addEventListener("message", (evt) => events.onMessage?.(evt, ws));
  if (events.onError) server.addEventListener("error", (evt) => events.onError?.(evt, ws));
  server.accept();
  events.onOpen?.(new Event("open"), ws);
  return new Response(null, { status: 101, webSocket: client } as ResponseInit);
});
