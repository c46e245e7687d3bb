/**
 * The `qml` program: its commands, by group (commands/), and its help.
 * Built by a function so that tests and other entry points get a fresh one.
 */
import { createRequire } from "node:module";
import { Command } from "commander";
import { actionCommands } from "./commands/actions.js";
import { adminCommands } from "./commands/admin.js";
import { jobCommands } from "./commands/jobs.js";
import { queueCommands } from "./commands/queues.js";
import { recurringCommands } from "./commands/recurring.js";
import { EXIT_CODES_HELP } from "./exit.js";

const STORE_HELP = `The store is the one qml-server would use in the same environment:
  QML_STORAGE      sqlite (default, QML_SQLITE_PATH, ./data/qml.db), redis, postgres or memory
  REDIS_URL        with QML_REDIS_PREFIX; or UPSTASH_REDIS_REST_URL and UPSTASH_REDIS_REST_TOKEN
  DATABASE_URL     with QML_POSTGRES_SCHEMA, QML_POSTGRES_DRIVER
(see the README's Configuration table)`;

const EXAMPLES = `Examples:
  qml migrate
  qml enqueue send_email '["user@example.com"]' --queue mail --delay 60000
  qml list --state failed --json
  qml requeue --state failed --queue mail
  qml recurring add nightly "0 3 * * *" generate_report '["nightly"]'`;

/** The package's version: dist/cli/program.js → package.json two folders up (src/cli under tsx). */
function version(): string {
  try {
    return (createRequire(import.meta.url)("../../package.json") as { version: string }).version;
  } catch {
    return "unknown";
  }
}

export function createProgram(): Command {
  const program = new Command("qml")
    .description("qml on the command line: enqueue, inspect and act on jobs; run the server")
    .version(version(), "-V, --version")
    // Errors come back to main.ts, which decides the exit code (2 for usage).
    .exitOverride()
    .showHelpAfterError("(qml --help lists the commands; qml <command> --help its flags)")
    .configureOutput({ outputError: (text, write) => write(text.startsWith("error: ") ? `qml: ${text.slice(7)}` : text) })
    .addHelpText("after", `\n${STORE_HELP}\n\n${EXAMPLES}\n\n${EXIT_CODES_HELP}`);
  jobCommands(program);
  actionCommands(program);
  queueCommands(program);
  recurringCommands(program);
  adminCommands(program);
  return program;
}
