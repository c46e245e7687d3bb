/** Issue 22: the Origin check compares schemes, and HTTPS answers carry HSTS. */
import { describe, expect, it } from "vitest";
import { ADMIN, HOST, harness, problem } from "./helpers.js";
import type { AppOptions } from "../../src/adapters/http/index.js";

function get(overrides: Partial<AppOptions>, url: string, headers: Record<string, string> = {}): Promise<Response> {
  const { app } = harness(overrides);
  return Promise.resolve(app.request(url, { headers: { Host: HOST, Authorization: `Bearer ${ADMIN}`, ...headers } }));
}

describe("Origin with its scheme", () => {
  it("refuses a plain-HTTP page calling the HTTPS server of the same host", async () => {
    const res = await get({}, `https://${HOST}/api/stats`, { Origin: `http://${HOST}` });
    expect(res.status).toBe(403);
    expect((await problem(res)).code).toBe("FOREIGN_ORIGIN");
    expect((await get({}, `https://${HOST}/api/stats`, { Referer: `http://${HOST}/jobs` })).status).toBe(403);
  });

  it("accepts the same scheme and host, default port or not", async () => {
    expect((await get({}, `https://${HOST}/api/stats`, { Origin: `https://${HOST}` })).status).toBe(200);
    expect((await get({}, `https://${HOST}/api/stats`, { Origin: `https://${HOST}:443` })).status).toBe(200);
    expect((await get({}, `http://${HOST}/api/stats`, { Origin: `http://${HOST}` })).status).toBe(200);
    expect((await get({}, `https://${HOST}/api/stats`, { Origin: `https://${HOST}:8443` })).status).toBe(403);
  });

  it("ignores X-Forwarded-Proto unless told to trust it", async () => {
    // Untrusted: the server saw plain HTTP, so an http page is its own.
    expect((await get({}, `http://${HOST}/api/stats`, { "X-Forwarded-Proto": "https", Origin: `http://${HOST}` })).status).toBe(200);
    // Trusted: the client used HTTPS, so an http page is another origin.
    const trusted = { trustForwardedProto: true };
    expect((await get(trusted, `http://${HOST}/api/stats`, { "X-Forwarded-Proto": "https", Origin: `http://${HOST}` })).status).toBe(403);
    expect((await get(trusted, `http://${HOST}/api/stats`, { "X-Forwarded-Proto": "https", Origin: `https://${HOST}` })).status).toBe(200);
    expect((await get(trusted, `http://${HOST}/api/stats`, { "X-Forwarded-Proto": "http", Origin: `https://${HOST}` })).status).toBe(403);
  });

  it("lets an HTTPS page through to a server that sees plain HTTP and was told nothing (a TLS proxy may be in front)", async () => {
    expect((await get({}, `http://${HOST}/api/stats`, { Origin: `https://${HOST}` })).status).toBe(200);
  });

  it("matches trusted origins by scheme too", async () => {
    const opts = { auth: { adminTokens: [ADMIN], trustedOrigins: ["https://admin.example.com"] } };
    expect((await get(opts, `https://${HOST}/api/stats`, { Origin: "https://admin.example.com" })).status).toBe(200);
    expect((await get(opts, `https://${HOST}/api/stats`, { Origin: "http://admin.example.com" })).status).toBe(403);
  });

  it("refuses trustedOrigins entries that are not whole origins", () => {
    for (const bad of ["admin.example.com", "https://admin.example.com/path", "ftp://admin.example.com", "https://*.example.com", "//admin.example.com"]) {
      expect(() => harness({ auth: { adminTokens: [ADMIN], trustedOrigins: [bad] } }), bad).toThrow(/trustedOrigins/);
    }
    expect(() => harness({ auth: { adminTokens: [ADMIN], trustedOrigins: ["https://admin.example.com:8443", "http://10.0.0.1/"] } })).not.toThrow();
  });

  it("checks the WebSocket upgrade's Origin with its scheme", async () => {
    const res = await get({}, `https://${HOST}/ws`, { Origin: `http://${HOST}`, Upgrade: "websocket" });
    expect(res.status).toBe(403);
  });
});

describe("HSTS", () => {
  const STS = "strict-transport-security";

  it("is sent over HTTPS, on answers and on problems alike", async () => {
    expect((await get({}, `https://${HOST}/api/stats`)).headers.get(STS)).toBe("max-age=31536000");
    expect((await get({}, `https://${HOST}/api/nothing-here`)).headers.get(STS)).toBe("max-age=31536000");
    expect((await get({}, `https://${HOST}/healthz`)).headers.get(STS)).toBe("max-age=31536000");
  });

  it("is not sent over plain HTTP, nor on an untrusted X-Forwarded-Proto", async () => {
    expect((await get({}, `http://${HOST}/api/stats`)).headers.get(STS)).toBeNull();
    expect((await get({}, `http://${HOST}/api/stats`, { "X-Forwarded-Proto": "https" })).headers.get(STS)).toBeNull();
  });

  it("is sent when a trusted proxy says the client used HTTPS", async () => {
    const res = await get({ trustForwardedProto: true }, `http://${HOST}/api/stats`, { "X-Forwarded-Proto": "https" });
    expect(res.headers.get(STS)).toBe("max-age=31536000");
  });
});
