#!/usr/bin/env node
/**
 * `qml`, the command line (the package's bin; `npx qml …`). Runs one
 * command and exits with the codes of exit.ts; `qml serve` hands the
 * process to the Node server.
 */
import { exitFor, ExitCode } from "./exit.js";
import { createProgram } from "./program.js";

// Output piped into `head` that stops reading is not a failure of the command.
process.stdout.on("error", (e: NodeJS.ErrnoException) => {
  if (e.code === "EPIPE") process.exit(ExitCode.Ok);
  throw e;
});

try {
  await createProgram().parseAsync(process.argv);
  process.exitCode = ExitCode.Ok;
} catch (e) {
  const { code, message } = exitFor(e);
  if (message !== null) process.stderr.write(`qml: ${message}\n`);
  process.exitCode = code;
}
