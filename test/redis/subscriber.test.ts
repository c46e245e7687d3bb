/**
 * The TCP driver's subscriber connection across a reconnect: it subscribes
 * again by itself, and a driver closed while that SUBSCRIBE is still
 * unanswered leaves no rejected promise behind (ioredis's own resubscribe
 * is a promise nobody holds: closing then was an unhandled rejection,
 * "Connection is closed.", seen in CI at the end of test/node/health.test.ts).
 */
import { afterEach, expect, it } from "vitest";
import { IoredisDriver } from "../../src/adapters/storage/redis/drivers/ioredis.js";
import { REDIS_URL, describeWithService, serviceUp } from "../helpers/services.js";
import { TcpProxy } from "../helpers/tcp-proxy.js";
import { eventually } from "../node/helpers/process.js";

const target = new URL(REDIS_URL);

describeWithService("redis", await serviceUp("redis"), "IoredisDriver subscriber across a reconnect", () => {
  const rejections: unknown[] = [];
  const onRejection = (reason: unknown) => rejections.push(reason);
  let proxy: TcpProxy | undefined;
  let driver: IoredisDriver | undefined;
  let publisher: IoredisDriver | undefined;
  afterEach(async () => {
    process.off("unhandledRejection", onRejection);
    await driver?.close();
    await publisher?.close();
    await proxy?.down();
    rejections.length = 0;
  });

  it("subscribes again after the connection is cut, and is told of messages sent after", async () => {
    proxy = new TcpProxy(target.hostname, Number(target.port || 6379));
    const port = await proxy.up();
    driver = new IoredisDriver({ url: `redis://127.0.0.1:${port}` });
    publisher = new IoredisDriver({ url: REDIS_URL });
    const channel = `qml-sub-test-${crypto.randomUUID()}`;
    const got: string[] = [];
    await driver.subscribe([channel], (_ch, message) => got.push(message));
    await publisher.command(["PUBLISH", channel, "before"]);
    await eventually(async () => (got.includes("before") ? true : undefined), "the first message");

    await proxy.down();
    await proxy.up();
    // Published until the subscriber is back on the channel; each try has its own text.
    let n = 0;
    await eventually(async () => {
      await publisher!.command(["PUBLISH", channel, `after-${++n}`]);
      await new Promise((r) => setTimeout(r, 20));
      return got.some((m) => m.startsWith("after-")) ? true : undefined;
    }, "a message after the reconnect");
    expect(got[0]).toBe("before");
  });

  it("closed while its resubscribe is unanswered: no unhandled rejection", async () => {
    process.on("unhandledRejection", onRejection);
    let hold = false;
    let cut = false;
    proxy = new TcpProxy(target.hostname, Number(target.port || 6379), {
      // After the cut, the SUBSCRIBE sent again goes to Redis but its answer never comes back.
      toService: (data) => {
        if (cut && data.toString("latin1").toUpperCase().includes("SUBSCRIBE")) hold = true;
      },
      toClient: (_data, forward) => {
        if (!hold) forward();
      },
    });
    const port = await proxy.up();
    driver = new IoredisDriver({ url: `redis://127.0.0.1:${port}` });
    await driver.subscribe([`qml-sub-test-${crypto.randomUUID()}`], () => {});

    cut = true;
    await proxy.down();
    await proxy.up();
    await eventually(async () => (hold ? true : undefined), "the SUBSCRIBE sent again");
    await driver.close();
    driver = undefined;
    // A rejection nobody handles is reported after the microtasks of its turn.
    await new Promise((r) => setTimeout(r, 50));
    expect(rejections).toEqual([]);
  });
});
