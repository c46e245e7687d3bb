// @ts-check
/**
 * Lint rules, and the import boundaries that keep the layout honest:
 * core speaks Web Standards only (no adapter, no `node:*`, no driver); the
 * HTTP adapter and the Workers/serverless runtimes run in workerd (no
 * `node:*`); a backend never reaches into a runtime.
 */
import js from "@eslint/js";
import tseslint from "typescript-eslint";

const DRIVERS = ["pg", "ioredis", "@upstash/redis", "@neondatabase/serverless", "ws", "aws4fetch", "@hono/node-server", "@hono/node-ws", "better-sqlite3"];
const NODE_BUILTINS = { group: ["node:*"], message: "Web Standards only here: this code runs in workerd and on Lambda as well as Node." };

export default tseslint.config(
  {
    ignores: [
      "dist/**",
      "node_modules/**",
      "bench/node_modules/**",
      "**/cdk.out*/**",
      "**/*.generated.ts",
      "src/adapters/http/ui/**",
      "bench/results/**",
      "coverage/**",
    ],
  },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    files: ["**/*.ts", "**/*.mjs", "**/*.js"],
    rules: {
      "@typescript-eslint/no-unused-vars": [
        "error",
        { argsIgnorePattern: "^_", varsIgnorePattern: "^_", caughtErrors: "none", destructuredArrayIgnorePattern: "^_" },
      ],
      "@typescript-eslint/no-explicit-any": "off",
      "no-control-regex": "off",
      "prefer-const": ["error", { destructuring: "all", ignoreReadBeforeAssign: true }],
    },
  },
  {
    // Scripts that run on Node as they are (fixtures, build hooks).
    files: ["**/*.mjs"],
    languageOptions: {
      globals: {
        process: "readonly",
        console: "readonly",
        setTimeout: "readonly",
        clearTimeout: "readonly",
        crypto: "readonly",
        URL: "readonly",
        Buffer: "readonly",
      },
    },
  },
  {
    files: ["src/core/**/*.ts"],
    rules: {
      "no-restricted-imports": [
        "error",
        {
          paths: [...DRIVERS, "hono"].map((name) => ({ name, message: "core imports no driver and no adapter library." })),
          patterns: [NODE_BUILTINS, { group: ["**/adapters/**", "../adapters/*"], message: "core imports nothing from adapters: dependencies point inwards." }],
        },
      ],
    },
  },
  {
    files: [
      "src/adapters/http/**/*.ts",
      "src/adapters/runtime/serverless/**/*.ts",
      "src/adapters/runtime/cloudflare/**/*.ts",
      "src/adapters/storage/memory/**/*.ts",
      // One backend for Node and D1: better-sqlite3 is required at run time (node-require.ts), never imported.
      "src/adapters/storage/sqlite/**/*.ts",
    ],
    rules: {
      "no-restricted-imports": [
        "error",
        {
          paths: DRIVERS.filter((d) => d !== "@upstash/redis" && d !== "@neondatabase/serverless").map((name) => ({
            name,
            message: "not available in workerd.",
          })),
          patterns: [NODE_BUILTINS],
        },
      ],
    },
  },
  {
    files: ["src/adapters/storage/**/*.ts"],
    ignores: ["src/adapters/storage/memory/**"],
    rules: {
      "no-restricted-imports": [
        "error",
        { patterns: [{ group: ["**/runtime/**", "**/http/**"], message: "a backend never reaches into a runtime or the HTTP adapter." }] },
      ],
    },
  },
);
