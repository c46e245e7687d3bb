/**
 * Encrypted arguments: a card number sealed at enqueue (AES-256-GCM), so
 * that the store, the dashboard and the logs hold only ciphertext; the
 * handler gets the plaintext. Then a key rotation: a new key seals, the
 * old one still opens, and a job whose key was dropped fails with a typed
 * error.
 *
 *   npx tsx examples/encryption.ts
 *
 * In a deployment the keys come from QML_ENCRYPTION_KEYS (`id:base64`,
 * newest first; keyringFromEnv(env) reads it, `npm start` does so itself).
 */
import { Job, Keyring, Storage, WorkerRegistry, WorkerResult, memoryBackend, tick } from "../src/index.js";

// Two keys, as `openssl rand -base64 32` makes them.
const k1 = `k1:${Keyring.generateKey()}`;
const k2 = `k2:${Keyring.generateKey()}`;

const registry = new WorkerRegistry().register("charge", (job, ctx) => {
  const { customer, card } = job.arguments[0] as { customer: number; card: string };
  ctx.logger.info("charging", { customer }); // never log the secret itself
  console.log(`handler got customer ${customer}, card ending ${card.slice(-4)}`);
  return WorkerResult.success({ charged: true });
});
const run = (storage: Storage) => tick({ storage, registry, deadline: Date.now() + 5_000 });

// One store, seen by three generations of a deployment's configuration.
const backend = memoryBackend();
const before = new Storage(backend, { encryption: Keyring.parse(k1) });

const a = await before.enqueue(new Job("charge", [{ customer: 42, card: "4242424242424242" }], { encrypt: ["card"] }));
const stored = (await before.get(a))!.arguments[0] as { card: { kid: string; ct: string } };
console.log(`stored: customer 42, card sealed with ${stored.card.kid} (${stored.card.ct.slice(0, 16)}…)`);

// Rotation, step 2: k2 first (it seals), k1 kept (it opens jobs sealed before).
const rotated = new Storage(backend, { encryption: Keyring.parse(`${k2},${k1}`) });
const b = await rotated.enqueue(new Job("charge", [{ customer: 7, card: "5555555555554444" }], { encrypt: true }));
console.log(`a new job is sealed with ${((await rotated.get(b))!.arguments[0] as { kid: string }).kid}`);
await run(rotated);
console.log(`after rotation: ${(await rotated.get(a))!.state} and ${(await rotated.get(b))!.state}`);

// k1 dropped while a job sealed with it is still waiting: that job fails, typed, and can be requeued once the key is back.
const c = await before.enqueue(new Job("charge", [{ customer: 9, card: "4000056655665556" }], { encrypt: ["card"] }));
const dropped = new Storage(backend, { encryption: Keyring.parse(k2) });
await run(dropped);
const failed = (await dropped.get(c))!;
console.log(`without k1: ${failed.state} (${failed.error?.code})`);
