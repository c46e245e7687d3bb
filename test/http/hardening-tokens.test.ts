/** Issue 22: configured tokens must be hard to guess, not just 16 characters long. */
import { describe, expect, it } from "vitest";
import { createApp } from "../../src/adapters/http/index.js";
import { ConfigError, ManualClock, Storage, memoryBackend, silentLogger } from "../../src/index.js";

const storage = () => new Storage(memoryBackend(), { clock: new ManualClock(0) });
const build = (adminTokens: string[], readTokens: string[] = []) => createApp({ storage: storage(), auth: { adminTokens, readTokens }, logger: silentLogger });

describe("token entropy", () => {
  it.each([
    ["one letter, 16 times", "a".repeat(16)],
    ["one letter, 200 times", "z".repeat(200)],
    ["two letters alternating", "ab".repeat(40)],
    ["seven distinct characters", "abcdefg".repeat(10)],
    ["16 characters, 12 distinct (~57 bits)", "abcdefghijklabcd"],
  ])("refuses %s with a ConfigError that says why", (_what, token) => {
    let error: unknown;
    try {
      build([token]);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as Error).message).toMatch(/too easy to guess.*distinct.*bits/);
    expect((error as Error).message).not.toContain(token);
  });

  it("checks read-only tokens too", () => {
    expect(() => build(["admin-token-0123456789abcdef"], ["r".repeat(32)])).toThrow(/readTokens: a token is too easy to guess/);
  });

  it("accepts random tokens and the fixtures' tokens", () => {
    const random = () => btoa(String.fromCharCode(...crypto.getRandomValues(new Uint8Array(24))));
    expect(() => build([random(), random()], [random()])).not.toThrow();
    expect(() => build(["admin-token-0123456789abcdef"], ["read-token-0123456789abcdef"])).not.toThrow();
  });
});
