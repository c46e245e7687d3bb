/**
 * Which Neon drivers qml runs on Workers, as the README states it ("Deploy
 * to Cloudflare"): the ones listed first run every workerd test on the
 * `neon` backend (backends.ts) and are what the reference deployment builds
 * (deploy/cloudflare/src/storage.ts); the others are for Node and Lambda.
 * readme.node.test.ts holds the README's sentence to these lists.
 */
export const NEON_DRIVERS_ON_WORKERS = ["neon-http"] as const;
export const NEON_DRIVERS_NODE_ONLY = ["neon-ws", "pg"] as const;
