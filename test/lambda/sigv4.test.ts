/**
 * The SigV4 signer qml signs its AWS calls with (aws4fetch's, behind
 * src/adapters/runtime/lambda/aws.ts) against AWS's published Signature
 * Version 4 test suite (aws-sig-v4-test-suite: credentials AKIDEXAMPLE,
 * 2015-08-30T12:36:00Z, us-east-1, service "service"). The local AWS
 * stand-in verifies requests with the same signer, so this is what ties
 * both to AWS's own numbers.
 */
import { AwsV4Signer } from "aws4fetch";
import { describe, expect, it } from "vitest";

const CREDENTIALS = { accessKeyId: "AKIDEXAMPLE", secretAccessKey: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY" };
const DATETIME = "20150830T123600Z";
const SCOPE = "AKIDEXAMPLE/20150830/us-east-1/service/aws4_request";
const STS_TOKEN =
  "AQoDYXdzEPT//////////wEXAMPLEtc764bNrC9SAPBSM22wDOk4x4HIZ8j4FZTwdQWLWsKWHGBuFqwAeMicRXmxfpSPfIeoIYRqTflfKD8YUuwthAx7mSEI/qkPpKPi/kMcGdQrmGdeehM4IC1NtBmUpp2wUE8phUZampKsburEDy0KPkyQDYwT7WZ0wq5VSXDvp75YU9HFvlRd8Tx6q6fE8YQcHNVXAkiY9q6d+xo0rKwT38xVqr7ZD0u0iPPkUL64lIZbqBAz+scqKmlzm8FDrypNC9Yjc8fPOLn9FX9KSYvKTr4rvx3iSIlTJabIQwj2ICCR/oLxBA==";
const HOST = "https://example.amazonaws.com";

function signer(method: string, url: string, o: { headers?: Record<string, string>; body?: string; sessionToken?: string; allHeaders?: boolean } = {}) {
  return new AwsV4Signer({
    method,
    url,
    headers: o.headers ?? {},
    body: o.body ?? "",
    ...CREDENTIALS,
    ...(o.sessionToken ? { sessionToken: o.sessionToken } : {}),
    region: "us-east-1",
    service: "service",
    datetime: DATETIME,
    ...(o.allHeaders ? { allHeaders: true } : {}),
  });
}

describe("SigV4 (aws4fetch): AWS test suite", () => {
  it("get-vanilla: canonical request, string to sign, Authorization", async () => {
    const s = signer("GET", `${HOST}/`);
    expect(await s.canonicalString()).toBe(
      "GET\n/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    );
    expect(await s.stringToSign()).toBe(
      "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\nbb579772317eb040ac9ed261061d46c1f17a8133879d6129b6e1c25292927e63",
    );
    expect(await s.authHeader()).toBe(
      `AWS4-HMAC-SHA256 Credential=${SCOPE}, SignedHeaders=host;x-amz-date, Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31`,
    );
  });

  it("post-vanilla", async () => {
    expect(await signer("POST", `${HOST}/`).signature()).toBe("5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b");
  });

  it("post-vanilla-query", async () => {
    expect(await signer("POST", `${HOST}/?Param1=value1`).signature()).toBe("28038455d6de14eafc1f9222cf5aa6f1a96197d7deb8263271d420d138af7f11");
  });

  it("get-vanilla-query-order-key-case: query parameters are sorted", async () => {
    expect(await signer("GET", `${HOST}/?Param2=value2&Param1=value1`).signature()).toBe("b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500");
  });

  it("post-header-key-case: header names are lowercased", async () => {
    expect(await signer("POST", `${HOST}/`, { headers: { "My-Header1": "value1" } }).signature()).toBe(
      "c5410059b04c1ee005303aed430f6e6645f61f4dc9e1461ec8f8916fdf18852c",
    );
  });

  it("get-header-value-trim: values are trimmed and inner spaces collapsed", async () => {
    const s = signer("GET", `${HOST}/`, { headers: { "My-Header1": " value1", "My-Header2": ' "a   b   c"' } });
    expect(s.signedHeaders).toBe("host;my-header1;my-header2;x-amz-date");
    expect(await s.signature()).toBe("acc3ed3afb60bb290fc8d2dd0098b9911fcaa05412b367055dee359757a9c736");
  });

  it("post-x-www-form-urlencoded: the body is hashed into the signature", async () => {
    // aws4fetch leaves content-type unsigned unless told to sign every header, as this vector does.
    const s = signer("POST", `${HOST}/`, { headers: { "Content-Type": "application/x-www-form-urlencoded" }, body: "Param1=value1", allHeaders: true });
    expect(s.signedHeaders).toBe("content-type;host;x-amz-date");
    expect(await s.signature()).toBe("ff11897932ad3f4e8b18135d722051e5ac45fc38421b1da7b9d196a0fe09473a");
  });

  it("post-sts-header-before: a session token is sent and signed", async () => {
    const s = signer("POST", `${HOST}/`, { sessionToken: STS_TOKEN });
    expect(s.signedHeaders).toBe("host;x-amz-date;x-amz-security-token");
    const signed = await s.sign();
    expect(signed.headers.get("x-amz-security-token")).toBe(STS_TOKEN);
    expect(await s.signature()).toBe("85d96828115b5dc0cfc3bd16ad9e210dd772bbebba041836c64533a82be05ead");
  });

  it("never puts the secret key in what it sends", async () => {
    const signed = await signer("POST", `${HOST}/`, { body: "x", sessionToken: STS_TOKEN }).sign();
    expect(JSON.stringify([...signed.headers])).not.toContain(CREDENTIALS.secretAccessKey);
  });
});
